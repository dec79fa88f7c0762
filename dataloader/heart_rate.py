"""Heart-rate measurement of one window: the functions that preparation (derived `source: heart_rate`
labels), generation (`--bpm` / `--baseline_bpm`) and evaluation (ECG and CTG physiology) share.

They live here, below evaluation/, because dataloader/ may not import evaluation/ (docs/design.md section 1);
evaluation/metrics/physio_ecg.py and physio_ctg.py import them, so a label computed at preparation time and a
rate scored at evaluation time are the same number.

Methods (`method:` of a heart-rate label), each `(signal (L,), fs) -> bpm or NaN`:
- `rpeaks`: an ECG lead in mV. R-peaks by neurokit2 (`nk.ecg_clean` method "neurokit" = 0.5 Hz high-pass +
  50 Hz powerline filter, then `nk.ecg_peaks` method "neurokit", no artefact correction; Makowski et al. 2021);
  rate = 60 / mean RR, defined only with >= 3 R-peaks and every RR interval within 0.25-2.0 s (240-30 bpm).
- `baseline`: a heart-rate channel in bpm (CTG's FHR). The FIGO baseline as in physio_ctg: samples valid
  within 50-240 bpm, 3.75-s epochs (Dawes-Redman), the smoothed-histogram mode of the epoch means refined
  twice as the median within +/- 10 bpm; NaN with < 50 % valid samples or under two epochs.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
from scipy.ndimage import uniform_filter1d

from .errors import UserError

RR_PLAUSIBLE_S = (0.25, 2.0)   # RR intervals outside (240-30 bpm) mean a missed or extra beat
EPOCH_S = 3.75                 # Dawes-Redman epoch, 1/16 min
FHR_VALID = (50.0, 240.0)      # FHR outside is signal loss or artefact


def _nk() -> Any:
    try:
        import neurokit2 as nk
    except ImportError:
        raise UserError("heart rate", "neurokit2 is not installed (pip install neurokit2)") from None
    return nk


def r_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of the R-peaks of one lead `(L,)` (neurokit2 clean + peaks); empty if none are found."""
    nk = _nk()
    sig = np.asarray(signal, dtype=np.float64)
    if not np.isfinite(sig).all() or np.ptp(sig) == 0:
        return np.zeros(0, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clean = nk.ecg_clean(sig, sampling_rate=fs, method="neurokit")
            _, info = nk.ecg_peaks(clean, sampling_rate=fs, method="neurokit", correct_artifacts=False)
        except (ValueError, IndexError, ZeroDivisionError):   # neurokit2 fails on some degenerate signals
            return np.zeros(0, dtype=np.int64)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def plausible_rr(peaks: np.ndarray, fs: float) -> np.ndarray | None:
    """RR intervals (s) `(P - 1,)` of sorted R-peak indices, or None without a rhythm (< 3 peaks, or an
    interval outside RR_PLAUSIBLE_S)."""
    peaks = np.sort(np.asarray(peaks))
    if len(peaks) < 3:
        return None
    rr = np.diff(peaks) / fs
    if rr.min() < RR_PLAUSIBLE_S[0] or rr.max() > RR_PLAUSIBLE_S[1]:
        return None
    return rr


def rpeak_rate(signal: np.ndarray, fs: float) -> float:
    """Heart rate (bpm) of one ECG lead `(L,)` at fs Hz: 60 / mean RR of plausible R-peaks, else NaN."""
    rr = plausible_rr(r_peaks(signal, fs), fs)
    return float("nan") if rr is None else float(60.0 / rr.mean())


def epochs(fhr: np.ndarray, valid: np.ndarray, fs: float
           ) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """3.75-s epochs (Dawes-Redman) of FHR `(L,)`: epoch index per sample `(L,)`, epoch count E, samples per
    epoch `(E,)`, and per epoch the mean bpm and mean pulse interval (ms) `(E,)` (NaN where under half valid)."""
    n = len(fhr)
    ep = np.floor(np.arange(n) / (EPOCH_S * fs)).astype(int)
    n_ep = ep[-1] + 1
    cnt = np.bincount(ep, minlength=n_ep)
    nv = np.bincount(ep, weights=valid, minlength=n_ep)
    ep_ok = nv >= 0.5 * cnt
    f0 = np.where(valid, fhr, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ep_bpm = np.bincount(ep, weights=f0, minlength=n_ep) / nv
        ep_pi = np.bincount(ep, weights=np.where(valid, 60000.0 / np.where(valid, fhr, 1.0), 0.0),
                            minlength=n_ep) / nv
    ep_bpm[~ep_ok] = np.nan
    ep_pi[~ep_ok] = np.nan
    return ep, n_ep, cnt, ep_bpm, ep_pi


def robust_level(values: np.ndarray) -> float:
    """Baseline of epoch means (bpm): smoothed-histogram mode, then twice the median within +/- 10 bpm."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return float("nan")
    edges = np.arange(np.floor(v.min()) - 2, np.ceil(v.max()) + 3)
    hist, edges = np.histogram(v, bins=edges)
    smooth = uniform_filter1d(hist.astype(float), 5, mode="constant")
    b = float(edges[np.argmax(smooth)] + 0.5)
    for _ in range(2):
        near = v[np.abs(v - b) <= 10.0]
        if len(near):
            b = float(np.median(near))
    return b


def fhr_valid(fhr: np.ndarray) -> np.ndarray:
    """Boolean `(L,)`: finite and within FHR_VALID."""
    return np.isfinite(fhr) & (fhr >= FHR_VALID[0]) & (fhr <= FHR_VALID[1])


def measurable_fhr(valid: np.ndarray, fs: float) -> bool:
    """Enough of a window `(L,)` is valid for a baseline: >= 50 % valid samples and at least two epochs."""
    return bool(valid.mean() >= 0.5 and len(valid) >= 2 * EPOCH_S * fs)


def fhr_baseline(fhr: np.ndarray, fs: float) -> float:
    """FIGO baseline (bpm) of a heart-rate trace `(L,)` in bpm at fs Hz (module docstring), or NaN."""
    fhr = np.asarray(fhr, dtype=np.float64)
    valid = fhr_valid(fhr)
    if not len(fhr) or not measurable_fhr(valid, fs):
        return float("nan")
    return robust_level(epochs(fhr, valid, fs)[3])


METHODS: dict[str, Callable[[np.ndarray, float], float]] = {"rpeaks": rpeak_rate, "baseline": fhr_baseline}


def measure(method: str, signal: np.ndarray, fs: float) -> float:
    """The rate (bpm, NaN when it cannot be measured) of one window `(L,)` by `method` (a METHODS name)."""
    if method not in METHODS:
        raise UserError("heart rate", f"unknown method {method!r} (expected one of: {', '.join(METHODS)})")
    return METHODS[method](signal, fs)


def window_rates(method: str, x: np.ndarray, starts: np.ndarray, length: int, fs: float) -> np.ndarray:
    """Rates (W,) float64 (NaN = not measurable) of the windows x[starts[w]: starts[w] + length] of one
    channel `x` (T,)."""
    return np.array([measure(method, x[int(s): int(s) + length], fs) for s in starts], dtype=np.float64)
