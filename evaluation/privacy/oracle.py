"""Calibration "generators" with known leakage, for checking the attacks (docs/evaluation.md section 2).

`MemorisingDenoiser(windows, schedule)` is the exact minimiser of the diffusion loss on a finite set of windows:
its denoiser returns the posterior mean of x_0 under the empirical distribution of `windows`, so its sampler
returns those windows and nothing else. Built on the members' windows it is the worst-case leaking generator
(every attack must catch it); built on windows of patients outside the audit it carries no membership signal
(every attack must stay near chance). It has the interface the white-box scores use (`training_loss` with
given t and noise, `latent_shape`, `device`).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from diffusion.schedule import NoiseSchedule


class MemorisingDenoiser(nn.Module):
    """Optimal x_0-denoiser of the empirical distribution of windows (N, C, L); loss = MSE to x_0."""

    def __init__(self, windows: np.ndarray | torch.Tensor, schedule: Optional[NoiseSchedule] = None) -> None:
        super().__init__()
        w = torch.as_tensor(np.asarray(windows), dtype=torch.float32)
        self.register_buffer("windows", w)
        self.schedule = schedule or NoiseSchedule("cosine", 1000)

    @property
    def latent_shape(self) -> tuple[int, int]:
        return int(self.windows.shape[1]), int(self.windows.shape[2])

    @property
    def device(self) -> torch.device:
        return self.windows.device

    def denoise(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] under the empirical distribution: a softmax-weighted mean of the windows."""
        ab = self.schedule.alphas_cumprod.to(xt.device, xt.dtype)[t].view(-1, 1)
        flat, ref = xt.flatten(1), self.windows.flatten(1)
        d2 = (flat * flat).sum(1, keepdim=True) - 2 * ab.sqrt() * flat @ ref.T + ab * (ref * ref).sum(1)[None]
        w = torch.softmax(-d2 / (2 * (1 - ab)), dim=1)
        return (w @ ref).view_as(xt)

    def training_loss(self, x: torch.Tensor, labels: Any = None, generator: Optional[torch.Generator] = None,
                      mask: Any = None, t: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                      cfg_dropout: Optional[bool] = None, reduction: str = "mean") -> torch.Tensor:
        if t is None or noise is None:
            raise ValueError("the calibration denoiser scores given (t, noise) only")
        ab = self.schedule.alphas_cumprod.to(x.device, x.dtype)[t].view(-1, 1, 1)
        xt = ab.sqrt() * x + (1 - ab).sqrt() * noise
        per = ((self.denoise(xt, t) - x) ** 2).mean(dim=(1, 2))
        return per if reduction == "none" else per.mean()

    def sample_copies(self, n: int, seed: int = 0) -> np.ndarray:
        """n windows drawn from the empirical distribution: what this generator's sampler outputs."""
        idx = np.random.default_rng(seed).integers(0, len(self.windows), n)
        return self.windows[torch.as_tensor(idx)].cpu().numpy()
