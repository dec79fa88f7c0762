"""Schema of the `model` section (first stage, UNet-1D, diffusion) and the `sample` section (generate.py defaults).

Registered with the config loader on import (every `*_schema.py` here is imported). Names that select
code (model type, first-stage type, sampler) are validated against short lists kept here, because
`dataloader` may not import `diffusion` or `first_stage` (docs/design.md section 1); the registries there
raise the same kind of error, and a test checks that these lists match them. Sampler names are checked
by generate.py against `diffusion.samplers.list_samplers()`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from ..errors import UserError
from .loader import register_section
from .typed import limits

MODEL_TYPES = ["diffusion", "gan", "wgan_gp", "lstm_gan", "timegan", "timevae"]  # baselines: the `baseline` section
MODEL_TYPES.append("autoencoder")  # a learned first stage alone (vae-only / vqvae-only configs)
FIRST_STAGE_TYPES = ["identity", "sampling", "vae", "vqvae", "vqgan"]  # = first_stage.FIRST_STAGES
LEARNED_FIRST_STAGES = ("vae", "vqvae", "vqgan")  # trained by `train.py --stage first_stage`

# UNet presets. tiny: tests and CPU demos (about 0.1 M parameters); small: CPU experiments;
# base: a useful CTG model (2 x 2048 at 1 Hz) that trains on one GPU in under an hour.
UNET_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(base_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1, attention_levels=[],
                 attention_heads=1, dropout=0.0, norm_groups=8, label_embed="sum"),
    "small": dict(base_channels=32, channel_mult=[1, 2, 2, 4], num_res_blocks=1, attention_levels=[3],
                  attention_heads=4, dropout=0.0, norm_groups=8, label_embed="sum"),
    "base": dict(base_channels=64, channel_mult=[1, 2, 4, 4], num_res_blocks=2, attention_levels=[3],
                 attention_heads=4, dropout=0.1, norm_groups=32, label_embed="sum"),
}
# `size: custom` must give these; the remaining keys default to the base preset's values
CUSTOM_REQUIRED = ("base_channels", "channel_mult", "num_res_blocks", "attention_levels")


@dataclass
class UNetConfig:
    """UNet-1D shape. Keys given here override the `size` preset; `size: custom` needs the first four."""

    base_channels: Optional[int] = field(default=None, metadata=limits(gt=0))  # channels of the first level
    # channel multiplier per level (level 0 = full length); L must be divisible by 2**(levels-1)
    channel_mult: Optional[list[int]] = field(default=None, metadata=limits(min_len=1))
    num_res_blocks: Optional[int] = field(default=None, metadata=limits(ge=1))  # residual blocks per level
    attention_levels: Optional[list[int]] = None  # levels with self-attention (0-based; [] = none)
    attention_heads: Optional[int] = field(default=None, metadata=limits(ge=1))  # heads per attention layer
    dropout: Optional[float] = field(default=None, metadata=limits(ge=0, lt=1))  # in residual blocks
    norm_groups: Optional[int] = field(default=None, metadata=limits(ge=1))  # GroupNorm groups (divide channels)
    # how label embeddings combine (one table per label column) before adding to the noise embedding
    label_embed: Optional[Literal["sum", "concat"]] = None


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

    type: str = "identity"                      # identity, sampling, vae, vqvae or vqgan (VQ-VAE + patch GAN)
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
        if self.type not in FIRST_STAGE_TYPES:
            raise UserError(f"{where}.type", f"unknown first stage {self.type!r}; valid: "
                            f"{', '.join(FIRST_STAGE_TYPES)}")
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


@dataclass
class DiffusionConfig:
    """Noise schedule, parameterisation, loss and classifier-free-guidance dropout."""

    # linear betas (Ho 2020), cosine (Nichol & Dhariwal 2021), or edm: T Karras-spaced noise levels from
    # sigma_min to sigma_max (Karras 2022 eq. 5, rho), the table every sampler reads for an edm model
    # default cosine: with v it won the equal-budget ablation of issue 12 (bench/results/recipe_ablation.md)
    schedule: Literal["linear", "cosine", "edm"] = "cosine"
    num_steps: int = field(default=1000, metadata=limits(ge=2))  # training timesteps T
    # linear betas, given for T = 1000 and scaled by 1000 / T for other T (Nichol & Dhariwal 2021)
    beta_start: float = field(default=1e-4, metadata=limits(gt=0, lt=1))
    beta_end: float = field(default=0.02, metadata=limits(gt=0, lt=1))  # last linear beta (for T = 1000)
    sigma_min: float = field(default=0.002, metadata=limits(gt=0))  # schedule edm: smallest noise level (t = 0)
    sigma_max: float = field(default=80.0, metadata=limits(gt=0))   # schedule edm: largest (t = T-1; samplers start)
    rho: float = field(default=7.0, metadata=limits(gt=0))          # schedule edm: Karras spacing exponent
    # network target: eps (Ho 2020), v (Salimans & Ho 2022), x0, or edm (Karras 2022: EDM preconditioning,
    # log-normal training sigmas, network fed ln(sigma) / 4; use with schedule: edm; diffusion/precond.py)
    # default v: eps multiplies the network's error by sigma (up to 157 on the linear schedule): rough samples
    # (bench/results/roughness.md); x0 over-smooths ETTh2 (roughness 0.2-0.5x real); v was best on both sets
    parameterization: Literal["eps", "v", "x0", "edm"] = "v"
    sigma_data: float = field(default=0.5, metadata=limits(gt=0))  # edm: data std the preconditioning assumes
    p_mean: float = -1.2                        # edm: training ln(sigma) ~ N(p_mean, p_std^2) (EDM's P_mean)
    p_std: float = field(default=1.2, metadata=limits(gt=0))  # edm: std of the training ln(sigma) (EDM's P_std)
    loss: Literal["l1", "l2"] = "l2"            # distance between network output and target
    # min-SNR-gamma loss weight (Hang et al. 2023): x0-space weight min(SNR, gamma), SNR = 1 / sigma^2, as the
    # weight of the target's loss (eps: min(SNR, g) / SNR, v: / (SNR + 1), x0: min(SNR, g)); the paper uses 5;
    # null = off (Ho 2020's unweighted loss; edm: EDM's weight)
    # default 5: on ETTh2 at equal budget, v + cosine + min-SNR 5 gave discriminative 0.026 and predictive 0.1077
    # (real 0.1059) against 0.038 and 0.1184 without it (bench/results/recipe_ablation.md)
    min_snr_gamma: Optional[float] = field(default=5.0, metadata=limits(gt=0))
    # weight of Diffusion-TS's Fourier term (Yuan & Qiao 2024): `loss` between the real and imaginary parts of
    # the FFT along time of the denoised estimate and of the clean window; auto = sqrt(L) / 5 (Diffusion-TS's
    # default, L the length the diffusion runs on); 0 = off (diffusion/loss/distance.py)
    fourier_weight: Union[float, Literal["auto"]] = field(default=0.0, metadata=limits(ge=0))
    p_uncond: float = field(default=0.1, metadata=limits(ge=0, le=1))  # each label column -> null, independently
    p_uncond_all: float = field(default=0.1, metadata=limits(ge=0, le=1))  # all columns -> null at once

    def check(self, where: str) -> None:
        if self.schedule == "linear":
            scale = 1000.0 / self.num_steps
            if not self.beta_start < self.beta_end:
                raise UserError(f"{where}.beta_start", f"must be < beta_end (got {self.beta_start} >= {self.beta_end})")
            if self.beta_end * scale >= 1:
                raise UserError(f"{where}.beta_end", f"beta_end x 1000 / num_steps must be < 1 "
                                f"(got {self.beta_end * scale:g}); use more steps or a smaller beta_end")
        if self.schedule == "edm" and not self.sigma_min < self.sigma_max:
            raise UserError(f"{where}.sigma_min", f"must be < sigma_max (got {self.sigma_min} >= {self.sigma_max})")


@dataclass
class ModelConfig:
    """The generator: its type, size preset, first stage, UNet and diffusion settings."""

    type: str = "diffusion"                     # diffusion, or a baseline: gan, wgan_gp, lstm_gan, timegan, timevae
    size: Literal["tiny", "small", "base", "custom"] = "base"  # UNet preset; unet keys override it
    unet: UNetConfig = field(default_factory=UNetConfig)  # network shape (overrides the preset)
    first_stage: FirstStageConfig = field(default_factory=FirstStageConfig)  # compressor (latent diffusion)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)  # schedule, target, loss, CFG dropout

    def check(self, where: str) -> None:
        if self.type not in MODEL_TYPES:
            raise UserError(f"{where}.type", f"unknown model type {self.type!r}; valid: {', '.join(MODEL_TYPES)}")
        if self.type != "diffusion":  # a baseline: its networks are set in the `baseline` section, not here
            return
        if self.size == "custom":
            missing = [k for k in CUSTOM_REQUIRED if getattr(self.unet, k) is None]
            if missing:
                raise UserError(f"{where}.unet", f"size: custom needs {', '.join(missing)}")
        u = self.resolved_unet()
        levels = len(u.channel_mult)
        bad = [a for a in u.attention_levels if not 0 <= a < levels]
        if bad:
            raise UserError(f"{where}.unet.attention_levels",
                            f"levels {bad} do not exist; valid: 0..{levels - 1} (one per channel_mult entry)")
        for m in sorted(set(u.channel_mult)):
            ch = u.base_channels * m
            if ch % u.norm_groups:
                raise UserError(f"{where}.unet.norm_groups",
                                f"{u.norm_groups} groups do not divide {ch} channels (base_channels x {m})")
        for a in u.attention_levels:
            ch = u.base_channels * u.channel_mult[a]
            if ch % u.attention_heads:
                raise UserError(f"{where}.unet.attention_heads",
                                f"{u.attention_heads} heads do not divide {ch} channels at level {a}")

    def resolved_unet(self) -> UNetConfig:
        """The UNet settings with the preset filled in under the keys given explicitly."""
        preset = UNET_PRESETS["base" if self.size == "custom" else self.size]
        given = {k: v for k, v in dataclasses.asdict(self.unet).items() if v is not None}
        return UNetConfig(**{**preset, **given})


@dataclass
class SampleConfig:
    """Sampling defaults used by generate.py (and epoch plots); each can be overridden on the command line."""

    sampler: str = "dpm_solver"                 # name from `python generate.py --help` (ddpm, ddim, k_euler, ...)
    steps: int = field(default=20, metadata=limits(ge=1))  # sampler steps (network evaluations ~ steps x order)
    guidance_scale: float = field(default=1.0, metadata=limits(ge=0))  # classifier-free guidance w; 1 = none
    # stochasticity: ddim (default 0) and ancestral / SDE k-samplers (default 1); null = sampler's default
    eta: Optional[float] = field(default=None, metadata=limits(ge=0))
    sigmas: Literal["karras", "uniform", "exponential"] = "karras"  # k-sampler noise levels (Karras 2022 rho=7)
    quantize: bool = False                      # round k-sampler noise levels to the nearest trained timestep
    # windows per network call; results do not depend on it (up to float rounding; not k_dpm_adaptive)
    batch_size: int = field(default=64, metadata=limits(ge=1))
    seed: int = field(default=0, metadata=limits(ge=0))  # window i's noise depends on (seed, i) only


register_section("model", ModelConfig)
register_section("sample", SampleConfig)
