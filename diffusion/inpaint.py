"""Inpainting by replacement, as a denoiser wrapper: every sampler in the registry inpaints unchanged.

RePaint (Lugmayr et al. 2022) samples the unknown part of x with an unconditional model and, at every step,
replaces the known part by the known data noised to the current level, x_known(sigma) = x0_known + sigma * n
(the variance-exploding form of q(x_t | x_0)). A sampler here sees only `D(x, sigma) -> x0_hat`, so the
replacement is done on the denoiser's input and output: the network gets the known part re-noised to sigma
(fresh noise every call), and the estimate it returns is the known data exactly where the mask is set. Every
sampler then moves its state towards the known data there (its update is a combination of x and x0_hat whose
weight on x goes to 0 with sigma), and its last step, the denoised estimate at sigma = 0 (section 4 of the
design), equals the known data on the mask bit for bit.

Resampling ("time travel", RePaint section 4.2): the unknown part is produced conditionally on a noisy known
part, which it sees only through the network, so at large sigma the two need not agree. RePaint goes one step
down and re-noises back up, U times per step, before moving on. Inside a wrapper the step is local to one
call: `resample` times, x0_hat is computed, the input is moved deterministically (DDIM) to sigma * `jump`,
then fresh noise of variance sigma^2 (1 - jump^2) brings it back to sigma, with the known part replaced
again; the last estimate is returned. Each resampling costs one more network evaluation per call. The
sampler's own state is not changed (a wrapper cannot reach it): what it receives is the harmonised estimate,
which is what its update uses. Measured consequence (bench/results/seams_ctg.md): the estimate of a re-noised
input is smoother than the sampler's own, so resampling smooths the whole window, not only the join;
diffusion/continuation.py leaves it off by default.
"""
from __future__ import annotations

from typing import Callable

import torch

from .samplers import DenoiseFn


class ReplacementDenoiser:
    """`D'(x, sigma)` with the positions where `mask` is True pinned to `known`.

    known: (B, C, L) values on the mask (anything elsewhere); mask: (1 or B, 1 or C, L) bool, or float
    weights in [0, 1]: 1 pins exactly, 0 leaves free, and between, input and estimate are the weighted mean
    of the known and the sampled values (a soft edge, so that the join is a ramp rather than a step);
    draw(shape) -> standard normal noise (a seeded stream, so that the result is reproducible);
    resample: extra harmonisation passes per call (RePaint's U - 1; 0 = plain replacement);
    jump: the fraction of sigma the resampling pass steps down to before re-noising (0 < jump < 1).
    """

    def __init__(self, denoiser: DenoiseFn, known: torch.Tensor, mask: torch.Tensor,
                 draw: Callable[[tuple[int, ...]], torch.Tensor], resample: int = 1, jump: float = 0.5) -> None:
        if resample < 0:
            raise ValueError(f"resample must be >= 0 (got {resample})")
        if not 0.0 < jump < 1.0:
            raise ValueError(f"jump must be in (0, 1) (got {jump})")
        self.denoiser, self.known = denoiser, known
        self.weight = mask.to(known.dtype)
        self.hard = self.weight == 1
        self.draw, self.resample, self.jump = draw, int(resample), float(jump)

    def _blend(self, known: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """`known` where the weight is 1 (exactly), `other` where it is 0, the weighted mean between."""
        return torch.where(self.hard, known, self.weight * known + (1 - self.weight) * other)

    def _pin(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """x with the known part replaced by the known data noised to s (B, 1, 1)."""
        return self._blend(self.known + s * self.draw(tuple(x.shape)), x)

    def _estimate(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self._blend(self.known, self.denoiser(x, sigma))

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.view(-1, 1, 1).to(x.dtype)
        x_in = self._pin(x, s)
        for _ in range(self.resample):
            x0 = self._estimate(x_in, sigma)
            low = s * self.jump
            x_low = x0 + low * (x_in - x0) / s.clamp_min(1e-12)  # DDIM step down to jump * sigma
            up = (s**2 - low**2).sqrt()
            x_in = self._pin(x_low + up * self.draw(tuple(x.shape)), s)   # and back up with fresh noise
        return self._estimate(x_in, sigma)
