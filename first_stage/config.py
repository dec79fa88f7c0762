"""The `model.first_stage` config section: the compressor the diffusion runs behind, and its training run.

The type names are the registry's (`first_stage.FIRST_STAGES`), checked when the config loads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from dataloader.config.typed import limits
from dataloader.errors import UserError

LEARNED_FIRST_STAGES = ("vae", "vqvae", "vqgan")  # trained by `train.py --stage first_stage`


@dataclass
class FirstStageTrainConfig:
    """Training of a learned first stage (`train.py --stage first_stage`). Other settings (betas, grad_clip,
    seed, val_batches, plot_every, plot_samples, threads, keep_checkpoints, num_workers) come from `train`."""

    max_steps: int = field(default=20000, metadata=limits(gt=0))  # optimizer steps in total
    max_minutes: Optional[float] = field(default=None, metadata=limits(gt=0))  # wall-clock cap (null: none)
    batch_size: int = field(default=16, metadata=limits(gt=0))   # windows (crops) per step on each process
    lr: float = field(default=4e-4, metadata=limits(gt=0))       # peak AdamW learning rate (cosine to lr / 20)
    warmup_steps: int = field(default=200, metadata=limits(ge=0))  # linear LR warm-up
    # train on random crops of this many samples (multiple of factor; the nets are fully convolutional, so
    # they still encode whole windows); null = whole windows
    crop: Optional[int] = field(default=None, metadata=limits(gt=0))
    epoch_steps: int = field(default=500, metadata=limits(gt=0))  # steps per epoch (validation RMSE/PRD, plot, checkpoint)
    scale_batches: int = field(default=8, metadata=limits(gt=0))  # training batches that estimate the latent scale


@dataclass
class FirstStageConfig:
    """Compressor the diffusion runs behind (latent diffusion); identity = diffusion on the signal."""

    # the compressor (sampling: decimation; vqgan: VQ-VAE + patch GAN)
    type: str = field(default="identity", metadata=limits(one_of="first_stage:FIRST_STAGES", what="first stage"))
    # time compression k (L' = L / k): sampling: decimation factor; vae/vqvae/vqgan: a power of 2
    factor: int = field(default=1, metadata=limits(ge=1))
    # sampling: interpolation kernel of decode; sinc = band-limited (exact for content below the new Nyquist)
    interp: Literal["sinc", "linear", "cubic"] = "sinc"
    # learned stages: folder of the first-stage training run; its first_stage.safetensors is what diffusion loads
    out_dir: Optional[str] = None
    latent_channels: int = field(default=4, metadata=limits(gt=0))  # learned: latent channels C'
    hidden_channels: int = field(default=64, metadata=limits(gt=0))  # learned: conv width of the first level
    num_res_blocks: int = field(default=1, metadata=limits(ge=0))   # learned: residual blocks per level
    recon_loss: Literal["l1", "l2"] = "l1"      # learned: distance per channel (each channel scaled by its RMS)
    # learned: weight of the focal frequency loss (per channel, spectrally normalised; first_stage/losses.py)
    ffl_weight: float = field(default=1.0, metadata=limits(ge=0))
    ffl_alpha: float = field(default=1.0, metadata=limits(ge=0))    # focal exponent of the spectral weight
    kl_weight: float = field(default=1e-6, metadata=limits(ge=0))   # vae: weight of KL(q(z|x) || N(0, I))
    codebook_size: int = field(default=512, metadata=limits(ge=2))  # vqvae/vqgan: number of codes
    commitment: float = field(default=0.25, metadata=limits(ge=0))  # vqvae/vqgan: commitment weight beta
    # vqvae/vqgan: codes as EMA of assigned encoder outputs, or learned by the codebook loss (straight-through)
    codebook_update: Literal["ema", "straight_through"] = "ema"
    codebook_decay: float = field(default=0.99, metadata=limits(gt=0, lt=1))  # vqvae/vqgan: EMA decay of codes and counts
    # vqvae/vqgan: a code whose EMA usage falls below this many assignments per batch restarts on an encoder output
    restart_threshold: float = field(default=0.05, metadata=limits(ge=0))
    disc_start: int = field(default=2000, metadata=limits(ge=0))    # vqgan: step at which the discriminator switches on
    disc_weight: float = field(default=0.5, metadata=limits(ge=0))  # vqgan: factor on the adaptive adversarial weight
    disc_channels: int = field(default=64, metadata=limits(gt=0))   # vqgan: discriminator width
    disc_layers: int = field(default=3, metadata=limits(ge=1))      # vqgan: strided layers (patch size grows with it)
    train: FirstStageTrainConfig = field(default_factory=FirstStageTrainConfig)  # learned: its training run

    def check(self, where: str) -> None:
        if self.type == "sampling" and self.factor < 2:
            raise UserError(f"{where}.factor", f"sampling needs factor >= 2 (got {self.factor}; "
                            "factor 1 is the identity first stage)")
        if self.type == "identity" and self.factor != 1:
            raise UserError(f"{where}.factor", f"the identity first stage has factor 1 (got {self.factor})")
        if self.type in LEARNED_FIRST_STAGES:
            if self.factor & (self.factor - 1):
                raise UserError(f"{where}.factor", f"{self.type} needs a power of 2 (got {self.factor})")
            if not self.out_dir:
                raise UserError(f"{where}.out_dir", f"{self.type} needs the folder of its training run "
                                "(where train.py --stage first_stage writes first_stage.safetensors)")
            if self.train.crop is not None and self.train.crop % self.factor:
                raise UserError(f"{where}.train.crop", f"must be a multiple of factor {self.factor} "
                                f"(got {self.train.crop})")
