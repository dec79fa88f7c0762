"""The Karras-family samplers of k-diffusion (Crowson; Karras, Aittala, Aila & Laine 2022), behind our one signature.

Why this adapter loads one file by hand: the k-diffusion package's `__init__` imports its whole training
stack (models, torchvision, CLIP, clean-fid), and its `utils.py` imports torchvision, which cannot load next
to the CPU build of torch. Its `sampling.py` needs only `utils.append_dims` (plus scipy, torchdiffeq,
torchsde and tqdm, which are installed). So k-diffusion is installed with `--no-deps` (see the Makefile) and
here `k_diffusion/sampling.py` is executed as a submodule of a small stand-in package whose `utils` provides
`append_dims`. Nothing else of k-diffusion is imported.

Noise levels: Karras 2022 eq. 5 (rho = 7), uniform in timestep, or exponential, always clipped to the trained
range [sigma_min, sigma_max], Karras and exponential starting at min(sigma_max, 80), and ending at 0
(`NoiseSchedule.sampling_sigmas`). The model's denoiser maps each continuous sigma to a fractional (or, with
quantize, the nearest) trained timestep, as k-diffusion's DiscreteEpsDDPMDenoiser does.

Randomness: ancestral samplers and the multistep SDE samplers (k_dpmpp_2m_sde, k_dpmpp_3m_sde: one noise draw
per step, on disjoint intervals, so independent draws are exact) take their fresh noise from our per-sample
NoiseSource (their `noise_sampler`). k_dpmpp_sde queries overlapping intervals (half step and full step), so it
keeps k-diffusion's BrownianTreeNoiseSampler, with one tree per sample seeded from (seed, sample index); it is
slow (torchsde's tree, about 3 ms per query per sample on CPU). Both make results independent of the batch.
Exception: k_dpm_adaptive chooses its step sizes from an error norm over the whole batch, so its samples
depend on which samples share a batch (it is deterministic for a fixed batch composition).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any, Callable, Literal, Optional

import torch

from dataloader.errors import UserError

from ..schedule import NoiseSchedule
from .base import DenoiseFn, NoiseSource, start_at

_STANDIN = "_physiodiff_kdiffusion"
_module: Optional[types.ModuleType] = None

Spacing = Literal["karras", "uniform", "exponential"]


def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """Append singleton dimensions to x until it has target_dims dimensions (k_diffusion.utils.append_dims)."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * missing]


def kdiffusion_sampling() -> types.ModuleType:
    """k_diffusion/sampling.py, loaded once without the rest of the package (see the module docstring)."""
    global _module
    if _module is not None:
        return _module
    spec = importlib.util.find_spec("k_diffusion")   # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise UserError("sampler", "the k_* samplers need k-diffusion: pip install --no-deps k-diffusion==0.1.1.post1 "
                                   "(plus scipy torchdiffeq torchsde tqdm; see the Makefile)")
    path = f"{list(spec.submodule_search_locations)[0]}/sampling.py"
    pkg = types.ModuleType(_STANDIN)
    pkg.__path__ = []                                  # a package, so `from . import utils` resolves
    utils = types.ModuleType(f"{_STANDIN}.utils")
    utils.append_dims = append_dims                    # the one name sampling.py uses from utils
    pkg.utils = utils
    sys.modules.setdefault(_STANDIN, pkg)
    sys.modules.setdefault(f"{_STANDIN}.utils", utils)
    mspec = importlib.util.spec_from_file_location(f"{_STANDIN}.sampling", path)
    assert mspec is not None and mspec.loader is not None
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    _module = mod
    return mod


# name -> (function in k_diffusion.sampling, kind); kind decides how sigmas and noise are passed
K_SAMPLERS: dict[str, tuple[str, str]] = {
    "k_euler": ("sample_euler", "ode"),                      # Karras 2022 Algorithm 2 without churn, 1st order
    "k_euler_a": ("sample_euler_ancestral", "ancestral"),    # Euler + ancestral noise (DDPM-like)
    "k_heun": ("sample_heun", "ode"),                        # Karras 2022 Algorithm 2 (2nd order, ~2 NFE/step)
    "k_dpm_2": ("sample_dpm_2", "ode"),                      # Karras 2022's DPM-Solver-2 variant
    "k_dpm_2_a": ("sample_dpm_2_ancestral", "ancestral"),
    "k_lms": ("sample_lms", "ode"),                          # linear multistep in sigma (order 4)
    "k_dpmpp_2m": ("sample_dpmpp_2m", "ode"),                # DPM-Solver++(2M) (Lu 2022)
    "k_dpmpp_2s_a": ("sample_dpmpp_2s_ancestral", "ancestral"),  # DPM-Solver++(2S) + ancestral noise
    "k_dpmpp_sde": ("sample_dpmpp_sde", "brownian"),         # DPM-Solver++ SDE (2 NFE/step)
    "k_dpmpp_2m_sde": ("sample_dpmpp_2m_sde", "ancestral"),  # DPM-Solver++(2M) SDE, 1 NFE/step
    "k_dpmpp_3m_sde": ("sample_dpmpp_3m_sde", "ancestral"),  # DPM-Solver++(3M) SDE, 1 NFE/step
    "k_dpm_fast": ("sample_dpm_fast", "fast"),               # DPM-Solver (Lu 2022a), NFE = steps + 1 (final denoise)
    "k_dpm_adaptive": ("sample_dpm_adaptive", "adaptive"),   # DPM-Solver-12/23 adaptive (steps ignored)
}


