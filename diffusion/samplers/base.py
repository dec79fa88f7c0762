"""What every sampler shares: the denoiser type, per-sample noise streams, and the NFE counter.

A sampler is a plain function (docs/design.md section 7.3, after k-diffusion's sampling.py):

    fn(denoiser, x, schedule, steps, noise, **options) -> x0   (B, C, L)

- denoiser: `D(x (B, C, L), sigma (B,)) -> x0_hat`, variance-exploding convention x = x0 + sigma * eps,
  labels and guidance already bound (precond.Denoiser + guidance.CFGDenoiser);
- x: the starting point, N(0, sigma_max^2 I) drawn from `noise` and scaled by the schedule's sigma_max;
- schedule: the model's NoiseSchedule (trained timesteps and noise levels);
- steps: number of steps (network evaluations per step depend on the solver's order);
- noise: a NoiseSource giving every sample its own random stream, so the same seed gives the same sample
  whatever the batch it is drawn in.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_seed(seed: int, index: int, stream: int = 0) -> int:
    """A 64-bit seed for sample `index` of a run with `seed` (numpy SeedSequence: no collisions between
    nearby (seed, index) pairs, unlike seed + index). `stream` separates independent uses."""
    return int(np.random.SeedSequence([int(seed), int(index), int(stream)]).generate_state(1, np.uint64)[0])


class NoiseSource:
    """Per-sample Gaussian noise: sample `indices[i]` draws from a CPU generator seeded by (seed, indices[i]).

    Every draw returns (B, *shape) on `device`; the numbers of one sample depend only on (seed, index) and
    on how many draws came before, never on the batch, and are the same on every device (CPU streams).
    Each generator fills `chunk` draws at a time (a constant of the per-sample shape, never of the batch),
    which cuts the per-call overhead of many small draws. Calling the object (with any arguments) draws,
    so it is also a k-diffusion `noise_sampler`.
    """

    CHUNK_ELEMENTS = 2**18   # numbers pre-drawn per sample (1 MiB of float32)

    def __init__(self, seed: int, indices: Sequence[int], shape: Sequence[int],
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.seed = int(seed)
        self.indices = [int(i) for i in indices]
        self.shape = tuple(int(s) for s in shape)
        self.device, self.dtype = torch.device(device), dtype
        self.generators = [torch.Generator().manual_seed(sample_seed(seed, i)) for i in self.indices]
        numel = max(1, int(np.prod(self.shape)))
        self.chunk = int(min(32, max(1, self.CHUNK_ELEMENTS // numel)))
        self._buf = torch.empty(0)
        self._pos = self.chunk
        self.draws = 0

    def __len__(self) -> int:
        return len(self.indices)

    def randn(self) -> torch.Tensor:
        """One standard normal draw per sample: (B, *shape)."""
        if self._pos == self.chunk:
            self._buf = torch.empty((len(self.indices), self.chunk, *self.shape), dtype=torch.float32)
            for row, g in zip(self._buf, self.generators):
                row.normal_(generator=g)
            self._pos = 0
        out = self._buf[:, self._pos]
        self._pos += 1
        self.draws += 1
        return out.to(device=self.device, dtype=self.dtype, copy=True)

    def __call__(self, *args: object) -> torch.Tensor:
        return self.randn()

    def entropy(self, stream: int = 1) -> list[int]:
        """Per-sample integer seeds for a second source of randomness (e.g. one Brownian tree per sample)."""
        return [sample_seed(self.seed, i, stream) % (2**63 - 1) for i in self.indices]


class CountingDenoiser:
    """Wrap a denoiser and count its calls: `nfe` = network function evaluations (one per call, whatever
    the batch; a guided call is one batched forward of cond + uncond)."""

    def __init__(self, denoiser: DenoiseFn) -> None:
        self.denoiser = denoiser
        self.nfe = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.denoiser(x, sigma)


def sigma_batch(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A scalar noise level as a (B,) tensor in x's dtype and device."""
    return torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device)


def start_at(x: torch.Tensor, schedule_sigma_max: float, sigma0: float) -> torch.Tensor:
    """The start x_T = sigma_max * eps (B, C, L), rescaled to sigma0 * eps for a sampler whose first level is
    sigma0 <= sigma_max. Why this is sound: x at sigma0 is x0 + sigma0 * eps, and with sigma0 >= 80 the data
    term is under 1/80 of the noise (Karras 2022 start every sampler at 80 for the same reason)."""
    return x if sigma0 >= schedule_sigma_max else x * (sigma0 / schedule_sigma_max)


def ancestral_split(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step (k-diffusion get_ancestral_step): go deterministically to
    sigma_down, then add sigma_up fresh noise. With eta = 1 this is DDPM's posterior (Song 2021, DDIM eta)."""
    if eta == 0 or sigma_next == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
    return (sigma_next**2 - up**2) ** 0.5, up


def eps_from(x: torch.Tensor, x0: torch.Tensor, sigma: float) -> torch.Tensor:
    """The noise estimate implied by a denoised estimate: (x - x0) / sigma."""
    return (x - x0) / sigma


