"""Scaling between physical units and the model's [-1, 1], and the int16 storage code.

Each channel has a physical range [lo, hi]: values are clipped to it, then mapped linearly so that
lo -> -1 and hi -> +1. The ranges are stored in every prepared file (never only in a config), so a
file can always be mapped back to physical units. `range: auto` takes min and max over the training
patients' measured samples only, so validation and test data cannot leak into the scaling.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .config.data_schema import ChannelSpec
from .errors import UserError

INT16_SCALE = 32767.0  # int16 storage: code = round(scaled * 32767), so [-1, 1] -> [-32767, 32767]


def _col(v: np.ndarray | Sequence[float], ndim: int) -> np.ndarray:
    """(C,) -> shape (C, 1) (or (C,) for 1-D input) to broadcast over (..., C, L)."""
    a = np.asarray(v, dtype=np.float64)
    return a.reshape(a.shape + (1,)) if ndim >= 2 else a


def to_scaled(x: np.ndarray, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """Physical (..., C, L) -> [-1, 1] (..., C, L), clipping to [lo, hi] first. lo, hi: (C,). NaN stays NaN."""
    lo_, hi_ = _col(lo, x.ndim), _col(hi, x.ndim)
    return 2.0 * (np.clip(x, lo_, hi_) - lo_) / (hi_ - lo_) - 1.0


def to_physical(x: np.ndarray, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """[-1, 1] (..., C, L) -> physical units (..., C, L). lo, hi: (C,)."""
    lo_, hi_ = _col(lo, x.ndim), _col(hi, x.ndim)
    return (np.asarray(x, dtype=np.float64) + 1.0) * 0.5 * (hi_ - lo_) + lo_


def quantize_int16(x_scaled: np.ndarray) -> np.ndarray:
    """[-1, 1] -> int16 codes round(x * 32767). Precision: 1/32767 of half the range."""
    return np.rint(np.clip(x_scaled, -1.0, 1.0) * INT16_SCALE).astype(np.int16)


def dequantize_int16(q: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """int16 codes -> [-1, 1] in `dtype`."""
    return q.astype(dtype) * dtype(1.0 / INT16_SCALE)


def fit_ranges(channels: list[ChannelSpec], train_values: Iterable[tuple[np.ndarray, np.ndarray]],
               where: str = "data.channels") -> list[tuple[float, float]]:
    """Physical [lo, hi] per channel: the configured range, or for `range: auto` the min/max of the
    measured (unmasked) samples in `train_values`, an iterable of (x (C, N), mask (C, N)) of TRAINING
    patients only. A constant channel gets [v - 1, v + 1] so that scaling stays defined."""
    auto = [c for c, ch in enumerate(channels) if ch.range == "auto"]
    lo = np.full(len(channels), np.inf)
    hi = np.full(len(channels), -np.inf)
    if auto:
        for x, m in train_values:
            for c in auto:
                v = x[c][~m[c] & np.isfinite(x[c])]
                if v.size:
                    lo[c] = min(lo[c], float(v.min()))
                    hi[c] = max(hi[c], float(v.max()))
    out: list[tuple[float, float]] = []
    for c, ch in enumerate(channels):
        if ch.range != "auto":
            out.append((float(ch.range[0]), float(ch.range[1])))
            continue
        if not np.isfinite(lo[c]):
            raise UserError(f"{where}.{c}.range", f"range: auto found no measured sample of {ch.name!r} "
                                                   "in the training patients; give the range")
        if hi[c] <= lo[c]:
            lo[c], hi[c] = lo[c] - 1.0, hi[c] + 1.0
        out.append((float(lo[c]), float(hi[c])))
    return out
