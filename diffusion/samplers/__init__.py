"""Samplers: one signature, one registry (docs/design.md section 4).

    fn(denoiser, x, schedule, steps, noise, **options) -> x0     (see base.py for the arguments)

Native, written against the NoiseSchedule: ddpm, ddim, plms, dpm_solver. The Karras family through
k-diffusion's sampling module (kdiff.py explains the loading): k_euler, k_euler_a, k_heun, k_dpm_2,
k_dpm_2_a, k_lms, k_dpmpp_2m, k_dpmpp_2s_a, k_dpmpp_sde, k_dpmpp_2m_sde, k_dpmpp_3m_sde, k_dpm_fast,
k_dpm_adaptive. Use `sample(name, ...)`; it draws the start x_T ~ N(0, sigma_max^2 I) from the noise source.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import torch

from dataloader.errors import UserError

from ..schedule import NoiseSchedule
from .base import CountingDenoiser, DenoiseFn, NoiseSource, sample_seed
from .ddim import sample_ddim
from .ddpm import sample_ddpm
from .dpm_solver import sample_dpm_solver
from .kdiff import K_SAMPLERS, make_k_sampler
from .plms import sample_plms

SamplerFn = Callable[..., torch.Tensor]

SAMPLERS: dict[str, SamplerFn] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "plms": sample_plms,
    "dpm_solver": sample_dpm_solver,
    **{name: make_k_sampler(name) for name in K_SAMPLERS},
}

# options a caller may pass to any sampler (e.g. from the `sample` config section); a sampler that has no
# such option ignores them. Any other unknown option is an error.
COMMON_OPTIONS = ("eta", "sigmas")

# samplers whose samples do not depend on the batch they are drawn in (tests check it); see kdiff.py
BATCH_DEPENDENT = ("k_dpm_adaptive",)
STOCHASTIC = ("ddpm", "k_euler_a", "k_dpm_2_a", "k_dpmpp_2s_a", "k_dpmpp_sde", "k_dpmpp_2m_sde", "k_dpmpp_3m_sde")


def list_samplers() -> list[str]:
    """Every sampler name, native ones first."""
    return list(SAMPLERS)


def describe_samplers() -> dict[str, str]:
    """name -> one line (first docstring line), e.g. for `generate.py --help`."""
    return {k: (inspect.getdoc(f) or "").splitlines()[0] for k, f in SAMPLERS.items()}


def get_sampler(name: str) -> SamplerFn:
    """The sampler function; an unknown name raises UserError listing the valid ones."""
    if name not in SAMPLERS:
        raise UserError("sample.sampler", f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def sampler_options(name: str) -> dict[str, Any]:
    """The options a sampler accepts and their defaults."""
    params = list(inspect.signature(get_sampler(name)).parameters.values())[5:]
    return {p.name: p.default for p in params}


def sample(name: str, denoiser: DenoiseFn, schedule: NoiseSchedule, steps: int, noise: NoiseSource,
           **options: Any) -> torch.Tensor:
    """Run sampler `name` from x_T = sigma_max * noise.randn(): returns x0 (B, *noise.shape).

    `options` go to the sampler; `eta` and `sigmas` are dropped for samplers that do not take them, and
    None values mean "the sampler's default".
    """
    fn = get_sampler(name)
    accepted = sampler_options(name)
    kw = {}
    for k, v in options.items():
        if k in accepted:
            if v is not None:
                kw[k] = v
        elif k not in COMMON_OPTIONS:
            raise UserError(f"sampler {name}", f"unknown option {k!r}; valid: {', '.join(accepted) or 'none'}")
    if steps < 1:
        raise UserError("sample.steps", f"must be >= 1 (got {steps})")
    x = noise.randn() * schedule.sigma_max
    return fn(denoiser, x, schedule, int(steps), noise, **kw)


__all__ = ["SAMPLERS", "SamplerFn", "CountingDenoiser", "DenoiseFn", "NoiseSource", "sample_seed", "list_samplers",
           "describe_samplers", "get_sampler", "sampler_options", "sample", "COMMON_OPTIONS", "BATCH_DEPENDENT",
           "STOCHASTIC"]
