"""The `baseline` config section: hyperparameters of the GAN / VAE baselines (baselines/).

`model.type` picks the model (gan, wgan_gp, lstm_gan, timegan, timevae); the subsection of the same name
holds its hyperparameters; the other subsections are ignored. The optimiser, learning rate, Adam betas,
batch size, step and time budget, EMA, epochs, plots and checkpoints come from the `train` section, as
for the diffusion models, so a comparison differs only in the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dataloader.config.typed import limits
from dataloader.errors import UserError


@dataclass
class ConvGANConfig:
    """DCGAN-style 1-D GAN (Radford et al. 2016): noise vector -> signal, BCE loss, conditional on the labels."""

    latent_dim: int = field(default=100, metadata=limits(ge=1))  # size of the noise vector z ~ N(0, I)
    # generator: a linear layer to (channels, L / 2**num_layers), then num_layers stride-2 transposed convs;
    # the discriminator mirrors it with stride-2 convs. L must be divisible by 2**num_layers
    num_layers: int = field(default=6, metadata=limits(ge=1))
    base_channels: int = field(default=16, metadata=limits(ge=1))  # channels at full length; doubled per layer
    max_channels: int = field(default=128, metadata=limits(ge=1))  # cap of the doubling (CPU-sized networks)
    label_dim: int = field(default=16, metadata=limits(ge=1))  # label embedding size (one table per column, summed)
    d_steps: int = field(default=1, metadata=limits(ge=1))  # discriminator updates per generator update


@dataclass
class WGANGPConfig(ConvGANConfig):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017), conditional; the DCGAN networks with a
    layer-normalised critic (batch norm would break the per-sample gradient penalty)."""

    n_critic: int = field(default=5, metadata=limits(ge=1))  # critic updates per generator update (paper: 5)
    gp_weight: float = field(default=10.0, metadata=limits(ge=0))  # gradient penalty weight lambda (paper: 10)


@dataclass
class LSTMGANConfig:
    """BiLSTM generator with convolutional output layers and a convolutional discriminator (Zhu et al. 2019,
    ECG generation with a BiLSTM-CNN GAN); unconditional; BCE loss."""

    latent_dim: int = field(default=16, metadata=limits(ge=1))  # noise channels per LSTM step
    hidden: int = field(default=64, metadata=limits(ge=1))  # LSTM units per direction
    lstm_layers: int = field(default=1, metadata=limits(ge=1))  # stacked BiLSTM layers
    # the BiLSTM runs on L / 2**upsample_layers steps; stride-2 transposed convs bring it to L (an LSTM over
    # thousands of steps is too slow to train on a CPU and forgets across them anyway)
    upsample_layers: int = field(default=4, metadata=limits(ge=0))
    conv_channels: int = field(default=32, metadata=limits(ge=1))  # channels of the conv output layers
    disc_layers: int = field(default=6, metadata=limits(ge=1))  # stride-2 conv layers of the discriminator
    disc_channels: int = field(default=16, metadata=limits(ge=1))  # its first layer's channels; doubled per layer
    max_channels: int = field(default=128, metadata=limits(ge=1))  # cap of the discriminator's doubling


@dataclass
class TimeGANConfig:
    """TimeGAN (Yoon, Jarrett & van der Schaar 2019): embedder, recovery, generator, supervisor and discriminator
    (GRUs), trained in three phases; unconditional. Steps 1..embedding_steps train the autoencoder, the next
    supervised_steps the supervisor, the rest (to train.max_steps) all five jointly."""

    # the GRUs read a window as L / patch steps of C * patch features (consecutive samples side by side):
    # TimeGAN was made for sequences of ~24 steps, and a GRU over 2048 steps is too slow on a CPU
    patch: int = field(default=16, metadata=limits(ge=1))
    hidden: int = field(default=24, metadata=limits(ge=1))  # hidden units of every GRU (paper code: 24)
    layers: int = field(default=3, metadata=limits(ge=1))  # GRU layers (paper code: 3; the supervisor has one fewer)
    latent_dim: Optional[int] = field(default=None, metadata=limits(ge=1))  # noise per step (null: C * patch)
    embedding_steps: int = field(default=1000, metadata=limits(ge=1))  # phase 1 steps (autoencoding)
    supervised_steps: int = field(default=1000, metadata=limits(ge=1))  # phase 2 steps (supervised loss)
    gamma: float = field(default=1.0, metadata=limits(ge=0))  # weight of the losses on E_hat (paper code: 1)
    # the discriminator is updated only while its loss is above this (paper code: 0.15)
    d_threshold: float = field(default=0.15, metadata=limits(ge=0))


@dataclass
class TimeVAEConfig:
    """TimeVAE (Desai et al. 2021): conv encoder; decoder = level + polynomial trend + seasonality blocks
    (+ an optional residual conv decoder); unconditional."""

    latent_dim: int = field(default=8, metadata=limits(ge=1))  # size of z
    # stride-2 conv layers of the encoder (the residual decoder mirrors them); L must be divisible by 2**len
    hidden_channels: list[int] = field(default_factory=lambda: [32, 64, 128], metadata=limits(min_len=1))
    trend_degree: int = field(default=2, metadata=limits(ge=0))  # polynomial trend t**1 .. t**P (0: no trend block)
    # seasonality blocks, each [number of seasons, samples per season]: season value k holds for
    # samples_per_season samples, repeating every number x samples_per_season samples
    seasons: list[list[int]] = field(default_factory=list)
    residual: bool = True                       # add the residual conv decoder (TimeVAE's use_residual_conn)
    recon_weight: float = field(default=3.0, metadata=limits(gt=0))  # reconstruction weight vs KL (paper code: 3)

    def check(self, where: str) -> None:
        for s in self.seasons:
            if len(s) != 2 or min(s) < 1:
                raise UserError(f"{where}.seasons", f"each entry is [number of seasons >= 1, samples per "
                                                    f"season >= 1] (got {s})")


@dataclass
class BaselineConfig:
    """GAN / VAE baselines: the subsection named by `model.type` is used (see baselines/)."""

    gan: ConvGANConfig = field(default_factory=ConvGANConfig)  # model.type: gan
    wgan_gp: WGANGPConfig = field(default_factory=WGANGPConfig)  # model.type: wgan_gp
    lstm_gan: LSTMGANConfig = field(default_factory=LSTMGANConfig)  # model.type: lstm_gan
    timegan: TimeGANConfig = field(default_factory=TimeGANConfig)  # model.type: timegan
    timevae: TimeVAEConfig = field(default_factory=TimeVAEConfig)  # model.type: timevae


BASELINE_TYPES = [f.name for f in BaselineConfig.__dataclass_fields__.values()]
