"""Sample-level signal checks that need no model: step-to-step roughness and windows stuck at the range limits.

Both read the channels' own ranges from the prepared file, so they hold for any data set (nothing assumes CTG).

- roughness: mean |x[t+1] - x[t]| of each channel, in the channel's unit. A generator that leaves a floor of
  noise in every sample shows here first (issue 12: 4-35x real), long before a classifier notices.
- touch share: the share of windows with at least one sample within `tol` of the span from the channel's lower
  or upper range limit. Real recordings touch them where the sensor saturates or drops out; a generator that
  overshoots and is clipped touches them far more often (CTG: V-shaped spikes down to the 50 bpm floor).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

TOUCH_TOL = 0.005  # share of the channel's span: 0.8 bpm of CTG's 50-210 bpm FHR range


def roughness(x: np.ndarray) -> np.ndarray:
    """Mean |x[t+1] - x[t]| per channel of windows x `(N, C, L)` -> `(C,)` (zeros for one-sample windows)."""
    x = np.asarray(x, dtype=np.float64)
    return np.abs(np.diff(x, axis=2)).mean(axis=(0, 2)) if x.shape[2] > 1 else np.zeros(x.shape[1])


def signal_stats(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, tol: float = TOUCH_TOL) -> dict[str, np.ndarray]:
    """Per-channel roughness and range-limit touch shares of windows x `(N, C, L)` in physical units.

    `lo`, `hi` `(C,)`: the channels' range limits. Returns arrays `(C,)`: roughness (unit per sample),
    touch_low, touch_high and touch (either limit), the last three as shares of the N windows.
    """
    x = np.asarray(x, dtype=np.float64)
    span = (np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64))[None, :]
    rough = roughness(x)
    low = (x.min(axis=2) <= np.asarray(lo)[None, :] + tol * span)
    high = (x.max(axis=2) >= np.asarray(hi)[None, :] - tol * span)
    return {"roughness": rough, "touch_low": low.mean(axis=0), "touch_high": high.mean(axis=0),
            "touch": (low | high).mean(axis=0)}


def compare_signal(real: np.ndarray, synth: np.ndarray, names: Sequence[str], lo: np.ndarray, hi: np.ndarray,
                   tol: float = TOUCH_TOL) -> dict[str, Any]:
    """The stats of both sets per channel, with the roughness ratio synthetic / real (1.00 = as smooth as real).

    real, synth `(N, C, L)` and `(M, C, L)` in physical units. JSON-ready: {"tolerance", "channels": {name: ...}}.
    """
    r, s = signal_stats(real, lo, hi, tol), signal_stats(synth, lo, hi, tol)
    chans = {}
    for c, name in enumerate(names):
        ratio = s["roughness"][c] / r["roughness"][c] if r["roughness"][c] > 0 else float("nan")
        chans[name] = {"roughness": float(s["roughness"][c]), "real_roughness": float(r["roughness"][c]),
                       "roughness_ratio": float(ratio), "touch": float(s["touch"][c]),
                       "real_touch": float(r["touch"][c]), "touch_low": float(s["touch_low"][c]),
                       "touch_high": float(s["touch_high"][c]), "n": int(len(synth)), "n_real": int(len(real))}
    return {"tolerance": tol, "channels": chans}