def _run(name: str, denoiser: DenoiseFn, x: torch.Tensor, schedule: NoiseSchedule, steps: int,
         noise: NoiseSource, sigmas: Spacing, eta: Optional[float], extra: dict[str, Any]) -> torch.Tensor:
    fn_name, kind = K_SAMPLERS[name]
    fn = getattr(kdiffusion_sampling(), fn_name)
    common = dict(disable=True)
    if kind in ("fast", "adaptive"):
        lo, hi = schedule.sigma_min, schedule.sampling_sigma_max
        x = start_at(x, schedule.sigma_max, hi)
        kw = dict(common, eta=0.0 if eta is None else eta, noise_sampler=noise, **extra)
        x = fn(denoiser, x, lo, hi, steps, **kw) if kind == "fast" else fn(denoiser, x, lo, hi, **kw)
        # k-diffusion's DPM-Solver integrates to sigma_min and returns that state, noise of sigma_min included
        # (0.01 of the scale at the linear schedule: rougher than many real channels); every other sampler
        # ends on the denoised estimate, so these do too, for one more network evaluation
        return denoiser(x, torch.full((x.shape[0],), lo, dtype=x.dtype, device=x.device))
    sig = schedule.sampling_sigmas(steps, sigmas).to(device=x.device, dtype=x.dtype)
    x = start_at(x, schedule.sigma_max, float(sig[0]))
    if kind == "ancestral":
        return fn(denoiser, x, sig, eta=1.0 if eta is None else eta, noise_sampler=noise, **common, **extra)
    if kind == "brownian":
        tree = kdiffusion_sampling().BrownianTreeNoiseSampler(
            x, float(sig[sig > 0].min()), float(sig.max()), seed=noise.entropy(stream=1))
        return fn(denoiser, x, sig, eta=1.0 if eta is None else eta, noise_sampler=tree, **common, **extra)
    return fn(denoiser, x, sig, **common, **extra)


def make_k_sampler(name: str) -> Callable[..., torch.Tensor]:
    """Our sampler signature around k-diffusion's `name` (a key of K_SAMPLERS)."""
    fn_name, kind = K_SAMPLERS[name]

    if kind == "ode" and name == "k_lms":
        def sampler(denoiser: DenoiseFn, x: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseSource,
                    sigmas: Spacing = "karras", order: int = 4) -> torch.Tensor:
            return _run(name, denoiser, x, schedule, steps, noise, sigmas, None, dict(order=order))
    elif kind == "ode":
        def sampler(denoiser: DenoiseFn, x: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseSource,
                    sigmas: Spacing = "karras") -> torch.Tensor:
            return _run(name, denoiser, x, schedule, steps, noise, sigmas, None, {})
    elif kind == "adaptive":
        def sampler(denoiser: DenoiseFn, x: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseSource,
                    eta: Optional[float] = None, order: int = 3, rtol: float = 0.05,
                    atol: float = 0.0078) -> torch.Tensor:
            return _run(name, denoiser, x, schedule, steps, noise, "karras", eta,
                        dict(order=order, rtol=rtol, atol=atol))
    elif kind == "fast":
        def sampler(denoiser: DenoiseFn, x: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseSource,
                    eta: Optional[float] = None) -> torch.Tensor:
            return _run(name, denoiser, x, schedule, steps, noise, "karras", eta, {})
    else:
        def sampler(denoiser: DenoiseFn, x: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseSource,
                    sigmas: Spacing = "karras", eta: Optional[float] = None,
                    s_noise: float = 1.0) -> torch.Tensor:
            return _run(name, denoiser, x, schedule, steps, noise, sigmas, eta, dict(s_noise=s_noise))

    sampler.__name__ = f"sample_{name}"
    sampler.__doc__ = f"k-diffusion {fn_name}: {K_SAMPLERS_DOC.get(name, '')}".rstrip(": ")
    return sampler


K_SAMPLERS_DOC = {
    "k_euler": "Euler on the probability-flow ODE (Karras 2022), 1 NFE/step",
    "k_euler_a": "Euler ancestral (stochastic, eta=1 default), 1 NFE/step",
    "k_heun": "Heun 2nd order (Karras 2022 Alg. 2), 2 NFE/step (1 on the last)",
    "k_dpm_2": "DPM-Solver-2 variant (Karras 2022), 2 NFE/step",
    "k_dpm_2_a": "DPM-Solver-2 ancestral (stochastic), 2 NFE/step",
    "k_lms": "linear multistep (order 4) in sigma, 1 NFE/step",
    "k_dpmpp_2m": "DPM-Solver++(2M) (Lu 2022) on Karras sigmas, 1 NFE/step",
    "k_dpmpp_2s_a": "DPM-Solver++(2S) ancestral (stochastic), 2 NFE/step",
    "k_dpmpp_sde": "DPM-Solver++ SDE (stochastic, Brownian tree per sample), 2 NFE/step",
    "k_dpmpp_2m_sde": "DPM-Solver++(2M) SDE (stochastic), 1 NFE/step",
    "k_dpmpp_3m_sde": "DPM-Solver++(3M) SDE (stochastic), 1 NFE/step",
    "k_dpm_fast": "DPM-Solver fast (Lu 2022a), NFE = steps + 1 (ends on the denoised estimate)",
    "k_dpm_adaptive": "DPM-Solver-12/23 adaptive step size (steps ignored; NFE reported; batch-dependent)",
}
