"""Roughness and range-limit touch shares (evaluation/metrics/signal_stats.py) on windows with known answers."""
from __future__ import annotations

import numpy as np

from evaluation.metrics.signal_stats import compare_signal, signal_stats


def test_roughness_and_touches_are_counted_per_channel() -> None:
    t = np.linspace(0, 1, 101)
    smooth = np.stack([120 + 10 * np.sin(2 * np.pi * t), 50 + 0 * t])  # FHR-like, UC-like stuck at its floor
    x = np.stack([smooth, smooth.copy(), smooth.copy(), smooth.copy()])  # (4, 2, 101)
    x[1, 0, 50] = 50.2      # one spike down to (within 0.5 % of) the 50 bpm floor
    x[2, 0, 10] = 209.5     # one up to the 210 bpm ceiling
    x[3, 1] = 60.0          # UC off its floor
    lo, hi = np.array([50.0, 0.0]), np.array([210.0, 100.0])
    s = signal_stats(x, lo, hi)
    assert s["touch_low"][0] == 0.25 and s["touch_high"][0] == 0.25 and s["touch"][0] == 0.5
    assert s["touch"][1] == 0.0  # 50 on a 0-100 channel is nowhere near a limit
    base = np.abs(np.diff(smooth[0])).mean()
    spike = (2 * (120 + 10 * np.sin(np.pi)) - 2 * 50.2) / 100  # the spike adds |down| + |up| in one window of 4
    assert base < s["roughness"][0] < base + 2.1 * spike


def test_compare_gives_the_ratio_against_the_reference() -> None:
    rng = np.random.default_rng(0)
    real = np.cumsum(rng.normal(0, 1, (50, 1, 64)), axis=2)
    rough = real + rng.normal(0, 3, real.shape)  # a floor of white noise on every sample
    lo, hi = np.array([-1e3]), np.array([1e3])
    same = compare_signal(real, real, ["a"], lo, hi)["channels"]["a"]
    noisy = compare_signal(real, rough, ["a"], lo, hi)["channels"]["a"]
    assert abs(same["roughness_ratio"] - 1.0) < 1e-12 and same["touch"] == same["real_touch"] == 0.0
    assert noisy["roughness_ratio"] > 2.0 and noisy["n"] == 50
