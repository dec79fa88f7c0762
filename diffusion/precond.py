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
"""
from __future__ import annotations

from typing import Callable, Literal, Optional

import torch
from torch import nn

from dataloader.errors import UserError

from .schedule import NoiseSchedule

Parameterization = Literal["eps", "v", "x0"]
PARAMETERIZATIONS = ("eps", "v", "x0")

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
                 quantize: bool = False) -> None:
        if parameterization not in PARAMETERIZATIONS:
            raise UserError("model.diffusion.parameterization",
                            f"unknown {parameterization!r}; valid: {', '.join(PARAMETERIZATIONS)}")
        self.net = net
        self.schedule = schedule
        self.parameterization = parameterization
        self.quantize = quantize

    def scalings(self, sigma: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in), each (B, 1, 1): D = c_skip * x + c_out * F(c_in * x)."""
        s = _col(sigma, x)
        c_in = (1 + s * s).rsqrt()
        if self.parameterization == "eps":
            return torch.ones_like(s), -s, c_in
        if self.parameterization == "v":
            return c_in * c_in, -s * c_in, c_in
        return torch.zeros_like(s), torch.ones_like(s), c_in

    def noise_level(self, sigma: torch.Tensor) -> torch.Tensor:
        """sigma (B,) -> the network's noise input: the (fractional or quantised) discrete timestep (B,)."""
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
        return (noise - s * x0) * (1 + s * s).rsqrt()

    def net_output(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                   labels: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Training forward at integer timesteps t (B,): (network output F, its target), both (B, C, L)."""
        sigma = self.schedule.sigma_at(t).to(x0.device)
        s = _col(sigma, x0)
        c_in = (1 + s * s).rsqrt()
        x_in = c_in * x0 + (s * c_in) * noise  # = c_in * (x0 + sigma * noise), without float32 cancellation
        return self.net(x_in, t.float(), labels), self.target(x0, noise, sigma)
