"""Cleaning: mark missing samples, interpolate short gaps, resample, cut into segments at long gaps.

Order (docs/design.md section 2.3), all per channel:
1. Missing = NaN, the channel's sentinel (`missing: 0`), or outside `valid` (FHR < 50 bpm is an artefact).
2. Interior gaps of at most `max_gap_s` are linearly interpolated at the source rate (they become data,
   flagged in the mask). Longer gaps and gaps touching either end of the recording stay missing.
3. Resampling (if `target_fs`): `scipy.signal.resample_poly` needs a gap-free signal, and zeros or NaN in
   it would smear into their neighbours through the anti-aliasing filter. Long gaps are therefore filled
   with the *nearest* present value first, so each side of a gap sees its own edge held constant, which is
   what `padtype="edge"` does at a signal's ends. The masks are carried to the new rate by pooling: an
   output sample is missing/interpolated if any source sample within half an output period of it was.
4. Segments = maximal runs where every required channel is present. Inside a segment an optional channel's
   missing samples are filled by linear interpolation between its present samples (held constant before
   the first and after the last one); a channel with no present sample in the segment is left NaN and the
   caller fills it once the scaling range is known. Every filled sample is flagged in the mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .config.data_schema import ChannelSpec


@dataclass
class Cleaned:
    """A cleaned recording at the output rate."""

    x: np.ndarray               # (C, N) float64 physical; NaN only where a channel has no value in a segment
    mask: np.ndarray            # (C, N) bool, True = not measured (interpolated, filled or missing)
    segments: np.ndarray        # (S, 2) int64 (start, length) of every segment, in order
    fs: float                   # output rate in Hz
    missing_frac: np.ndarray    # (C,) fraction of source samples marked missing (before interpolation)


def mark_missing(x: np.ndarray, channels: list[ChannelSpec]) -> np.ndarray:
    """(C, N) physical -> (C, N) bool, True where a sample means "no signal"."""
    m = np.isnan(x)
    for c, ch in enumerate(channels):
        if isinstance(ch.missing, (int, float)) and not isinstance(ch.missing, bool):
            m[c] |= x[c] == float(ch.missing)
        if ch.valid is not None:
            with np.errstate(invalid="ignore"):
                m[c] |= (x[c] < ch.valid[0]) | (x[c] > ch.valid[1])
    return m


def runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) bool -> (starts, stops) of the maximal runs of True (stop exclusive)."""
    d = np.diff(np.concatenate(([0], flags.view(np.int8) if flags.dtype == bool else flags.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def interpolate_short_gaps(v: np.ndarray, miss: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly fill interior gaps of at most `max_gap` samples.

    v, miss: (N,). Returns (values, interpolated flags); samples of longer or edge gaps keep their value
    and are still missing (`miss & ~interpolated`).
    """
    out = v.copy()
    interp = np.zeros_like(miss)
    if max_gap <= 0 or not miss.any():
        return out, interp
    n = len(v)
    for s, e in zip(*runs(miss)):
        if s == 0 or e == n or e - s > max_gap:
            continue
        a, b = v[s - 1], v[e]
        t = np.arange(1, e - s + 1) / (e - s + 1)
        out[s:e] = a + (b - a) * t
        interp[s:e] = True
    return out, interp


def fill_linear(v: np.ndarray, miss: np.ndarray) -> np.ndarray:
    """Fill every missing sample by linear interpolation, constant beyond the first/last present one.

    v, miss: (N,). All missing -> NaN everywhere.
    """
    if not miss.any():
        return v.copy()
    ok = np.flatnonzero(~miss)
    if len(ok) == 0:
        return np.full_like(v, np.nan)
    out = v.copy()
    bad = np.flatnonzero(miss)
    out[bad] = np.interp(bad, ok, v[ok])
    return out


def fill_nearest(v: np.ndarray, miss: np.ndarray) -> np.ndarray:
    """Fill every missing sample with the nearest present value (ties go left). (N,) -> (N,)."""
    if not miss.any():
        return v.copy()
    ok = np.flatnonzero(~miss)
    if len(ok) == 0:
        return np.zeros_like(v)
    idx = np.arange(len(v))
    right = np.clip(np.searchsorted(ok, idx), 0, len(ok) - 1)
    left = np.clip(right - 1, 0, len(ok) - 1)
    use_left = np.abs(idx - ok[left]) <= np.abs(ok[right] - idx)
    return v[np.where(use_left, ok[left], ok[right])]


def rate_ratio(fs: float, target_fs: float) -> tuple[int, int]:
    """(up, down) for resample_poly; rates must be in a small rational ratio."""
    fr = Fraction(target_fs / fs).limit_denominator(1000)
    return fr.numerator, fr.denominator


def resample(x: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """Anti-aliased polyphase resampling of a gap-free (C, N) array -> (C, ceil(N * up / down))."""
    from scipy.signal import resample_poly

    up, down = rate_ratio(fs, target_fs)
    if up == down:
        return x.copy()
    return resample_poly(x, up, down, axis=-1, padtype="edge")


def pool_mask(m: np.ndarray, fs: float, target_fs: float, n_out: int) -> np.ndarray:
    """Carry a (C, N) bool mask to the new rate: output j is True if any source sample in
    [t_j - T/2, t_j + T/2) is, with T = one output period (upsampling: either neighbour of t_j)."""
    n = m.shape[-1]
    t = np.arange(n_out) * (fs / target_fs)          # output times in source samples
    half = 0.5 * fs / target_fs
    lo = np.ceil(t - half - 1e-9).astype(np.int64)
    hi = np.ceil(t + half - 1e-9).astype(np.int64)   # exclusive
    empty = hi <= lo
    # upsampling: no source sample within the period; both neighbours feed the interpolation
    lo = np.where(empty, np.floor(t + 1e-9).astype(np.int64), lo)
    hi = np.where(empty, np.ceil(t - 1e-9).astype(np.int64) + 1, hi)
    lo = np.clip(lo, 0, n - 1)
    hi = np.clip(hi, lo + 1, n)
    cs = np.concatenate([np.zeros((m.shape[0], 1), np.int64), np.cumsum(m, axis=-1, dtype=np.int64)], axis=-1)
    return (cs[:, hi] - cs[:, lo]) > 0


def find_segments(present: np.ndarray, min_len: int = 1) -> np.ndarray:
    """(N,) bool "all required channels present" -> (S, 2) int64 (start, length) runs of >= min_len."""
    s, e = runs(present)
    keep = (e - s) >= max(1, min_len)
    return np.stack([s[keep], (e - s)[keep]], axis=1).astype(np.int64).reshape(-1, 2)


def clean_recording(x: np.ndarray, fs: float, channels: list[ChannelSpec], max_gap_s: float,
                    target_fs: float | None = None, min_len: int = 1) -> Cleaned:
    """Clean one recording (steps 1-4 of the module docstring).

    x: (C, N) physical at `fs`. Segments shorter than `min_len` output samples are dropped (their
    samples stay in `x`, flagged missing).
    """
    miss = mark_missing(x, channels)
    missing_frac = miss.mean(axis=1) if x.shape[1] else np.ones(len(channels))
    max_gap = int(np.floor(max_gap_s * fs + 1e-9))
    vals = np.empty_like(x)
    interp = np.zeros_like(miss)
    for c in range(x.shape[0]):
        vals[c], interp[c] = interpolate_short_gaps(x[c], miss[c], max_gap)
    still = miss & ~interp
    out_fs = fs
    if target_fs is not None and abs(target_fs - fs) > 1e-9:
        for c in range(x.shape[0]):
            vals[c] = fill_nearest(vals[c], still[c])
        vals = resample(vals, fs, target_fs)
        n_out = vals.shape[1]
        still = pool_mask(still, fs, target_fs, n_out)
        interp = pool_mask(interp, fs, target_fs, n_out)
        out_fs = float(target_fs)
    required = np.array([ch.required for ch in channels])
    present = ~still[required].any(axis=0)
    segs = find_segments(present, min_len)
    mask = still | interp
    out = np.where(still, np.nan, vals)
    for s, n in segs:
        for c in np.flatnonzero(~required):
            m = still[c, s:s + n]
            if m.any():
                out[c, s:s + n] = fill_linear(vals[c, s:s + n], m)
    return Cleaned(x=out, mask=mask, segments=segs, fs=out_fs, missing_frac=missing_frac)
