"""Per-window CTG physiology features and their real-vs-synthetic comparison (docs/evaluation.md section 1).

Inputs: FHR in bpm and UC (mmHg or toco units) sampled at fs Hz (1 and 4 Hz tested); the caller says which
channels they are (by index or name): nothing else in physiodiff assumes CTG.

Definitions (FIGO 2015 = Ayres-de-Campos et al., FIGO consensus guidelines on intrapartum fetal monitoring;
Dawes-Redman = Dawes, Moulden & Redman 1991, Pardey et al. 2002):
- valid FHR: finite and within 50-240 bpm (outside is signal loss or artefact); gaps are linearly interpolated
  for event detection; a window with < 50 % valid samples gets NaN features.
- epochs: 3.75 s (1/16 min, Dawes-Redman); sample k belongs to epoch floor(k / (3.75 fs)), so at 1 Hz epochs
  hold 3 or 4 samples; an epoch with < half its samples valid is invalid.
- baseline_bpm: the mode of the histogram of epoch means (1-bpm bins, 5-bin moving average), refined twice as
  the median of the epoch means within +/- 10 bpm of it: the level the FHR returns to, excluding accelerations
  and decelerations in the spirit of FIGO / Dawes-Redman; not rounded to 5 bpm. For event detection a
  baseline is computed the same way per ~10-min segment (FIGO's baseline period) and interpolated linearly
  between segment centres.
- accelerations / decelerations per hour: runs of the FHR (5-s moving median) at least 15 bpm above / below
  the baseline curve for >= 15 s (the spec's reading of FIGO: time spent beyond +/-15 bpm; note FIGO 2015 asks
  > 10 s for decelerations: pass decel_min_s=10); gaps < 5 s inside a run are bridged; runs > 10 min
  (a baseline change in FIGO) are not counted.
- stv_ms (Dawes-Redman short-term variation): epoch means of the pulse interval 60000 / FHR (ms); the mean
  absolute difference of consecutive valid epochs, leaving out epochs inside decelerations.
- ltv_ms (Dawes-Redman long-term variation): per full minute (16 epochs, >= 8 valid, no deceleration) the
  range max - min of the epoch pulse-interval means; the mean over minutes, in ms.
- variability_bpm (FIGO amplitude, "bandwidth"): per full minute without accelerations or decelerations, the
  range of 1-s mean FHR; the mean over minutes, in bpm.
- contractions_per_h: UC smoothed by a 10-s moving average; resting tone = the 10th percentile per ~10-min
  segment (interpolated); a contraction is a run >= `uc_threshold` (default 15 units) above the tone lasting
  >= `uc_min_s` (default 30 s), gaps < 10 s bridged. Events per hour = count * 3600 / window duration.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d
from scipy.stats import wasserstein_distance

from dataloader.errors import UserError
# the baseline's building blocks are shared with the derived heart-rate labels (method: baseline)
from dataloader.heart_rate import EPOCH_S, FHR_VALID, epochs as _epochs, fhr_valid, measurable_fhr  # noqa: F401
from dataloader.heart_rate import robust_level as _robust_level

FEATURES = ("baseline_bpm", "stv_ms", "ltv_ms", "variability_bpm", "accelerations_per_h", "decelerations_per_h",
            "contractions_per_h")

# what the `conditioning` metric compares per class by default: the FIGO baseline and variability amplitude,
# the two features FIGO's classification reads first (accelerations and contractions are rare in short windows)
CTG_CONDITIONING = ("baseline_bpm", "variability_bpm")

# clinical ranges, inclusive; None = open side
CTG_RANGES: dict[str, tuple[float | None, float | None]] = {
    "baseline_bpm": (110.0, 160.0),      # FIGO 2015: normal baseline 110-160 bpm
    "stv_ms": (3.0, None),               # Dawes-Redman criteria: STV > 3 ms
    "variability_bpm": (5.0, 25.0),      # FIGO 2015: normal variability 5-25 bpm
    "contractions_per_h": (None, 30.0),  # FIGO 2015: tachysystole = more than 5 contractions per 10 min
}

def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as (start, stop) index pairs."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(d[0::2], d[1::2]))


def _events(mask: np.ndarray, fs: float, min_s: float, bridge_s: float,
            max_s: float | None = None) -> list[tuple[int, int]]:
    """Runs of `mask` with gaps shorter than bridge_s bridged, kept if they last >= min_s (and <= max_s)."""
    runs = _runs(mask)
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < bridge_s * fs:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged
            if (b - a) >= min_s * fs - 1e-9 and (max_s is None or (b - a) <= max_s * fs)]


def _interp_gaps(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    idx = np.arange(len(x))
    return np.interp(idx, idx[valid], x[valid])


def _segment_curve(values: np.ndarray, centre_of: np.ndarray, n_out: int, seg_len: int,
                   level: Any) -> np.ndarray:
    """Piecewise-linear curve through level(values of each ~seg_len-long segment) at the segment centres."""
    n = len(values)
    n_seg = max(1, int(round(n / seg_len)))
    bounds = np.linspace(0, n, n_seg + 1).astype(int)
    centres, levels = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        lv = level(values[a:b])
        if np.isfinite(lv):
            centres.append(centre_of[a:b].mean())
            levels.append(lv)
    if not levels:
        return np.full(n_out, np.nan)
    return np.interp(np.arange(n_out), centres, levels)


def ctg_window_features(fhr: np.ndarray, uc: np.ndarray | None, fs: float, *, accel_bpm: float = 15.0,
                        accel_min_s: float = 15.0, decel_min_s: float = 15.0, uc_threshold: float = 15.0,
                        uc_min_s: float = 30.0) -> dict[str, float]:
    """Features of one window: FHR `(L,)` in bpm, UC `(L,)` or None, at fs Hz (see the module docstring).

    Returns a dict with the names in FEATURES (contractions_per_h is NaN without UC), plus
    "accelerations", "decelerations" and "contractions" (counts in the window).
    """
    fhr = np.asarray(fhr, dtype=np.float64)
    n = len(fhr)
    dur_h = n / fs / 3600.0
    out = {k: float("nan") for k in FEATURES}
    out.update(accelerations=float("nan"), decelerations=float("nan"), contractions=float("nan"))
    if uc is not None:
        out.update(_contractions(np.asarray(uc, dtype=np.float64), fs, uc_threshold, uc_min_s, dur_h))
    valid = fhr_valid(fhr)
    if not n or not measurable_fhr(valid, fs):
        return out

    ep, n_ep, cnt, ep_bpm, ep_pi = _epochs(fhr, valid, fs)
    out["baseline_bpm"] = _robust_level(ep_bpm)
    seg_ep = int(round(600.0 / EPOCH_S))                                     # ~10-min segments (FIGO)
    ep_centre = np.bincount(ep, weights=np.arange(n), minlength=n_ep) / cnt  # sample index of each epoch centre
    base = _segment_curve(ep_bpm, ep_centre, n, seg_ep, _robust_level)

    # accelerations / decelerations on a lightly smoothed, gap-filled trace
    smooth = median_filter(_interp_gaps(fhr, valid), size=max(1, int(round(5.0 * fs))), mode="nearest")
    d = smooth - base
    acc = _events(d >= accel_bpm, fs, accel_min_s, 5.0, 600.0)
    dec = _events(d <= -accel_bpm, fs, decel_min_s, 5.0, 600.0)
    out["accelerations"], out["decelerations"] = float(len(acc)), float(len(dec))
    out["accelerations_per_h"], out["decelerations_per_h"] = len(acc) / dur_h, len(dec) / dur_h

    in_dec, in_acc = _mask(dec, n), _mask(acc, n)
    ep_dec = np.bincount(ep, weights=in_dec, minlength=n_ep) > 0
    pi = np.where(ep_dec, np.nan, ep_pi)           # epoch pulse intervals outside decelerations
    out.update(_interval_variability(pi, n_ep))
    out.update(_figo_variability(fhr, valid, in_dec | in_acc, fs))
    return out


def _mask(events: list[tuple[int, int]], n: int) -> np.ndarray:
    """Boolean `(n,)`: True inside any of the [start, end) sample ranges."""
    m = np.zeros(n, bool)
    for a, b in events:
        m[a:b] = True
    return m


def _interval_variability(pi: np.ndarray, n_ep: int) -> dict[str, float]:
    """STV and LTV (ms) from the epoch pulse intervals `(E,)` (NaN in decelerations); absent when undefined."""
    out = {}
    # STV: mean |difference| of consecutive epoch pulse intervals, outside decelerations
    diffs = np.abs(np.diff(pi))
    if np.isfinite(diffs).any():
        out["stv_ms"] = float(np.nanmean(diffs))
    # LTV: mean over full minutes (16 epochs) of the range of epoch pulse intervals
    n_min = n_ep // 16
    if n_min:
        m_pi = pi[: n_min * 16].reshape(n_min, 16)
        ok = np.isfinite(m_pi).sum(axis=1) >= 8
        if ok.any():
            out["ltv_ms"] = float(np.mean(np.nanmax(m_pi[ok], axis=1) - np.nanmin(m_pi[ok], axis=1)))
    return out


def _figo_variability(fhr: np.ndarray, valid: np.ndarray, in_event: np.ndarray, fs: float) -> dict[str, float]:
    """FIGO variability amplitude (bpm): per minute without events, the range of 1-s means; absent when no
    minute qualifies. fhr, valid, in_event: `(L,)`."""
    n = len(fhr)
    sec = int(round(fs)) if fs >= 1 else 1
    n_sec = n // sec
    with np.errstate(invalid="ignore"):
        s_mean = (np.where(valid, fhr, 0.0)[: n_sec * sec].reshape(n_sec, sec).sum(1)
                  / valid[: n_sec * sec].reshape(n_sec, sec).sum(1))
    s_event = in_event[: n_sec * sec].reshape(n_sec, sec).any(1)
    s_mean[s_event] = np.nan
    per_min = int(round(60.0 * fs / sec))
    n_m = n_sec // per_min
    if n_m:
        mm = s_mean[: n_m * per_min].reshape(n_m, per_min)
        ok = np.isfinite(mm).all(axis=1)
        if ok.any():
            return {"variability_bpm": float(np.mean(mm[ok].max(1) - mm[ok].min(1)))}
    return {}


def _contractions(uc: np.ndarray, fs: float, threshold: float, min_s: float, dur_h: float) -> dict[str, float]:
    valid = np.isfinite(uc)
    if valid.mean() < 0.5:
        return {"contractions": float("nan"), "contractions_per_h": float("nan")}
    u = uniform_filter1d(_interp_gaps(uc, valid), size=max(1, int(round(10.0 * fs))), mode="nearest")
    seg = int(round(600.0 * fs))
    tone = _segment_curve(u, np.arange(len(u)), len(u), seg, lambda v: float(np.percentile(v, 10)))
    ev = _events(u - tone >= threshold, fs, min_s, 10.0)
    return {"contractions": float(len(ev)), "contractions_per_h": len(ev) / dur_h}


def _channel(sel: int | str, names: Sequence[str] | None, c: int, what: str) -> int:
    if isinstance(sel, str):
        if names is None or sel not in names:
            raise UserError(f"ctg_features: {what}", f"channel {sel!r} not in {list(names or [])}")
        return list(names).index(sel)
    if not 0 <= sel < c:
        raise UserError(f"ctg_features: {what}", f"channel index {sel} out of range for {c} channels")
    return int(sel)


def ctg_features(x: np.ndarray, fs: float, fhr: int | str, uc: int | str | None = None,
                 channel_names: Sequence[str] | None = None, **kwargs: Any) -> np.ndarray:
    """Features `(N, 7)` (columns = FEATURES) of CTG windows `(N, C, L)`; `fhr` / `uc` select the FHR (bpm)
    and UC channels by index or by name in `channel_names`; kwargs go to `ctg_window_features`."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise UserError("ctg_features", f"windows must be (N, C, L), got shape {x.shape}")
    if fs <= 0:
        raise UserError("ctg_features", f"fs must be > 0, got {fs}")
    i_f = _channel(fhr, channel_names, x.shape[1], "fhr")
    i_u = None if uc is None else _channel(uc, channel_names, x.shape[1], "uc")
    rows = []
    for w in x:
        f = ctg_window_features(w[i_f], None if i_u is None else w[i_u], fs, **kwargs)
        rows.append([f[k] for k in FEATURES])
    return np.asarray(rows, dtype=np.float64).reshape(len(x), len(FEATURES))


