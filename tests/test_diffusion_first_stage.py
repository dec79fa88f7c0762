"""First stages: registry, shapes, and that the sampling stage reconstructs band-limited signals."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from dataloader.config.typed import from_dict
from first_stage.config import FirstStageConfig
from dataloader.errors import UserError
from first_stage import FIRST_STAGES, build_first_stage


def _bandlimited(b: int, c: int, n: int, fmax: float, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Sum of sinusoids with frequencies up to fmax cycles/sample, amplitude about 1."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64)
    out = torch.zeros(b, c, n, dtype=torch.float64)
    for f in torch.linspace(0.001, fmax, 6).tolist():
        phase = torch.rand(b, c, 1, generator=g, dtype=torch.float64) * 2 * math.pi
        out += torch.sin(2 * math.pi * f * t + phase) / 6
    return out.to(dtype)


def test_registry_matches_schema_and_rejects_unknown_names():
    valid = "valid: " + ", ".join(FIRST_STAGES)  # the schema's list is the registry's: it cannot drift
    with pytest.raises(UserError, match=f"unknown first stage 'vae2'; {valid}$"):
        build_first_stage(SimpleNamespace(type="vae2"), 2, 64)
    with pytest.raises(UserError, match=f"f.yaml: model.first_stage.type: unknown first stage 'vae2'; {valid}$"):
        from_dict(FirstStageConfig, {"type": "vae2"}, "model.first_stage", "f.yaml")


def test_identity():
    fs = build_first_stage(FirstStageConfig(), 2, 100)
    x = torch.randn(3, 2, 100)
    assert fs.encode(x) is x and fs.decode(x) is x
    assert fs.latent_shape(2, 100) == (2, 100) and fs.loss(x) == {} and not fs.trainable


def test_sampling_shapes_and_bad_length():
    fs = build_first_stage(FirstStageConfig(type="sampling", factor=8), 2, 8192)
    x = torch.randn(3, 2, 8192)
    z = fs.encode(x)
    assert z.shape == (3, 2, 1024) and fs.latent_shape(2, 8192) == (2, 1024)
    assert fs.decode(z).shape == (3, 2, 8192)
    assert torch.equal(fs.encode(x), z)                       # deterministic
    assert fs.loss(x) == {} and not fs.trainable and len(list(fs.parameters())) == 0
    assert fs.state_dict() == {}                               # fixed kernels are not weights
    with pytest.raises(UserError, match="multiples of 8 .e.g. 8184 or 8192"):
        build_first_stage(FirstStageConfig(type="sampling", factor=8), 2, 8190)


# (kernel, highest frequency as a fraction of the latent's Nyquist, max error): sinc is band-limited
# interpolation (exact up to its transition band); cubic and linear are only good well below Nyquist
@pytest.mark.parametrize("interp,frac,tol", [("sinc", 0.6, 1e-3), ("cubic", 0.25, 5e-3), ("linear", 0.25, 0.04)])
def test_sampling_reconstructs_bandlimited_signals(interp, frac, tol):
    k = 8
    fs = build_first_stage(FirstStageConfig(type="sampling", factor=k, interp=interp), 2, 4096)
    x = _bandlimited(4, 2, 4096, fmax=frac / (2 * k))
    z = fs.encode(x)
    # the latent is the signal at samples 0, k, 2k, ... (phase 0)
    assert (z - x[..., ::k])[..., 32:-32].abs().max() < 1e-3
    err = (fs.decode(z) - x)[..., 256:-256].abs().max().item()  # away from the edges (odd-reflection padding)
    assert err < tol, err


def test_sampling_removes_content_above_the_new_nyquist():
    k = 4
    fs = build_first_stage(FirstStageConfig(type="sampling", factor=k), 1, 2048)
    t = torch.arange(2048.0)
    hi = torch.sin(2 * math.pi * 0.2 * t).view(1, 1, -1)      # above fs / 2k = 0.125: must not alias
    assert fs.encode(hi)[..., 40:-40].abs().max() < 2e-3


def test_sampling_follows_dtype_and_short_signals():
    fs = build_first_stage(FirstStageConfig(type="sampling", factor=4), 3, 64)
    x = _bandlimited(2, 3, 64, 0.05, dtype=torch.float64)
    y = fs.decode(fs.encode(x))
    assert y.dtype == torch.float64 and y.shape == x.shape    # shorter than the filter: replication padding
