"""The one noise schedule that the loss, the parameterisation and every sampler read (docs/design.md section 7.1).

Discrete timesteps t = 0 .. T-1 (t = 0 is the least noisy): betas, alphas_cumprod (alpha-bar),
and the variance-exploding noise levels sigma_t = sqrt((1 - alpha-bar_t) / alpha-bar_t), so that
x_t = x_0 + sigma_t * eps (Karras 2022 convention; the variance-preserving x_t is x / sqrt(1 + sigma^2)).

- linear: betas linear in t (Ho 2020), from beta_start to beta_end given for T = 1000 and scaled by 1000 / T
  for other T (Nichol & Dhariwal 2021, section 3), so that any T reaches a comparable final noise level;
- cosine: alpha-bar_t = f(t+1) / f(0), f(u) = cos(((u / T) + s) / (1 + s) * pi / 2)^2, s = 0.008, betas clipped
  to 0.999 (Nichol & Dhariwal 2021, eq. 17). Index t here is their t + 1: every index has beta > 0.
- edm: the T sigmas themselves, Karras-spaced (Karras 2022 eq. 5) and ascending,
  sigma_t = (sigma_min^(1/rho) + t / (T-1) * (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho, with
  alpha-bar_t = 1 / (1 + sigma_t^2) and betas from the alpha-bar ratios. A continuous-noise (EDM) model does
  not train on this table; it exists so that the samplers that walk trained timesteps (ddpm, ddim, plms,
  dpm_solver) and the k-samplers (sigma_min, sigma_max) run unchanged, and so that scores taken at given
  timesteps (privacy) have noise levels.

Continuous noise levels (Karras-spaced k-samplers) map to fractional timesteps by linear interpolation of
log sigma between neighbouring steps, as k-diffusion's `DiscreteSchedule` does; `respace` gives the
subset of timesteps that a sampler with fewer steps visits (Nichol & Dhariwal 2021, section 4).
Tables are float64; lookups return the query's dtype and device.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch

from dataloader.errors import UserError

CosineOffset = 0.008  # s of Nichol & Dhariwal 2021: keeps beta_1 from being vanishingly small

# Where continuous-sigma spacings (karras, exponential) start: Karras 2022's sigma_max for data of scale about
# 0.5 (ours lie in [-1, 1]). Above it the signal is under 1/80 of the noise and the denoised estimate is the
# data mean, so steps there change nothing. The cosine schedule's last trained level is 2.0e4 (its beta
# clipped at 0.999; the one before is 642, so levels between fall between trained timesteps): from there,
# Karras spacing put 5 of k_heun's 10 steps above sigma 600 and left one step from 6 to 0.44, the rough,
# failed samples of bench/results/etth2_samplers_20nfe.md.
SAMPLING_SIGMA_CAP = 80.0


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """n noise levels ascending from sigma_min to sigma_max, Karras 2022 eq. 5 spacing: float64 (n,)."""
    if not 0 < sigma_min < sigma_max:
        raise UserError("model.diffusion.sigma_min", f"must be > 0 and < sigma_max (got {sigma_min}, {sigma_max})")
    if rho <= 0:
        raise UserError("model.diffusion.rho", f"must be > 0 (got {rho})")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (lo + ramp * (hi - lo)) ** rho


def _karras_betas(n: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """The betas whose alpha-bars are 1 / (1 + sigma^2) at `karras_sigmas`: beta_t = 1 - ab_t / ab_{t-1},
    ab_{-1} = 1 (a discrete chain that visits exactly these noise levels)."""
    ab = 1 / (1 + karras_sigmas(n, sigma_min, sigma_max, rho) ** 2)
    return 1 - ab / torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])


class NoiseSchedule:
    """Betas, alpha-bars and sigmas of a discrete diffusion with `num_steps` steps, and conversions."""

    @classmethod
    def from_config(cls, d: Any) -> "NoiseSchedule":
        """The schedule of a `model.diffusion` config section."""
        return cls(d.schedule, d.num_steps, d.beta_start, d.beta_end, d.sigma_min, d.sigma_max, d.rho)

    def __init__(self, kind: Literal["linear", "cosine", "edm"] = "linear", num_steps: int = 1000,
                 beta_start: float = 1e-4, beta_end: float = 0.02, sigma_min: float = 0.002,
                 sigma_max: float = 80.0, rho: float = 7.0) -> None:
        if num_steps < 2:
            raise UserError("model.diffusion.num_steps", f"must be >= 2 (got {num_steps})")
        self.kind, self.num_steps = kind, int(num_steps)
        T = self.num_steps
        if kind == "linear":
            scale = 1000.0 / T
            betas = torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64)
        elif kind == "cosine":
            u = torch.arange(T + 1, dtype=torch.float64)
            f = torch.cos((u / T + CosineOffset) / (1 + CosineOffset) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        elif kind == "edm":
            betas = _karras_betas(T, sigma_min, sigma_max, rho)
        else:
            raise UserError("model.diffusion.schedule", f"unknown schedule {kind!r}; valid: linear, cosine, edm")
        if not (0 < betas.min() and betas.max() < 1):
            if kind == "edm":  # a step too large to take in one discrete step (few steps, huge sigma_max)
                raise UserError("model.diffusion.sigma_max", "the discrete betas must lie in (0, 1); use more steps")
            raise UserError("model.diffusion.beta_end", "betas must lie in (0, 1); use more steps or smaller betas")
        self.betas = betas
        if kind == "edm":  # the exact tables: cumprod and sqrt((1 - ab) / ab) would lose digits at sigma_min
            self.sigmas = karras_sigmas(T, sigma_min, sigma_max, rho)
            self.alphas_cumprod = 1 / (1 + self.sigmas**2)
        else:
            self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)
            self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()
        self.log_sigmas = self.sigmas.log()
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(sigmas, log_sigmas) float64 on `device`, copied once per device."""
        if device not in self._cache:
            self._cache[device] = (self.sigmas.to(device), self.log_sigmas.to(device))
        return self._cache[device]

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.kind!r}, num_steps={self.num_steps})"

    @property
    def sigma_min(self) -> float:
        """Smallest trained noise level (t = 0)."""
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        """Largest trained noise level (t = T-1): samplers start from N(0, sigma_max^2 I)."""
        return float(self.sigmas[-1])

    @property
    def sampling_sigma_max(self) -> float:
        """Where the karras and exponential spacings start: min(sigma_max, SAMPLING_SIGMA_CAP)."""
        return min(self.sigma_max, SAMPLING_SIGMA_CAP)

    def sigma_at(self, t: torch.Tensor) -> torch.Tensor:
        """Integer timesteps (any shape) -> sigma_t, float32 on t's device."""
        return self._tables(t.device)[0][t.long()].float()

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Fractional timesteps in [0, T-1] -> sigma by log-linear interpolation (k-diffusion DiscreteSchedule)."""
        ls = self._tables(t.device)[1]
        tf = t.double().clamp(0, self.num_steps - 1)
        lo = tf.floor().long()
        hi = (lo + 1).clamp(max=self.num_steps - 1)
        w = tf - lo
        return ((1 - w) * ls[lo] + w * ls[hi]).exp().to(t.dtype if t.is_floating_point() else torch.float32)

    def sigma_to_t(self, sigma: torch.Tensor, quantize: bool = False) -> torch.Tensor:
        """Noise levels -> fractional timesteps (inverse of `t_to_sigma`; clamped to the trained range).

        quantize=True rounds to the nearest trained timestep in log sigma (k-diffusion's `quantize`).
        """
        ls = self._tables(sigma.device)[1]
        log_sigma = sigma.double().clamp(min=1e-30).log()
        dists = log_sigma[..., None] - ls                        # (..., T)
        if quantize:
            return dists.abs().argmin(dim=-1).to(sigma.dtype)
        lo = (dists >= 0).sum(dim=-1).sub(1).clamp(0, self.num_steps - 2)
        hi = lo + 1
        w = ((ls[lo] - log_sigma) / (ls[lo] - ls[hi])).clamp(0, 1)
        return ((1 - w) * lo + w * hi).to(sigma.dtype)

    def respace(self, steps: int) -> torch.Tensor:
        """`steps` distinct timesteps, descending from T-1 to 0 (evenly spaced, rounded), int64 (steps,)."""
        if not 1 <= steps <= self.num_steps:
            raise UserError("sample.steps", f"must be between 1 and the {self.num_steps} training steps (got {steps})")
        if steps == 1:
            return torch.tensor([self.num_steps - 1])
        return torch.linspace(self.num_steps - 1, 0, steps, dtype=torch.float64).round().long()

    def respaced_sigmas(self, steps: int) -> torch.Tensor:
        """Noise levels of `respace(steps)` followed by a final 0, float64 (steps + 1,)."""
        return torch.cat([self.sigmas[self.respace(steps)], torch.zeros(1, dtype=torch.float64)])

    def sampling_sigmas(self, steps: int, spacing: Literal["karras", "uniform", "exponential"] = "karras",
                        rho: float = 7.0) -> torch.Tensor:
        """`steps` decreasing noise levels within the trained range, then 0: float64 (steps + 1,).

        karras: Karras 2022 eq. 5 (rho = 7); uniform: evenly spaced fractional timesteps (k-diffusion
        `get_sigmas`), from sigma_max; exponential: evenly spaced in log sigma. karras and exponential start
        at `sampling_sigma_max` (see SAMPLING_SIGMA_CAP); the sampler rescales its start (`base.start_at`).
        """
        lo = self.sigma_min
        hi = self.sigma_max if spacing == "uniform" else self.sampling_sigma_max
        if steps < 1:
            raise UserError("sample.steps", f"must be >= 1 (got {steps})")
        if steps == 1:
            s = torch.tensor([hi], dtype=torch.float64)
        elif spacing == "karras":
            ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
            s = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
        elif spacing == "uniform":
            s = self.t_to_sigma(torch.linspace(self.num_steps - 1, 0, steps, dtype=torch.float64))
        elif spacing == "exponential":
            s = torch.linspace(math.log(hi), math.log(lo), steps, dtype=torch.float64).exp()
        else:
            raise UserError("sample.sigmas", f"unknown spacing {spacing!r}; valid: karras, uniform, exponential")
        return torch.cat([s.clamp(lo, hi), torch.zeros(1, dtype=torch.float64)])