def compare_features(real: np.ndarray, synth: np.ndarray, names: Sequence[str],
                     ranges: dict[str, tuple[float | None, float | None]] | None = None) -> dict[str, dict]:
    """Compare per-window feature distributions `(Nr, F)` vs `(Ns, F)`, column names `names`.

    Per feature (NaN rows left out): Wasserstein-1 distance (scipy.stats.wasserstein_distance, in the feature's
    unit), means, medians, the valid counts, and where `ranges` (default CTG_RANGES) has the feature, the share
    of windows inside the inclusive range for each set.
    """
    real, synth = np.atleast_2d(np.asarray(real, float)), np.atleast_2d(np.asarray(synth, float))
    if real.shape[1] != len(names) or synth.shape[1] != len(names):
        raise UserError("compare_features", f"{len(names)} names for {real.shape[1]} and {synth.shape[1]} columns")
    ranges = CTG_RANGES if ranges is None else ranges
    out: dict[str, dict] = {}
    for j, name in enumerate(names):
        r, s = real[:, j][np.isfinite(real[:, j])], synth[:, j][np.isfinite(synth[:, j])]
        row: dict[str, Any] = {"n_real": int(len(r)), "n_synth": int(len(s))}
        if len(r) and len(s):
            row.update(wasserstein=float(wasserstein_distance(r, s)), real_mean=float(r.mean()),
                       synth_mean=float(s.mean()), real_median=float(np.median(r)), synth_median=float(np.median(s)))
        else:
            row.update(wasserstein=float("nan"))
        if name in ranges:
            lo, hi = ranges[name]

            def inside(v: np.ndarray) -> float:
                ok = np.ones(len(v), bool)
                if lo is not None:
                    ok &= v >= lo
                if hi is not None:
                    ok &= v <= hi
                return float(ok.mean()) if len(v) else float("nan")

            row.update(range=[lo, hi], real_in_range=inside(r), synth_in_range=inside(s))
        out[name] = row
    return out
