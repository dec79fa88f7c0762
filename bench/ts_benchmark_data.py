"""Inputs of `python -m bench.ts_benchmark`: real windows from a CSV series or a .npy, synthetic windows from the
project's synthetic HDF5 or a .npy; all as float32 `(N, T, C)` in [0, 1] (synthetic may stray outside).

Real CSV, as TimeGAN's `real_data_loading` and Diffusion-TS's `CustomDataset` prepare a series: columns that are
not numeric (ETTh2's `date`) are dropped, every remaining channel is min-max scaled over the WHOLE series
(sklearn MinMaxScaler semantics: a constant channel becomes 0), and windows of `window` steps are cut with
stride 1 (N = rows - window + 1). TimeGAN also reverses the series and shuffles the windows; neither changes a
score (the scores draw windows at random), so neither is done.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dataloader.errors import UserError

WINDOWS = (24, 64, 128, 256)


def read_series(path: str, where: str) -> tuple[np.ndarray, list[str]]:
    """A CSV (optionally .gz) with a header row -> numeric columns `(rows, C)` float64 and their names."""
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise UserError(where, f"{path}: cannot be read as CSV ({type(e).__name__})") from None
    num = df.select_dtypes(include="number")
    if num.shape[1] == 0:
        raise UserError(where, f"{path}: has no numeric column")
    data = num.to_numpy(dtype=np.float64)
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).any(axis=1).argmax())
        raise UserError(where, f"{path}: data row {bad + 1} has a missing or non-finite value")
    return data, [str(c) for c in num.columns]


def minmax_series(data: np.ndarray) -> np.ndarray:
    """Every channel of `(rows, C)` to [0, 1] with its own min and max over all rows (constant channel -> 0)."""
    lo, hi = data.min(axis=0), data.max(axis=0)
    rng = np.where(hi > lo, hi - lo, 1.0)          # MinMaxScaler: a zero range is treated as 1
    return (data - lo) / rng


def stride1_windows(data: np.ndarray, window: int, where: str) -> np.ndarray:
    """All windows of `window` consecutive rows: `(rows, C)` -> `(rows - window + 1, window, C)` float32."""
    if len(data) < window + 1:
        raise UserError(where, f"the series has {len(data)} rows, fewer than window {window} + 1")
    v = np.lib.stride_tricks.sliding_window_view(data, window, axis=0)   # (N, C, window)
    return np.ascontiguousarray(v.transpose(0, 2, 1)).astype(np.float32)


def load_npy(path: str, where: str) -> np.ndarray:
    """A .npy array `(N, T, C)` (no pickles)."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(where, f"{path}: cannot be read as .npy ({type(e).__name__})") from None
    if a.ndim != 3 or a.dtype.kind not in "iuf":
        raise UserError(where, f"{path}: expected a numeric array (N, T, C), got {a.dtype} {a.shape}")
    return a.astype(np.float32)


def load_real(path: str, window: int | None, where: str = "--real") -> tuple[np.ndarray, dict]:
    """Real windows `(N, T, C)` in [0, 1] and a description of how they were made."""
    p = Path(path)
    if not p.is_file():
        raise UserError(where, f"{path}: file not found")
    if p.suffix == ".npy":
        x = load_npy(path, where)
        if window is not None and x.shape[1] != window:
            raise UserError("--window", f"{window}, but {path} holds windows of {x.shape[1]} steps")
        return x, {"source": path, "format": "npy (used as given)"}
    if window is None:
        window = WINDOWS[0]
    data, names = read_series(path, where)
    x = stride1_windows(minmax_series(data), window, where)
    return x, {"source": path, "format": "csv series", "rows": len(data), "channels": names, "window": window,
               "stride": 1, "scaling": "per-channel min-max over the whole series"}


def load_synthetic(path: str, where: str = "--synthetic") -> tuple[np.ndarray, dict]:
    """Synthetic windows `(M, T, C)`: the project's HDF5 (its [-1, 1] copy mapped by (x + 1) / 2) or a .npy."""
    p = Path(path)
    if not p.is_file():
        raise UserError(where, f"{path}: file not found")
    if p.suffix == ".npy":
        return load_npy(path, where), {"source": path, "format": "npy (used as given)"}
    from dataloader.synthetic import read_synthetic

    samples, _, _ = read_synthetic(path, scaled=True)                 # (M, C, L) in [-1, 1]
    x = (np.ascontiguousarray(samples.transpose(0, 2, 1)) + 1.0) * 0.5
    return x.astype(np.float32), {"source": path, "format": "physiodiff synthetic HDF5, samples_scaled (x + 1) / 2"}
