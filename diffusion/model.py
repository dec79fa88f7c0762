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
from torch import nn

from dataloader.errors import UserError
from first_stage import FirstStage, build_first_stage

from .guidance import CFGDenoiser
from .loss import DiffusionLoss
from .precond import Denoiser
from .samplers import CountingDenoiser, NoiseSource, sample as run_sampler
from .schedule import NoiseSchedule
from .unet1d import UNet1D


def required_multiple(model_cfg: Any) -> int:
    """Window lengths the model accepts are multiples of this: first-stage factor x 2**(UNet levels - 1)
    (every first stage's time compression is its `factor`; identity has 1)."""
    return model_cfg.first_stage.factor * 2 ** (len(model_cfg.resolved_unet().channel_mult) - 1)


class DiffusionModel(nn.Module):
    """A conditional diffusion model on (C, L) windows with integer labels (one column per label)."""

    def __init__(self, first_stage: FirstStage, net: UNet1D, schedule: NoiseSchedule, parameterization: str,
                 loss: DiffusionLoss, channels: int, length: int, label_classes: Sequence[int],
                 sigma_data: float = 0.5) -> None:
        super().__init__()
        self.first_stage = first_stage
        self.net = net
        self.schedule = schedule
        self.parameterization = parameterization
        self.sigma_data = float(sigma_data)
        # plain object: net is registered once
        self.precond = Denoiser(net, schedule, parameterization, sigma_data=self.sigma_data)
        # the training objective (draws, target, weighting, distance): a plain object without parameters
        self.loss = loss
        self.channels, self.length = int(channels), int(length)
        self.label_classes = [int(n) for n in label_classes]

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

    # ---- training ----------------------------------------------------------------------------------------
    def training_loss(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None,
                      generator: Optional[torch.Generator] = None, mask: Optional[torch.Tensor] = None,
                      t: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                      cfg_dropout: Optional[bool] = None, reduction: str = "mean") -> torch.Tensor:
        """Diffusion loss of a batch x (B, C, L) in [-1, 1] with labels (B, n) int64: `self.loss` (a
        loss.DiffusionLoss, which draws t or sigma, noise and the label dropout from `generator`) on the
        latent of x. `mask` (B, 1 or C, L): per-sample weights in data space; `t` (B,) int64 and `noise`
        (B, C', L') may be given instead of drawn (membership-inference scores); label dropout when
        `cfg_dropout` (default: self.training). Returns the batch mean, or (B,) with reduction="none"."""
        dropout = self.training if cfg_dropout is None else cfg_dropout
        return self.loss(self.precond, self.encode(x), labels, generator, mask=mask, t=t, noise=noise,
                         cfg_dropout=dropout, reduction=reduction)

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
    return DiffusionModel(fs, net, schedule, d.parameterization, DiffusionLoss.from_config(d, l_lat, label_classes),
                          channels, length, label_classes, sigma_data=d.sigma_data)
