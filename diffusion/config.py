"""The `model`, `sample` and `sr` config sections: the diffusion model (UNet-1D, schedule, loss), how
generate.py samples it, and the latent super-resolution stage (docs/design.md section 3).

Names that select code (model type, first stage, sampler) are checked when the config loads against the
registries (`training.MODEL_KINDS`, `first_stage.FIRST_STAGES`, `diffusion.samplers.SAMPLERS`).

`sr`: the config's `data` / `model` / `train` describe the coarse (low-resolution) model, trained and sampled as
usual. `sr` adds a second diffusion model on the full-rate latent of `sr.model.first_stage`, conditioned on
the latent of the coarse signal interpolated to the full rate (concatenated on the channel axis).
`python train.py --stage sr` trains it; generate.py runs both stages when this section is present.
Rates: the coarse model's rate must divide the full rate (an integer up-sampling factor), and the coarse
window times that factor must be the full-rate window.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from dataloader.config.typed import limits
from dataloader.errors import UserError
from first_stage.config import FirstStageConfig

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

    # diffusion; autoencoder (a learned first stage alone); or a GAN / VAE baseline (its settings: `baseline`)
    type: str = field(default="diffusion", metadata=limits(one_of="training:MODEL_KINDS", what="model type"))
    size: Literal["tiny", "small", "base", "custom"] = "base"  # UNet preset; unet keys override it
    unet: UNetConfig = field(default_factory=UNetConfig)  # network shape (overrides the preset)
    first_stage: FirstStageConfig = field(default_factory=FirstStageConfig)  # compressor (latent diffusion)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)  # schedule, target, loss, CFG dropout

    def check(self, where: str) -> None:
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

    # name from `python generate.py --help` (ddpm, ddim, k_euler, ...)
    sampler: str = field(default="dpm_solver", metadata=limits(one_of="diffusion.samplers:SAMPLERS", what="sampler"))
    steps: int = field(default=20, metadata=limits(ge=1))  # sampler steps (network evaluations ~ steps x order)
    guidance_scale: float = field(default=1.0, metadata=limits(ge=0))  # classifier-free guidance w; 1 = none
    # stochasticity: ddim (default 0) and ancestral / SDE k-samplers (default 1); null = sampler's default
    eta: Optional[float] = field(default=None, metadata=limits(ge=0))
    sigmas: Literal["karras", "uniform", "exponential"] = "karras"  # k-sampler noise levels (Karras 2022 rho=7)
    quantize: bool = False                      # round k-sampler noise levels to the nearest trained timestep
    # windows per network call; results do not depend on it (up to float rounding; not k_dpm_adaptive)
    batch_size: int = field(default=64, metadata=limits(ge=1))
    seed: int = field(default=0, metadata=limits(ge=0))  # window i's noise depends on (seed, i) only


@dataclass
class SRTrainConfig:
    """Training of the super-resolution model. Keys left null take the `train` section's value; every other
    training setting comes from `train` too."""

    out_dir: str                                # folder of the SR run (checkpoints/, log.csv, plots/, model.safetensors)
    max_steps: Optional[int] = field(default=None, metadata=limits(gt=0))  # optimizer steps (null: train.max_steps)
    max_minutes: Optional[float] = field(default=None, metadata=limits(gt=0))  # wall-clock cap (null: train.max_minutes)
    batch_size: Optional[int] = field(default=None, metadata=limits(gt=0))  # windows per micro-batch (null: train's)
    lr: Optional[float] = field(default=None, metadata=limits(gt=0))  # peak learning rate (null: train.lr)
    epoch_steps: Optional[int] = field(default=None, metadata=limits(gt=0))  # steps per epoch (null: train's)


@dataclass
class SRConfig:
    """Super-resolution stage: full-rate data, the SR diffusion model and its training run."""

    train: SRTrainConfig                        # where and how long the SR model trains
    # prepared file at the full rate (null: data.prepared, when the coarse model's first stage does the
    # down-sampling, e.g. a sampling first stage on the same 4 Hz windows)
    prepared: Optional[str] = None
    model: ModelConfig = field(default_factory=ModelConfig)  # the SR diffusion model (first stage, UNet, diffusion)

    def check(self, where: str) -> None:
        if self.model.type != "diffusion":
            raise UserError(f"{where}.model.type", f"the SR model is a diffusion model (got {self.model.type!r})")
