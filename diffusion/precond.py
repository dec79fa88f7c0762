"""Parameterisation wrappers: what the network predicts (eps, v or x0) lives here, never in the network.

Every sampler sees ONE denoiser interface, `D(x, sigma, labels) -> x0_hat`, in the variance-exploding
convention of Karras 2022 / k-diffusion: x = x0 + sigma * eps. The network sees the variance-preserving
input c_in * x with c_in = 1 / sqrt(1 + sigma^2) (= sqrt(alpha-bar) * x0 + sqrt(1 - alpha-bar) * eps) and
the (fractional) discrete timestep t(sigma) as its noise level, as a DDPM-trained network expects.
With F the network output:
  eps (Ho 2020):             D = x - sigma * F                            target eps
  v   (Salimans & Ho 2022):  D = x / (1 + sigma^2) - sigma * c_in * F     target (eps - sigma * x0) * c_in
  x0:                        D = F                                        target x0
(The v form is k-diffusion's DiscreteVDDPMDenoiser: c_skip = 1 / (sigma^2 + 1), c_out = -sigma * c_in.)
`quantize=True` rounds t(sigma) to the nearest trained timestep (k-diffusion's DiscreteEpsDDPMDenoiser);
c_in, c_skip and c_out always use the exact sigma.

edm (Karras 2022, Table 1 and EDM's EDMPrecond), with sd = sigma_data and r = 1 / sqrt(sigma^2 + sd^2):
  c_skip = sd^2 r^2, c_out = sigma sd r, c_in = r, c_noise = ln(sigma) / 4;  D = c_skip x + c_out F,
  target (x0 - c_skip x) / c_out = (x0 sigma / sd - eps sd) r   (= -(the v target) when sd = 1).
EDM feeds c_noise itself to a sinusoidal embedding; ours (unet1d.timestep_embedding, top frequency
1 rad per unit) was made for timesteps in [0, 1000), and c_noise spans only ~2.7 units over [0.002, 80],
where every sinusoid would be nearly constant. So the network sees c_noise mapped affinely onto that range,
EDM_LEVEL_SCALE * (c_noise - c_noise(sigma_min)) / (c_noise(sigma_max) - c_noise(sigma_min)) with the
schedule's sigma_min and sigma_max: 0 at sigma_min, 1000 at sigma_max, linear in ln(sigma) (training
draws outside the range map a little outside [0, 1000], which the sinusoids take). The network input
is continuous: `quantize` has no effect on an edm model.
"""
from __future__ import annotations

import math
from typing import Callable, Literal, Optional

import torch
from torch import nn

from dataloader.errors import UserError

from .schedule import NoiseSchedule

Parameterization = Literal["eps", "v", "x0", "edm"]
PARAMETERIZATIONS = ("eps", "v", "x0")          # the discrete-time targets (uniform timesteps in training)
ALL_PARAMETERIZATIONS = PARAMETERIZATIONS + ("edm",)  # + continuous noise levels (log-normal sigma)
EDM_LEVEL_SCALE = 1000.0  # edm: the network's noise input spans [0, this] over [sigma_min, sigma_max]

