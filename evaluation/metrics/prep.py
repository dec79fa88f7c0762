"""Small array helpers shared by the metric files: input checks, block means, per-channel min-max scaling.

All windows are `(N, C, L)` numpy arrays in physical units unless a function says otherwise.
"""
from __future__ import annotations

import math

import numpy as np

from dataloader.errors import UserError


def as_windows(x: np.ndarray, where: str, min_n: int = 1) -> np.ndarray:
    """`x` as a finite float array `(N, C, L)` with at least `min_n` windows, else UserError naming `where`."""
    a = np.asarray(x)
    if a.ndim != 3:
        raise UserError(where, f"windows must be an array (N, C, L), got shape {a.shape}")
    if a.shape[0] < min_n:
        raise UserError(where, f"need at least {min_n} windows, got {a.shape[0]}")
    if a.shape[1] < 1 or a.shape[2] < 1:
        raise UserError(where, f"windows need at least 1 channel and 1 sample, got shape {a.shape}")
    a = a.astype(np.float64, copy=False) if a.dtype.kind != "f" else a
    if not np.isfinite(a).all():
        raise UserError(where, "windows contain NaN or inf (fill or drop gaps before evaluation)")
    return a


def same_shape_tail(a: np.ndarray, b: np.ndarray, where: str) -> None:
    """UserError unless `a` and `b` have the same channels and length (they may differ in N)."""
    if a.shape[1:] != b.shape[1:]:
        raise UserError(where, f"the two sets must have the same (C, L), got {a.shape[1:]} and {b.shape[1:]}")


def block_size_for(length: int, max_steps: int | None) -> int:
    """The block size b = ceil(L / max_steps) so that L // b <= max_steps (1 when no limit or L is short)."""
    if max_steps is None or length <= max_steps:
        return 1
    if max_steps < 1:
        raise UserError("max_steps", f"must be >= 1, got {max_steps}")
    return int(math.ceil(length / max_steps))


def block_mean(x: np.ndarray, block: int) -> np.ndarray:
    """Means of consecutive, non-overlapping blocks of `block` samples: `(N, C, L)` -> `(N, C, L // block)`.

    A last partial block (L % block samples) is dropped. block == 1 returns `x` unchanged.
    """
    if block <= 1:
        return x
    n, c, length = x.shape
    m = length // block
    return x[:, :, : m * block].reshape(n, c, m, block).mean(axis=3)


def minmax_fit(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel min and range of `real` `(N, C, L)`: `(C,)` each; a constant channel gets range 1."""
    lo = real.min(axis=(0, 2))
    rng = real.max(axis=(0, 2)) - lo
    return lo, np.where(rng > 0, rng, 1.0)


def minmax_apply(x: np.ndarray, lo: np.ndarray, rng: np.ndarray) -> np.ndarray:
    """(x - lo) / rng per channel, `(N, C, L)`; real data lands in [0, 1], other data may fall outside."""
    return (x - lo[None, :, None]) / rng[None, :, None]
