"""DDIM (Song, Meng & Ermon 2021), written in the variance-exploding form x = x0 + sigma * eps.

Each step predicts x0 and eps = (x - x0) / sigma, then moves to the next respaced noise level:
x_next = x0 + sigma_down * eps + sigma_up * z. Song 2021's sigma_eta(eta) in these coordinates is
sigma_up = eta * sigma_next * sqrt(1 - sigma_next^2 / sigma^2), sigma_down = sqrt(sigma_next^2 - sigma_up^2)
(k-diffusion's ancestral step): eta = 0 is the deterministic DDIM (Euler on the probability-flow ODE,
Karras 2022 section 4), eta = 1 is DDPM's ancestral sampler.
"""
from __future__ import annotations

import torch

from ..schedule import NoiseSchedule
from .base import DenoiseFn, NoiseSource, ancestral_split, eps_from, sigma_batch


@torch.no_grad()
def sample_ddim(denoiser: DenoiseFn, x: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseSource,
                eta: float = 0.0) -> torch.Tensor:
    """DDIM (Song 2021): `steps` respaced timesteps, one evaluation each; eta > 0 adds noise (1 = DDPM)."""
    sigmas = schedule.respaced_sigmas(steps).tolist()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x0 = denoiser(x, sigma_batch(s, x))
        if s_next == 0:
            return x0
        down, up = ancestral_split(s, s_next, eta)
        x = x0 + down * eps_from(x, x0, s)
        if up > 0:
            x = x + up * noise.randn()
    return x
