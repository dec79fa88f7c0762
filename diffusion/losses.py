"""Small callable loss objects (docs/design.md section 7.5, after EDM's loss.py): distance between the network's
output and its parameterisation's target (precond.Denoiser.target), one value per sample.

An optional weight (mask) (B, 1 or C, L) of non-negative numbers restricts the loss to the samples that
count (e.g. 0 on interpolated gaps): per sample, sum(w * d) / sum(w); a sample with no weight scores 0.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional

import torch

from dataloader.errors import UserError


class _PerSampleLoss(ABC):
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


class L2Loss(_PerSampleLoss):
    """Squared error (Ho 2020's simple loss when the target is eps)."""

    name = "l2"

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).square()


class L1Loss(_PerSampleLoss):
    """Absolute error (more robust to outliers; used by e.g. Chen 2020 WaveGrad)."""

    name = "l1"

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()


LOSSES: dict[str, Callable[[], _PerSampleLoss]] = {"l1": L1Loss, "l2": L2Loss}


def build_loss(name: str) -> _PerSampleLoss:
    """The loss object named in `model.diffusion.loss`."""
    if name not in LOSSES:
        raise UserError("model.diffusion.loss", f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    return LOSSES[name]()
