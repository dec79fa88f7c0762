"""Noise schedule: golden values for linear and cosine, conversions, respacing, sampling sigmas."""
from __future__ import annotations

import math

import pytest
import torch

from dataloader.errors import UserError
from diffusion.schedule import NoiseSchedule


def test_linear_golden_values():
    s = NoiseSchedule("linear", 1000, 1e-4, 0.02)
    # betas: 1e-4, 1e-4 + 0.0199 / 999, ..., 0.02 (Ho 2020)
    assert s.betas[0].item() == pytest.approx(1e-4, rel=1e-12)
    assert s.betas[1].item() == pytest.approx(1.1991991991991992e-4, rel=1e-12)
    assert s.betas[-1].item() == pytest.approx(0.02, rel=1e-12)
    # alpha-bar_0 = 0.9999, alpha-bar_1 = 0.9999 * (1 - 1.1992e-4)
    assert s.alphas_cumprod[0].item() == pytest.approx(0.9999, rel=1e-12)
    assert s.alphas_cumprod[1].item() == pytest.approx(0.99978009207207, rel=1e-12)
    # alpha-bar_T = exp(sum log(1 - beta)) ~ exp(-10.05 - 0.0670 - 0.0007) = 4.036e-5 (the DDPM value)
    assert s.alphas_cumprod[-1].item() == pytest.approx(4.0358e-5, rel=1e-4)
    # sigma = sqrt((1 - a) / a): sigma_0 = sqrt(1e-4 / 0.9999), sigma_max = sqrt(1 / 4.0358e-5 - 1) = 157.41
    assert s.sigma_min == pytest.approx(math.sqrt(1e-4 / 0.9999), rel=1e-12)
    assert s.sigma_max == pytest.approx(157.407, rel=1e-4)


def test_linear_betas_scale_with_num_steps():
    # Nichol & Dhariwal 2021: betas given for T = 1000 are scaled by 1000 / T
    s = NoiseSchedule("linear", 500, 1e-4, 0.02)
    assert s.betas[0].item() == pytest.approx(2e-4) and s.betas[-1].item() == pytest.approx(0.04)
    assert s.alphas_cumprod[-1].item() == pytest.approx(3.7661e-5, rel=1e-3)


def test_cosine_golden_values():
    s = NoiseSchedule("cosine", 1000)
    # alpha-bar_t = f(t+1) / f(0), f(u) = cos(((u / 1000) + 0.008) / 1.008 * pi / 2)^2 (Nichol & Dhariwal eq. 17)
    # f(0) = cos(0.0124666)^2 = 0.99984459; f(1) = cos(0.0140249)^2 = 0.99980331 -> 0.99995872
    assert s.alphas_cumprod[0].item() == pytest.approx(0.999958716, rel=1e-8)
    assert s.betas[0].item() == pytest.approx(4.1284e-5, rel=1e-4)
    # t = 499: f(500) = cos(0.503968 * pi / 2)^2 = 0.49376711 -> 0.49384359; sigma = sqrt(0.50616 / 0.49384)
    assert s.alphas_cumprod[499].item() == pytest.approx(0.49384359, rel=1e-7)
    assert s.sigmas[499].item() == pytest.approx(1.0123896, rel=1e-6)
    # the last beta is clipped to 0.999
    assert s.betas[-1].item() == pytest.approx(0.999)
    assert s.betas.max().item() <= 0.999


def test_sigma_t_round_trip_and_interpolation():
    s = NoiseSchedule("cosine", 1000)
    t = torch.tensor([0.0, 1.0, 17.0, 499.0, 998.0, 999.0], dtype=torch.float64)
    torch.testing.assert_close(s.sigma_to_t(s.t_to_sigma(t)), t, atol=1e-6, rtol=0)
    # halfway in t is halfway in log sigma
    mid = s.t_to_sigma(torch.tensor([10.5], dtype=torch.float64))
    assert mid.item() == pytest.approx(math.sqrt(s.sigmas[10].item() * s.sigmas[11].item()), rel=1e-10)
    # quantize rounds to the nearest trained step in log sigma; out of range clamps
    assert s.sigma_to_t(mid * 1.01, quantize=True).item() == 11
    assert s.sigma_to_t(torch.tensor([1e-9, 1e9])).tolist() == [0.0, 999.0]
    assert s.sigma_at(torch.tensor([3])).dtype == torch.float32


def test_respacing_and_sampling_sigmas():
    s = NoiseSchedule("linear", 1000)
    assert s.respace(5).tolist() == [999, 749, 500, 250, 0]
    assert s.respace(1).tolist() == [999]
    assert len(set(s.respace(1000).tolist())) == 1000
    with pytest.raises(UserError, match="between 1 and the 1000"):
        s.respace(1001)
    for spacing in ("karras", "uniform", "exponential"):
        sig = s.sampling_sigmas(10, spacing)
        assert len(sig) == 11 and sig[-1] == 0
        top = s.sigma_max if spacing == "uniform" else min(s.sigma_max, 80.0)   # linear: 157 -> 80
        assert sig[0].item() == pytest.approx(top) and sig[-2].item() == pytest.approx(s.sigma_min)
        assert bool((sig[:-1].diff() < 0).all())
    # Karras 2022 eq. 5 with rho = 7: the middle level of 3
    k = s.sampling_sigmas(3, "karras")[1].item()
    assert k == pytest.approx(((80.0 ** (1 / 7) + s.sigma_min ** (1 / 7)) / 2) ** 7, rel=1e-10)
    with pytest.raises(UserError, match="karras, uniform, exponential"):
        s.sampling_sigmas(3, "linear")
