"""DPM-Solver++(2M): second-order multistep solver of the probability-flow ODE in data prediction
(Lu, Zhou, Bao, Chen, Li & Zhu 2022, "DPM-Solver++", Algorithm 2).

With lambda = -log sigma (VE sigma = sigma_VP / alpha) and h = lambda_next - lambda:
  x_next = (sigma_next / sigma) * x - expm1(-h) * D',
  D' = D_i (first step) or (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}, r = h_{i-1} / h_i.
The last step (to sigma = 0) returns the current x0 estimate. One network evaluation per step.

spacing: "logsnr" (default; uniform in lambda, i.e. log sigma, between the trained sigma_min and
min(sigma_max, 80), as Lu 2022 recommend for small signals), "time" (the respaced trained timesteps) or
"karras" (Karras 2022, rho 7; then this equals k-diffusion's `k_dpmpp_2m`, which a test checks). On the
analytic Gaussian test with 20 steps and the linear schedule, logsnr is 5x more accurate than time and
2.5x more than karras.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch

from ..schedule import NoiseSchedule
from dataloader.errors import UserError

from .base import DenoiseFn, NoiseSource, sigma_batch, start_at

SPACINGS = {"logsnr": "exponential", "karras": "karras"}


@torch.no_grad()
def sample_dpm_solver(denoiser: DenoiseFn, x: torch.Tensor, schedule: NoiseSchedule, steps: int,
                      noise: NoiseSource, spacing: Literal["logsnr", "time", "karras"] = "logsnr") -> torch.Tensor:
    """DPM-Solver++(2M) (Lu 2022): deterministic, 2nd order, `steps` evaluations (log-SNR spaced by default)."""
    if spacing == "time":
        sigmas = schedule.respaced_sigmas(steps).tolist()
    elif spacing in SPACINGS:
        sigmas = schedule.sampling_sigmas(steps, SPACINGS[spacing]).tolist()
    else:
        raise UserError("sampler dpm_solver", f"spacing must be logsnr, time or karras (got {spacing!r})")
    x = start_at(x, schedule.sigma_max, sigmas[0])
    old: Optional[torch.Tensor] = None
    h_last = 0.0
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x0 = denoiser(x, sigma_batch(s, x))
        if s_next == 0:
            return x0
        h = math.log(s / s_next)
        if old is None:
            d = x0
        else:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * old
        x = (s_next / s) * x - math.expm1(-h) * d
        old, h_last = x0, h
    return x
