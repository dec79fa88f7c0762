"""DDPM ancestral sampling (Ho 2020, Algorithm 2), on any subset of the trained timesteps.

With fewer steps than training, the visited timesteps tau_1 > ... > tau_S come from `schedule.respace` and the
step betas are recomputed from the alpha-bars, beta'_i = 1 - alpha-bar(tau_i) / alpha-bar(tau_{i-1})
(Nichol & Dhariwal 2021, section 4). Each step samples the posterior q(x_prev | x_t, x0 = D(x_t)) (Ho 2020
eqs. 6-7) in the variance-preserving coordinates z = sqrt(alpha-bar) * x. The last step returns x0_hat.
variance: "small" = posterior variance beta-tilde (equal to DDIM with eta = 1), "large" = beta' (Ho 2020 3.2).
"""
from __future__ import annotations

from typing import Literal

import torch

from dataloader.errors import UserError

from ..schedule import NoiseSchedule
from .base import DenoiseFn, NoiseSource, sigma_batch


@torch.no_grad()
def sample_ddpm(denoiser: DenoiseFn, x: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseSource,
                variance: Literal["small", "large"] = "small") -> torch.Tensor:
    """DDPM ancestral sampler (Ho 2020): `steps` respaced timesteps, one network evaluation each."""
    if variance not in ("small", "large"):
        raise UserError("sampler ddpm", f"variance must be small or large (got {variance!r})")
    ts = schedule.respace(steps).tolist()
    ab = schedule.alphas_cumprod.tolist()
    for i, t in enumerate(ts):
        ab_t = ab[t]
        ab_p = ab[ts[i + 1]] if i + 1 < len(ts) else 1.0
        x0 = denoiser(x, sigma_batch(schedule.sigmas[t], x))
        if i + 1 == len(ts):
            return x0                                   # ab_p = 1: the posterior mean is x0_hat, no noise
        beta = 1 - ab_t / ab_p
        c_x0 = ab_p**0.5 * beta / (1 - ab_t)
        c_z = (1 - beta) ** 0.5 * (1 - ab_p) / (1 - ab_t)
        var = beta * (1 - ab_p) / (1 - ab_t) if variance == "small" else beta
        z = c_x0 * x0 + (c_z * ab_t**0.5) * x + var**0.5 * noise.randn()
        x = z / ab_p**0.5
    return x
