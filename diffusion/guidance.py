"""Classifier-free guidance (Ho & Salimans 2022).

Training: the label dropout that teaches one network conditional and unconditional denoising is part of
the loss (diffusion/loss/objective.py, `drop_labels`).
Sampling: `CFGDenoiser` runs the conditional and unconditional passes in ONE batched forward (concatenated
on the batch axis) and returns uncond + w * (cond - uncond); w = 1 is the plain conditional model (one pass).
Labels are never dropped at sampling: nothing here draws random numbers.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch

# (x (B, C, L), sigma (B,), labels (B, n)) -> x0_hat (B, C, L)
LabelledDenoiser = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


class CFGDenoiser:
    """Guided denoiser: uncond + scale * (cond - uncond) from one batched call of `denoiser` (x0 prediction).

    Guiding the x0 prediction equals guiding eps or v: each is an affine function of the network output with
    the same coefficients for both halves. `null` (n,) holds each column's null index.
    """

    def __init__(self, denoiser: LabelledDenoiser, scale: float, null: Union[torch.Tensor, Sequence[int]]) -> None:
        self.denoiser = denoiser
        self.scale = float(scale)
        self.null = torch.as_tensor(null, dtype=torch.long)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        """x (B, C, L), sigma (B,), labels (B, n) -> guided x0_hat (B, C, L)."""
        if self.scale == 1.0 or labels is None or labels.shape[-1] == 0:
            return self.denoiser(x, sigma, labels)   # w = 1 (or nothing to guide on): conditional pass only
        b = x.shape[0]
        uncond = self.null.to(labels.device).view(1, -1).expand(b, -1)
        out = self.denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([labels, uncond]))
        cond, unc = out[:b], out[b:]
        return torch.lerp(unc, cond, self.scale)     # unc + scale * (cond - unc)
