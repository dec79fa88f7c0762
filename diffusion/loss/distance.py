"""The distance of the diffusion loss (loss/objective.py): small callable objects after EDM's loss.py, one value
per sample, between the network's output and its parameterisation's target (precond.Denoiser.target), and
Diffusion-TS's Fourier term between the spectra of the denoised estimate and of the clean window.

Weight (mask): an optional weight (B, 1 or C, L) of non-negative numbers restricts the loss to the samples that
count (e.g. 0 on interpolated gaps): per sample, sum(w * d) / sum(w); a sample with no weight scores 0.

Fourier term (Yuan & Qiao 2024, ICLR, eq. 7 and its code Models/interpretable_diffusion/gaussian_diffusion.py
`_train_loss`): Diffusion-TS takes torch.fft.fft along time with norm="forward" (divided by L), applies its loss
function (l1 by default) to the real parts and to the imaginary parts separately, adds the two, and averages
over every (bin, channel) of the full spectrum, as it averages the time-domain loss. Its weight is
`ff_weight = sqrt(seq_length) / 5` by default (`fourier_weight: auto` here, with L the length the diffusion
runs on: the latent length for latent diffusion). Here the same number comes from rfft: a real signal's
spectrum is Hermitian (bin L - k is the conjugate of bin k: equal real parts, negated imaginary parts), so
each bin strictly between 0 and L/2 stands for two bins of the full spectrum and is counted twice.
A time weight has no per-bin meaning, so it is applied before the transform, to the residual: the term
compares the spectra of w * D and w * x0, i.e. the spectrum of w * (D - x0), so samples with weight 0
contribute nothing; the term is then divided by the sample's mean weight, as the time-domain loss is
normalised by its weight (all-ones weights give Diffusion-TS's value; a sample with no weight scores 0).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable, Optional, Union

import torch

from dataloader.errors import UserError

# elementwise (a, b) -> d(a, b), same shape
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PerSampleLoss(ABC):
    """Mean over all but the batch axis of an elementwise distance, optionally weighted."""

    name = ""

    @abstractmethod
    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, pred: torch.Tensor, target: torch.Tensor,
                 weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """pred, target (B, C, L); weight (B, 1 or C, L) or None -> loss per sample (B,)."""
        d = self.distance(pred, target)
        if weight is None:
            return d.flatten(1).mean(1)
        w = weight.to(d.dtype).expand_as(d)
        return (d * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp(min=1e-8)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class L2Loss(PerSampleLoss):
    """Squared error (Ho 2020's simple loss when the target is eps)."""

    name = "l2"

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).square()


class L1Loss(PerSampleLoss):
    """Absolute error (more robust to outliers; used by e.g. Chen 2020 WaveGrad)."""

    name = "l1"

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()


DISTANCES: dict[str, Callable[[], PerSampleLoss]] = {"l1": L1Loss, "l2": L2Loss}


def build_distance(name: str) -> PerSampleLoss:
    """The per-sample distance named in `model.diffusion.loss`."""
    if name not in DISTANCES:
        raise UserError("model.diffusion.loss", f"unknown loss {name!r}; valid: {', '.join(DISTANCES)}")
    return DISTANCES[name]()


def resolve_fourier_weight(weight: Union[float, str], length: int) -> float:
    """The `model.diffusion.fourier_weight` value for windows of `length` samples: "auto" = sqrt(L) / 5."""
    if weight == "auto":
        return math.sqrt(length) / 5
    if isinstance(weight, str) or not weight >= 0:
        raise UserError("model.diffusion.fourier_weight", f"expected a number >= 0 or auto (got {weight!r})")
    return float(weight)


def _bin_counts(length: int, device: torch.device) -> torch.Tensor:
    """How many bins of the full length-L spectrum each rfft bin stands for: (L // 2 + 1,) float32."""
    m = torch.full((length // 2 + 1,), 2.0, device=device)
    m[0] = 1.0
    if length % 2 == 0:
        m[-1] = 1.0           # the Nyquist bin is its own conjugate
    return m


def fourier_loss(x0_hat: torch.Tensor, x0: torch.Tensor, distance: Distance,
                 weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-sample Fourier term (B,) between x0_hat and x0 (B, C, L); weight (B, 1 or C, L) or None (module
    docstring). `distance` is elementwise (e.g. L1Loss().distance)."""
    a, b = x0_hat.float(), x0.float()  # FFTs in float32 also under autocast (half-precision FFTs are restricted)
    norm_w = None
    if weight is not None:
        w = weight.to(a.dtype).expand_as(a)
        a, b = a * w, b * w
        norm_w = w.flatten(1).mean(1)
    fa, fb = torch.fft.rfft(a, dim=-1, norm="forward"), torch.fft.rfft(b, dim=-1, norm="forward")
    d = distance(fa.real, fb.real) + distance(fa.imag, fb.imag)          # (B, C, L // 2 + 1)
    length = a.shape[-1]
    per = (d * _bin_counts(length, d.device)).flatten(1).sum(1) / (a.shape[1] * length)
    if norm_w is not None:
        per = per / norm_w.clamp(min=1e-8)
    return per.to(x0_hat.dtype)
