"""Windows: their length, their positions inside segments, and the per-patient preparation report.

Windows never cross a segment boundary (a long gap), so every window is cut from clean signal.
They are stored as (segment, offset) pairs and cut at read time: a small stride costs no disk.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .config.data_schema import DataConfig
from .errors import UserError


def window_length(cfg: DataConfig, fs: float, where: str = "data") -> tuple[int, str]:
    """Window length in samples at the output rate `fs`, rounded DOWN to `window_multiple`.

    Returns (length, note); the note says what was rounded, for the summary.
    """
    raw = cfg.window if cfg.window is not None else int(round(float(cfg.window_s or 0) * fs))
    key = "window" if cfg.window is not None else "window_s"
    length = (raw // cfg.window_multiple) * cfg.window_multiple
    if length < 1:
        raise UserError(f"{where}.{key}", f"window is {raw} samples at {fs:g} Hz, below one multiple of "
                                          f"window_multiple = {cfg.window_multiple}")
    note = (f"window {length} samples ({length / fs:g} s at {fs:g} Hz)"
            + (f", rounded down from {raw} to a multiple of {cfg.window_multiple}" if length != raw else ""))
    return length, note


def stride_samples(cfg: DataConfig, fs: float, where: str = "data") -> int:
    """Window hop in samples at the output rate; at least one sample."""
    s = int(round(cfg.stride_s * fs))
    if s < 1:
        raise UserError(f"{where}.stride_s", f"stride {cfg.stride_s:g} s is less than one sample at {fs:g} Hz")
    return s


def window_offsets(seg_len: int, length: int, stride: int) -> np.ndarray:
    """Offsets of every window of `length` samples inside a segment of `seg_len`, hop `stride`. (W,) int64."""
    if seg_len < length:
        return np.zeros(0, np.int64)
    return np.arange(0, seg_len - length + 1, stride, dtype=np.int64)


def window_index(segments: np.ndarray, length: int, stride: int, first_segment: int = 0) -> np.ndarray:
    """(S, 2) (start, length) segments -> (W, 2) int64 (segment number, offset in segment).

    Segment numbers start at `first_segment` (the segments' position in the concatenated file).
    """
    parts = [np.stack([np.full(len(o), first_segment + i, np.int64), o], axis=1)
             for i, (_, n) in enumerate(segments) for o in [window_offsets(int(n), length, stride)]]
    return np.concatenate(parts).reshape(-1, 2) if parts else np.zeros((0, 2), np.int64)


def report_row(patient: str, n_samples: int, segments: np.ndarray, n_windows: int, missing_frac: np.ndarray,
               masked_frac: np.ndarray, channel_names: list[str], status: str, split: str = "") -> dict[str, Any]:
    """One row of `<prepared>.report.csv`.

    missing_<ch>: fraction of the source samples marked missing; masked_<ch>: fraction of the kept
    segment samples that were interpolated or filled (the stored mask).
    """
    row: dict[str, Any] = {"patient": patient, "split": split, "samples": int(n_samples),
                           "segments": int(len(segments)),
                           "segment_samples": int(segments[:, 1].sum()) if len(segments) else 0,
                           "windows": int(n_windows)}
    for name, f in zip(channel_names, missing_frac):
        row[f"missing_{name}"] = round(float(f), 5)
    for name, f in zip(channel_names, masked_frac):
        row[f"masked_{name}"] = round(float(f), 5)
    row["status"] = status
    return row
