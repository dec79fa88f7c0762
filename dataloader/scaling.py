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


# range: auto refuses extremes this many bulk widths (q0.1 % .. q99.9 %) beyond the bulk: one stray 1e30 would
# otherwise become the range and squash every real value onto -1
OUTLIER_FACTOR = 100.0
_BULK_Q = (0.001, 0.999)
_KEEP_PER_RECORDING = 10_000  # values per recording and channel kept for the quantiles (evenly strided)


def fit_ranges(channels: list[ChannelSpec], train_values: Iterable[tuple[np.ndarray, np.ndarray]],
               where: str = "data.channels") -> list[tuple[float, float]]:
    """Physical [lo, hi] per channel: the configured range, or for `range: auto` the min/max of the
    measured (unmasked) samples in `train_values`, an iterable of (x (C, N), mask (C, N)) of TRAINING
    patients only. A constant channel gets [v - 1, v + 1] so that scaling stays defined. An auto range
    whose extremes lie absurdly far outside the bulk of the values (see `check_auto_range`) is refused."""
    auto = [c for c, ch in enumerate(channels) if ch.range == "auto"]
    lo = np.full(len(channels), np.inf)
    hi = np.full(len(channels), -np.inf)
    kept: dict[int, list[np.ndarray]] = {c: [] for c in auto}
    if auto:
        for x, m in train_values:
            for c in auto:
                v = x[c][~m[c] & np.isfinite(x[c])]
                if v.size:
                    lo[c] = min(lo[c], float(v.min()))
                    hi[c] = max(hi[c], float(v.max()))
                    kept[c].append(v[:: max(1, v.size // _KEEP_PER_RECORDING)])
    out: list[tuple[float, float]] = []
    for c, ch in enumerate(channels):
        if ch.range != "auto":
            out.append((float(ch.range[0]), float(ch.range[1])))
            continue
        if not np.isfinite(lo[c]):
            raise UserError(f"{where}.{c}.range", f"range: auto found no measured sample of {ch.name!r} "
                                                   "in the training patients; give the range")
        check_auto_range(ch.name, float(lo[c]), float(hi[c]), np.concatenate(kept[c]), f"{where}.{c}.range")
        if hi[c] <= lo[c]:
            lo[c], hi[c] = lo[c] - 1.0, hi[c] + 1.0
        out.append((float(lo[c]), float(hi[c])))
    return out


def check_auto_range(name: str, lo: float, hi: float, sample: np.ndarray, where: str) -> None:
    """Refuse an auto range [lo, hi] that a few absurd values make: lo or hi more than OUTLIER_FACTOR bulk
    widths beyond the bulk (q0.1 % .. q99.9 % of `sample` (M,), a strided subset of the values), or a width
    that is not a finite number. The bulk width falls back to the bulk's magnitude when the bulk is constant."""
    hint = "give the channel a range: [lo, hi], or valid: [lo, hi] to mark such values missing"
    if not np.isfinite(hi - lo):
        raise UserError(where, f"range: auto of {name!r} spans [{lo:g}, {hi:g}], not a finite width; {hint}")
    q_lo, q_hi = (float(q) for q in np.quantile(sample, _BULK_Q))
    width = (q_hi - q_lo) or max(abs(q_lo), abs(q_hi))
    if width <= 0:
        return  # a bulk of zeros: nothing to measure the extremes against
    for value, gap in ((hi, hi - q_hi), (lo, q_lo - lo)):
        if gap > OUTLIER_FACTOR * width:
            raise UserError(where, f"range: auto of {name!r} would reach {value:g}, {gap / width:.3g} times the "
                                   f"width of the bulk of the values [{q_lo:g}, {q_hi:g}] beyond it (q0.1 %, "
                                   f"q99.9 %); {hint}")
