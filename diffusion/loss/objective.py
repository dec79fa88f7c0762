"""DiffusionLoss: the diffusion training objective as ONE callable object (after EDM's training/loss.py).

    loss = DiffusionLoss.from_config(cfg.model.diffusion, latent_length=Lz, label_classes=[3, 2])
    value = loss(denoiser, z0, labels, generator)      # z0 (B, C', L') clean latents, labels (B, n) int64

One call, in this order:
1. noise levels: integer timesteps t ~ U{0..T-1} of the schedule and sigma = sigma_t (eps, v, x0; Ho 2020),
   or for edm ln(sigma) ~ N(p_mean, p_std^2) and no t (Karras 2022 section 5; EDM's P_mean = -1.2, P_std = 1.2);
2. noise eps ~ N(0, I) of z0's shape;
3. classifier-free-guidance label dropout (Ho & Salimans 2022, `drop_labels`), while the network trains;
4. the network output F at x = z0 + sigma * eps and its parameterisation's target (precond.Denoiser);
5. per sample: w(sigma) * d(F, target) + fourier_weight * fourier(D, z0) (distance.py; w below; D the
   denoised estimate);
6. the batch mean, or one value per sample (reduction="none").

Random numbers: steps 1-3 draw from the generator given, on the generator's device, in exactly this order and
these shapes: randint (B,) or for edm randn (B,); randn (B, C', L') in z0's dtype; rand (B, n + 1). Every saved
training run's generator state (resume) and the reproducibility fingerprint rely on it. Nothing else draws.
The privacy audit's overrides replace draws: `t` (B,) int64 fixes the noise levels (for every parameterisation:
an edm model is then scored at the schedule's table sigmas), `noise` fixes eps, `cfg_dropout=False` keeps
the labels; a value given is not drawn.

Weight (min-SNR-gamma, Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy", ICCV):
with SNR(sigma) = 1 / sigma^2 (variance-exploding sigma of schedule.py) the paper's weight in x0 space is
min(SNR, gamma). A network with output F and x0 estimate D = c_skip x + c_out F has
||D - x0||^2 = c_out^2 ||F - target||^2, so the same weight on the loss of F against its target is

    w = min(SNR, gamma) * c_out^2:   eps: c_out^2 = sigma^2 = 1 / SNR      -> min(SNR, gamma) / SNR
                                      v:   c_out^2 = sigma^2 / (1 + sigma^2) -> min(SNR, gamma) / (SNR + 1)
                                      x0:  c_out^2 = 1                       -> min(SNR, gamma)

(the paper's three cases, section 3.4 and its code), and for edm min(SNR, gamma) * sigma^2 sd^2 / (sigma^2 + sd^2),
which then replaces EDM's own weight lambda c_out^2 = 1. The weights are derived for the squared error; with
`loss: l1` they are applied as they are. The paper uses gamma = 5; None = off (w = 1).
The Fourier term is NOT multiplied by w (Diffusion-TS multiplies both by its own timestep weight, but its
network predicts x0, where the two live on one scale; for eps/v/edm the weight converts F-space to x0-space
and would rescale an x0-space term wrongly, e.g. by EDM's lambda ~ 2.5e5 at sigma = 0.002).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ..precond import Denoiser
from ..schedule import NoiseSchedule
from .distance import PerSampleLoss, build_distance, fourier_loss, resolve_fourier_weight


def draw_noise_levels(schedule: NoiseSchedule, parameterization: str, batch: int,
                      generator: Optional[torch.Generator], device: torch.device, t: Optional[torch.Tensor] = None,
                      p_mean: float = -1.2, p_std: float = 1.2) -> tuple[Optional[torch.Tensor], torch.Tensor]:
    """(t (B,) int64 or None, sigma (B,) float32), drawn on `device` (the generator's) unless t is given;
    one draw of `batch` numbers from `generator` when drawing (step 1 of the module docstring)."""
    if t is None and parameterization == "edm":
        n = torch.randn(batch, generator=generator, device=device)
        return None, (p_mean + p_std * n).exp()
    if t is None:
        t = torch.randint(0, schedule.num_steps, (batch,), generator=generator, device=device)
    return t, schedule.sigma_at(t)


def drop_labels(labels: torch.Tensor, null: Union[torch.Tensor, Sequence[int]], p_col: float, p_all: float,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """labels (B, n) int64 -> a copy where dropped entries hold their column's null index (null: (n,)).

    Each entry is dropped independently with probability p_col; each row entirely with probability p_all, so
    one network learns conditional and unconditional denoising (guidance.py combines the two at sampling).
    Random numbers come from `generator` (on its own device) when given: one rand (B, n + 1), none when
    nothing can be dropped.
    """
    if labels.numel() == 0 or (p_col <= 0 and p_all <= 0):
        return labels
    b, n = labels.shape
    dev = generator.device if generator is not None else labels.device
    u = torch.rand(b, n + 1, generator=generator, device=dev).to(labels.device)
    drop = (u[:, :n] < p_col) | (u[:, n:] < p_all)
    null_t = torch.as_tensor(null, dtype=labels.dtype, device=labels.device).view(1, n)
    return torch.where(drop, null_t, labels)


def min_snr_weight(sigma: torch.Tensor, c_out: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample min-SNR-gamma weight (B,) (module docstring) from noise levels sigma (B,) and output
    scalings c_out (B,) or (B, 1, 1)."""
    snr = sigma.double().square().reciprocal()
    w = snr.clamp(max=float(gamma)) * c_out.double().reshape(len(sigma)).square()
    return w.to(sigma.dtype)


def latent_weight(mask: Optional[torch.Tensor], z: torch.Tensor) -> Optional[torch.Tensor]:
    """A data-space weight (B, 1 or C, L) -> latent-space weight (B, 1 or C', L') of latents z by averaging
    (over channels when C != C', over time by adaptive average pooling when L != L')."""
    if mask is None:
        return None
    w = mask.to(z.dtype)
    if w.shape[1] not in (1, z.shape[1]):
        w = w.mean(dim=1, keepdim=True)
    if w.shape[-1] != z.shape[-1]:
        w = F.adaptive_avg_pool1d(w, z.shape[-1])
    return w


class DiffusionLoss:
    """The training loss of a diffusion model (module docstring): draws, target, weighting and distance.

    `distance`: per-sample distance (distance.py); `label_classes[j]`: class count (= null index) of label
    column j; `p_uncond` / `p_uncond_all`: dropout probability of each column / of all columns at once;
    `min_snr_gamma`: None = unweighted; `fourier_weight`: 0 = no Fourier term; `p_mean`, `p_std`: edm's
    log-normal training sigmas. A plain object without state: one per model, built once.
    """

    def __init__(self, distance: PerSampleLoss, label_classes: Sequence[int] = (), p_uncond: float = 0.1,
                 p_uncond_all: float = 0.1, min_snr_gamma: Optional[float] = None, fourier_weight: float = 0.0,
                 p_mean: float = -1.2, p_std: float = 1.2) -> None:
        self.distance = distance
        self.label_classes = [int(n) for n in label_classes]
        self.p_uncond, self.p_uncond_all = float(p_uncond), float(p_uncond_all)
        self.min_snr_gamma = None if min_snr_gamma is None else float(min_snr_gamma)
        self.fourier_weight = float(fourier_weight)
        self.p_mean, self.p_std = float(p_mean), float(p_std)

    @classmethod
    def from_config(cls, d: Any, latent_length: int, label_classes: Sequence[int]) -> "DiffusionLoss":
        """The loss of a `model.diffusion` section `d`, for a diffusion on latents of `latent_length` samples
        (fourier_weight "auto" = sqrt(L') / 5) with label columns of `label_classes[j]` classes."""
        return cls(build_distance(d.loss), label_classes, p_uncond=d.p_uncond, p_uncond_all=d.p_uncond_all,
                   min_snr_gamma=d.min_snr_gamma, fourier_weight=resolve_fourier_weight(d.fourier_weight, latent_length),
                   p_mean=d.p_mean, p_std=d.p_std)

    def __repr__(self) -> str:
        return (f"DiffusionLoss({self.distance!r}, min_snr_gamma={self.min_snr_gamma}, fourier_weight="
                f"{self.fourier_weight:g}, p_uncond={self.p_uncond:g}, p_uncond_all={self.p_uncond_all:g})")

    def __call__(self, denoiser: Denoiser, x0: torch.Tensor, labels: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None, *, mask: Optional[torch.Tensor] = None,
                 t: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                 cfg_dropout: Optional[bool] = None, reduction: str = "mean") -> torch.Tensor:
        """Loss of `denoiser` (its network trained) on clean latents x0 (B, C', L') with labels (B, n) int64.

        `mask` (B, 1 or C, L): per-sample weights in data space (0 = ignore, e.g. interpolated gaps).
        `t` (B,) int64, `noise` (B, C', L'): given instead of drawn; `cfg_dropout`: drop labels (default: while
        the network is in training mode). Returns the mean over the batch (reduction="mean") or one loss per
        sample (B,) (reduction="none")."""
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none' (got {reduction!r})")
        if cfg_dropout is None:
            cfg_dropout = denoiser.net.training
        t, sigma, noise, labels = self.draw(denoiser, x0, labels, generator, t, noise, cfg_dropout)
        out, target = denoiser.net_output_at(x0, noise, sigma, labels, t)
        per_sample = self.per_sample(denoiser, out, target, x0, sigma, latent_weight(mask, x0))
        return per_sample if reduction == "none" else per_sample.mean()

    def draw(self, denoiser: Denoiser, x0: torch.Tensor, labels: Optional[torch.Tensor],
             generator: Optional[torch.Generator], t: Optional[torch.Tensor], noise: Optional[torch.Tensor],
             cfg_dropout: bool) -> tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Steps 1-3 of the module docstring, on x0's device: (t (B,) int64 or None for drawn edm levels,
        sigma (B,), noise (B, C', L'), labels (B, n) after dropout, or None for a model without labels)."""
        b, dev = x0.shape[0], x0.device
        gdev = generator.device if generator is not None else dev
        t, sigma = draw_noise_levels(denoiser.schedule, denoiser.parameterization, b, generator, gdev, t,
                                     self.p_mean, self.p_std)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=gdev, dtype=x0.dtype)
        noise = noise.to(dev)
        if t is not None:
            t = t.to(dev)
            sigma = denoiser.schedule.sigma_at(t)
        sigma = sigma.to(dev)
        if not self.label_classes:
            return t, sigma, noise, None
        if labels is None:
            raise ValueError("this model has label columns: pass labels (B, n)")
        labels = labels.to(dev)
        if cfg_dropout:
            labels = drop_labels(labels, self.label_classes, self.p_uncond, self.p_uncond_all, generator)
        return t, sigma, noise, labels

    def per_sample(self, denoiser: Denoiser, out: torch.Tensor, target: torch.Tensor, x0: torch.Tensor,
                   sigma: torch.Tensor, weight: Optional[torch.Tensor]) -> torch.Tensor:
        """Step 5: the loss (B,) of network output `out` against `target` (B, C', L') for clean latents x0 at
        noise levels sigma (B,), with the latent weight (B, 1 or C', L') or None."""
        per_sample = self.distance(out, target, weight)
        if self.min_snr_gamma is not None:
            c_out = denoiser.scalings(sigma, x0)[1]
            per_sample = per_sample * min_snr_weight(sigma, c_out, self.min_snr_gamma)
        if self.fourier_weight > 0:
            x0_hat = denoiser.x0_estimate(out, target, x0, sigma)
            per_sample = per_sample + self.fourier_weight * fourier_loss(x0_hat, x0, self.distance.distance, weight)
        return per_sample