# (x (B, C, L), sigma (B,)) -> x0_hat (B, C, L): what samplers call (labels and guidance already bound)
DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _col(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) matching x's rank, in x's dtype."""
    return s.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


class Denoiser:
    """Wrap a network `net(x_in (B, C, L), t (B,), labels)` as `D(x, sigma, labels) -> x0_hat` (B, C, L).

    A plain object holding a reference to the network (not a Module: the owner registers the network once,
    so its weights appear once in state dicts and safetensors files).
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule, parameterization: Parameterization = "eps",
                 quantize: bool = False, sigma_data: float = 0.5) -> None:
        if parameterization not in ALL_PARAMETERIZATIONS:
            raise UserError("model.diffusion.parameterization",
                            f"unknown {parameterization!r}; valid: {', '.join(ALL_PARAMETERIZATIONS)}")
        if not sigma_data > 0:
            raise UserError("model.diffusion.sigma_data", f"must be > 0 (got {sigma_data})")
        self.net = net
        self.schedule = schedule
        self.parameterization = parameterization
        self.quantize = quantize
        self.sigma_data = float(sigma_data)

    def scalings(self, sigma: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in), each (B, 1, 1): D = c_skip * x + c_out * F(c_in * x)."""
        s = _col(sigma, x)
        if self.parameterization == "edm":
            sd = self.sigma_data
            r = (s * s + sd * sd).rsqrt()
            return (sd * sd) * r * r, (s * sd) * r, r
        c_in = (1 + s * s).rsqrt()
        if self.parameterization == "eps":
            return torch.ones_like(s), -s, c_in
        if self.parameterization == "v":
            return c_in * c_in, -s * c_in, c_in
        return torch.zeros_like(s), torch.ones_like(s), c_in

    def noise_level(self, sigma: torch.Tensor) -> torch.Tensor:
        """sigma (B,) -> the network's noise input (B,) float32: the (fractional or quantised) discrete timestep,
        or for edm c_noise = ln(sigma) / 4 mapped onto [0, EDM_LEVEL_SCALE] (module docstring)."""
        if self.parameterization == "edm":
            lo, hi = math.log(self.schedule.sigma_min), math.log(self.schedule.sigma_max)
            return (EDM_LEVEL_SCALE * (sigma.double().log() - lo) / (hi - lo)).float()
        return self.schedule.sigma_to_t(sigma, quantize=self.quantize).float()

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, C, L) = x0 + sigma * eps, sigma (B,) -> x0_hat (B, C, L)."""
        c_skip, c_out, c_in = self.scalings(sigma, x)
        out = self.net(x * c_in, self.noise_level(sigma), labels)
        return torch.addcmul(c_skip * x, c_out, out) if self.parameterization != "x0" else out

    def target(self, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The network's training target for x = x0 + sigma * noise: (B, C, L)."""
        if self.parameterization == "eps":
            return noise
        if self.parameterization == "x0":
            return x0
        s = _col(sigma, x0)
        if self.parameterization == "edm":  # (x0 - c_skip x) / c_out, simplified so nothing cancels
            sd = self.sigma_data
            return (x0 * (s / sd) - noise * sd) * (s * s + sd * sd).rsqrt()
        return (noise - s * x0) * (1 + s * s).rsqrt()

    def x0_estimate(self, out: torch.Tensor, target: torch.Tensor, x0: torch.Tensor,
                    sigma: torch.Tensor) -> torch.Tensor:
        """The denoised estimate D = c_skip x + c_out F of a training forward, (B, C, L), written as
        x0 + c_out * (F - target) (equal, because c_skip x + c_out * target = x0 by the target's definition):
        the direct form loses digits to cancellation when sigma x is large (eps: c_skip x ~ 157 at sigma_max)."""
        if self.parameterization == "x0":
            return out
        return x0 + self.scalings(sigma, x0)[1] * (out - target)

    def net_output(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                   labels: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Training forward at integer timesteps t (B,): (network output F, its target), both (B, C, L)."""
        return self.net_output_at(x0, noise, self.schedule.sigma_at(t).to(x0.device), labels, t)

    def net_output_at(self, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor,
                      labels: Optional[torch.Tensor], t: Optional[torch.Tensor] = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training forward at noise levels sigma (B,): (network output F, its target), both (B, C, L).

        The discrete targets see the integer timesteps t (B,) they were drawn at (a DDPM network's input);
        edm sees `noise_level(sigma)` and needs no t."""
        if self.parameterization == "edm":
            level = self.noise_level(sigma)
        elif t is None:
            raise ValueError(f"parameterization {self.parameterization} trains at integer timesteps: pass t")
        else:
            level = t.float()
        c_in = self.scalings(sigma, x0)[2]
        x_in = c_in * x0 + (_col(sigma, x0) * c_in) * noise  # = c_in * (x0 + sigma * noise), no float32 cancellation
        return self.net(x_in, level, labels), self.target(x0, noise, sigma)
