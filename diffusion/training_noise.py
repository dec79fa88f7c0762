"""Which noise levels a training batch is drawn at.

- eps, v, x0 (Ho 2020): integer timesteps t ~ U{0 .. T-1} of the schedule, sigma = sigma_t;
- edm (Karras 2022, section 5 and EDM's training/loss.py EDMLoss): ln(sigma) ~ N(p_mean, p_std^2), EDM's
  P_mean = -1.2, P_std = 1.2 (continuous: no timestep).
Timesteps given by the caller (membership-inference scores at fixed noise levels) are used by every
parameterisation: an edm model is then scored at the schedule's table sigmas.
"""
from __future__ import annotations

from typing import Optional

import torch

from .schedule import NoiseSchedule


def draw_noise_levels(schedule: NoiseSchedule, parameterization: str, batch: int,
                      generator: Optional[torch.Generator], device: torch.device, t: Optional[torch.Tensor] = None,
                      p_mean: float = -1.2, p_std: float = 1.2) -> tuple[Optional[torch.Tensor], torch.Tensor]:
    """(t (B,) int64 or None, sigma (B,) float32), drawn on `device` (the generator's) unless t is given;
    one draw of `batch` numbers from `generator` when drawing (the order the training loop relies on)."""
    if t is None and parameterization == "edm":
        n = torch.randn(batch, generator=generator, device=device)
        return None, (p_mean + p_std * n).exp()
    if t is None:
        t = torch.randint(0, schedule.num_steps, (batch,), generator=generator, device=device)
    return t, schedule.sigma_at(t)
