"""DiffusionModel: first stage + UNet-1D + noise schedule + parameterisation + loss + guidance dropout.

    model = build_diffusion(cfg.model, channels=2, length=2048, label_classes=[3, 2, 2, 2])
    loss = model.training_loss(x, labels)                     # x (B, C, L) in [-1, 1], labels (B, n) int64
    x = model.sample(100, labels, sampler="dpm_solver", steps=20, guidance_scale=2.0, seed=0)

The diffusion runs on the first stage's latent z = encode(x) (latent diffusion, Rombach 2022; identity = on
the signal). Training follows Ho 2020 (uniform integer t, Gaussian noise, simple loss on the parameterisation's
target) with classifier-free-guidance label dropout (Ho & Salimans 2022). Sampling draws sample i's noise from
a generator seeded by (seed, start_index + i), so results do not depend on the batch size or on how a long run
is split into calls (see samplers/base.py; k_dpm_adaptive is the one batch-dependent sampler).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from dataloader.errors import UserError
from first_stage import FirstStage, build_first_stage

from .guidance import CFGDenoiser, drop_labels
from .fourier_loss import fourier_loss, resolve_fourier_weight
from .loss_weight import min_snr_weight
from .losses import build_loss
from .precond import Denoiser
from .samplers import CountingDenoiser, NoiseSource, sample as run_sampler
from .schedule import NoiseSchedule
from .training_noise import draw_noise_levels
from .unet1d import UNet1D


def required_multiple(model_cfg: Any) -> int:
    """Window lengths the model accepts are multiples of this: first-stage factor x 2**(UNet levels - 1)
    (every first stage's time compression is its `factor`; identity has 1)."""
    return model_cfg.first_stage.factor * 2 ** (len(model_cfg.resolved_unet().channel_mult) - 1)


class DiffusionModel(nn.Module):
    """A conditional diffusion model on (C, L) windows with integer labels (one column per label)."""

    def __init__(self, first_stage: FirstStage, net: UNet1D, schedule: NoiseSchedule, parameterization: str,
                 loss: Callable[..., torch.Tensor], channels: int, length: int, label_classes: Sequence[int],
                 p_uncond: float = 0.1, p_uncond_all: float = 0.1, min_snr_gamma: Optional[float] = None,
                 fourier_weight: float = 0.0, sigma_data: float = 0.5, p_mean: float = -1.2,
                 p_std: float = 1.2) -> None:
        super().__init__()
        self.first_stage = first_stage
        self.net = net
        self.schedule = schedule
        self.parameterization = parameterization
        self.sigma_data, self.p_mean, self.p_std = float(sigma_data), float(p_mean), float(p_std)
        # plain object: net is registered once
        self.precond = Denoiser(net, schedule, parameterization, sigma_data=self.sigma_data)
        self.min_snr_gamma = None if min_snr_gamma is None else float(min_snr_gamma)
        self.fourier_weight = float(fourier_weight)
        self.loss_fn = loss
        self.channels, self.length = int(channels), int(length)
        self.label_classes = [int(n) for n in label_classes]
        self.p_uncond, self.p_uncond_all = float(p_uncond), float(p_uncond_all)

    # ---- shapes and labels -------------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, int]:
        """(C', L') of the latent the diffusion runs on."""
        return self.first_stage.latent_shape(self.channels, self.length)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def null_labels(self, batch: int) -> torch.Tensor:
        """(B, n_labels) int64 of null entries (unconditional), on the model's device."""
        return self.net.null_labels(batch)

    def check_labels(self, labels: Optional[torch.Tensor], batch: int, where: str = "labels") -> torch.Tensor:
        """Labels for sampling -> (B, n) int64 on the model's device. Accepts None (all null), one row (n,)
        for every sample, or (B, n); -1 (or the column's class count) means null for that column."""
        n = len(self.label_classes)
        if labels is None:
            return self.null_labels(batch)
        lab = torch.as_tensor(labels, dtype=torch.long, device=self.device)
        if lab.ndim == 1:
            lab = lab.view(1, -1).expand(batch, -1)
        if lab.ndim != 2 or lab.shape != (batch, n):
            raise UserError(where, f"expected labels of shape ({batch}, {n}) or ({n},) (got {tuple(lab.shape)})")
        null = self.net.null_index.view(1, -1)
        lab = torch.where(lab == -1, null, lab)
        bad = (lab < 0) | (lab > null)
        if bad.any():
            r, c = (int(v) for v in bad.nonzero()[0])
            raise UserError(where, f"row {r}, column {c}: code {int(lab[r, c])} is not in 0..{self.label_classes[c] - 1} "
                                   "(or -1 for none)")
        return lab.contiguous()

    # ---- first stage -------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) signal in [-1, 1] -> (B, C', L') latent. No gradient: the first stage is fixed while the
        diffusion trains (learned ones are trained before, by `train.py --stage first_stage`)."""
        with torch.no_grad():
            return self.first_stage.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C', L') latent -> (B, C, L) signal."""
        return self.first_stage.decode(z)

    def _latent_weight(self, mask: Optional[torch.Tensor], z: torch.Tensor) -> Optional[torch.Tensor]:
        """A data-space weight (B, 1 or C, L) -> latent-space weight (B, 1 or C', L') by averaging."""
        if mask is None:
            return None
        w = mask.to(z.dtype)
        if w.shape[1] not in (1, z.shape[1]):
            w = w.mean(dim=1, keepdim=True)
        if w.shape[-1] != z.shape[-1]:
            w = F.adaptive_avg_pool1d(w, z.shape[-1])
        return w

    # ---- training ----------------------------------------------------------------------------------------
    def training_loss(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None,
                      generator: Optional[torch.Generator] = None, mask: Optional[torch.Tensor] = None,
                      t: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                      cfg_dropout: Optional[bool] = None, reduction: str = "mean") -> torch.Tensor:
        """Diffusion loss of a batch x (B, C, L) in [-1, 1] with labels (B, n) int64.

        Draws (from `generator`, on its own device, in this order) the noise levels (timesteps
        t ~ U{0..T-1}, or for edm log-normal sigmas: training_noise.py), noise ~ N(0, I) and, when
        `cfg_dropout` (default: self.training), the guidance label dropout. `t` (B,) int64 and `noise`
        (B, C', L') may be given instead (e.g. for membership-inference scores). `mask` (B, 1 or C, L):
        per-sample weights in data space (0 = ignore, e.g. interpolated gaps). The per-sample loss is
        w(sigma) * d(F, target) + fourier_weight * fourier(D, z) (`_recipe_terms`). Returns the mean over
        the batch (reduction="mean") or one loss per sample (B,) (reduction="none").
        """
        z = self.encode(x)
        b, dev = z.shape[0], z.device
        gdev = generator.device if generator is not None else dev
        t, sigma = draw_noise_levels(self.schedule, self.parameterization, b, generator, gdev, t,
                                     self.p_mean, self.p_std)
        if noise is None:
            noise = torch.randn(z.shape, generator=generator, device=gdev, dtype=z.dtype)
        noise = noise.to(dev)
        if t is not None:
            t = t.to(dev)
            sigma = self.schedule.sigma_at(t)
        sigma = sigma.to(dev)
        if self.label_classes:
            if labels is None:
                raise ValueError("this model has label columns: pass labels (B, n)")
            labels = labels.to(dev)
            if self.training if cfg_dropout is None else cfg_dropout:
                labels = drop_labels(labels, self.label_classes, self.p_uncond, self.p_uncond_all, generator)
        out, target = self.precond.net_output_at(z, noise, sigma, labels if self.label_classes else None, t)
        w = self._latent_weight(mask, z)
        per_sample = self._recipe_terms(self.loss_fn(out, target, w), out, target, z, sigma, w)
        if reduction == "none":
            return per_sample
        if reduction != "mean":
            raise ValueError(f"reduction must be 'mean' or 'none' (got {reduction!r})")
        return per_sample.mean()

    def _recipe_terms(self, per_sample: torch.Tensor, out: torch.Tensor, target: torch.Tensor, z: torch.Tensor,
                      sigma: torch.Tensor, weight: Optional[torch.Tensor]) -> torch.Tensor:
        """The optional terms of the training recipe on the per-sample loss (B,) of output `out` against
        `target` (B, C', L') for clean latents z at noise levels sigma (B,):
        min-SNR-gamma weight (loss_weight.py) on that loss, then + fourier_weight * the Fourier term
        (fourier_loss.py) on the denoised estimate. The Fourier term is NOT multiplied by the min-SNR weight
        (Diffusion-TS multiplies both by its own timestep weight, but its network predicts x0, where the two
        live on one scale; for eps/v/edm the weight converts F-space to x0-space and would rescale an x0-space
        term wrongly, e.g. by EDM's lambda ~ 2.5e5 at sigma = 0.002)."""
        if self.min_snr_gamma is not None:
            c_out = self.precond.scalings(sigma, z)[1]
            per_sample = per_sample * min_snr_weight(sigma, c_out, self.min_snr_gamma)
        if self.fourier_weight > 0:
            distance = getattr(self.loss_fn, "distance", None)
            if distance is None:
                raise ValueError("fourier_weight needs a loss object with an elementwise `distance` (losses.py)")
            x0_hat = self.precond.x0_estimate(out, target, z, sigma)
            per_sample = per_sample + self.fourier_weight * fourier_loss(x0_hat, z, distance, weight)
        return per_sample

    # ---- sampling ----------------------------------------------------------------------------------------
    def plot_inputs(self, real: torch.Tensor) -> dict[str, Any]:
        """Extra `sample` arguments for epoch plots beside the real windows `real` (B, C, L): none here; a
        model conditioned on a signal (diffusion/superres.py) takes it from the real windows."""
        return {}

    def denoiser(self, x: torch.Tensor, sigma: torch.Tensor, labels: Optional[torch.Tensor] = None,
                 guidance_scale: float = 1.0, quantize: bool = False) -> torch.Tensor:
        """Latent-space denoiser D(x (B, C', L'), sigma (B,), labels (B, n)) -> x0_hat (B, C', L'), guided
        (classifier-free, one batched forward) when guidance_scale != 1. Labels are used as given."""
        d = Denoiser(self.net, self.schedule, self.parameterization, quantize=quantize, sigma_data=self.sigma_data)
        lab = labels if self.label_classes else None
        return CFGDenoiser(d, guidance_scale, self.label_classes)(x, sigma, lab)

    @torch.no_grad()
    def sample(self, n: int, labels: Optional[Union[torch.Tensor, Sequence[int]]] = None, sampler: str = "dpm_solver",
               steps: int = 20, guidance_scale: float = 1.0, seed: int = 0, batch_size: Optional[int] = None,
               start_index: int = 0, quantize: bool = False, return_info: bool = False,
               progress: Optional[Callable[[int, int], None]] = None, **opts: Any) -> Any:
        """Generate n windows (n, C, L) in data scale (decoded through the first stage), on the model's device.

        labels: None (unconditional), (n_labels,) for all, or (n, n_labels); -1 = no condition on a column.
        Sample i uses the noise streams of (seed, start_index + i): the same seed gives the same samples
        whatever `batch_size`, and a run split into calls with consecutive start_index equals one call.
        opts go to the sampler (eta, sigmas, ... see diffusion.samplers.sampler_options). With
        return_info=True returns (x, {"nfe": network evaluations per batch, "batches": ...}).
        `progress(done, n)` is called after each batch. The model is in eval mode while sampling.
        """
        if n < 0:
            raise UserError("samples", f"must be >= 0 (got {n})")
        lab = self.check_labels(labels, n)
        bs = int(batch_size or n or 1)
        if bs < 1:
            raise UserError("sample.batch_size", f"must be >= 1 (got {bs})")
        shape = self.latent_shape
        dtype = next(self.parameters()).dtype
        was_training = self.training
        self.eval()
        outs, nfe = [], []
        try:
            for i in range(0, n, bs):
                j = min(n, i + bs)
                rows = lab[i:j]
                fn = CountingDenoiser(lambda x, s, rows=rows: self.denoiser(x, s, rows, guidance_scale, quantize))
                noise = NoiseSource(seed, range(start_index + i, start_index + j), shape, self.device, dtype)
                z = run_sampler(sampler, fn, self.schedule, steps, noise, **opts)
                outs.append(self.decode(z))
                nfe.append(fn.nfe)
                if progress is not None:
                    progress(j, n)
        finally:
            self.train(was_training)
        x = torch.cat(outs) if outs else torch.zeros((0, self.channels, self.length), device=self.device)
        if return_info:
            return x, {"nfe": nfe, "batches": len(outs), "sampler": sampler, "steps": steps,
                       "guidance_scale": guidance_scale, "seed": seed}
        return x


def build_diffusion(model_cfg: Any, channels: int, length: int, label_classes: Sequence[int]) -> DiffusionModel:
    """The DiffusionModel described by a `model` config section for (C, L) windows and label columns with
    `label_classes[j]` classes each. Raises UserError for a window length the model cannot take."""
    if model_cfg.type != "diffusion":
        raise UserError("model.type", f"build_diffusion builds type 'diffusion' (got {model_cfg.type!r})")
    m = required_multiple(model_cfg)
    if length % m:
        lo = length // m * m
        raise UserError("data.window", f"window length {length} does not fit the model: it needs a multiple of {m} "
                        f"(first-stage factor x 2^(UNet levels - 1)); e.g. {lo or m} or {lo + m} "
                        f"(set data.window_multiple: {m} to round windows down)")
    fs = build_first_stage(model_cfg.first_stage, channels, length)
    c_lat, l_lat = fs.latent_shape(channels, length)
    u = model_cfg.resolved_unet()
    net = UNet1D.from_config(u, c_lat, c_lat, label_classes)
    net.check_length(l_lat)
    d = model_cfg.diffusion
    schedule = NoiseSchedule.from_config(d)
    return DiffusionModel(fs, net, schedule, d.parameterization, build_loss(d.loss), channels, length,
                          label_classes, p_uncond=d.p_uncond, p_uncond_all=d.p_uncond_all,
                          **recipe_options(d, l_lat))


def recipe_options(d: Any, latent_length: int) -> dict[str, Any]:
    """The training-recipe keyword arguments of DiffusionModel from a `model.diffusion` section, for a
    diffusion on latents of `latent_length` samples (fourier_weight "auto" = sqrt(L') / 5)."""
    return dict(min_snr_gamma=d.min_snr_gamma, fourier_weight=resolve_fourier_weight(d.fourier_weight, latent_length),
                sigma_data=d.sigma_data, p_mean=d.p_mean, p_std=d.p_std)
