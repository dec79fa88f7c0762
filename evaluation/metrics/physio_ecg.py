"""Per-window ECG physiology features with neurokit2 (docs/evaluation.md section 1, "physiology, ECG").

On one lead chosen by the caller (index or name), in mV at fs Hz:
- R-peaks (dataloader/heart_rate.py, shared with the derived heart-rate labels): `nk.ecg_clean` (method "neurokit": 0.5 Hz high-pass + 50 Hz powerline filter) then `nk.ecg_peaks`
  (method "neurokit", no artefact correction) (Makowski et al. 2021, NeuroKit2);
- rhythm_detected: 1 when there are >= 3 R-peaks and every RR interval is plausible, 0.25-2.0 s (240-30 bpm);
- hr_bpm = 60 / mean RR; rmssd_ms = sqrt(mean(diff(RR)^2)); sdnn_ms = std(RR, ddof=1); all NaN when no rhythm
  was detected (the share of detected windows is reported on its own);
- n_peaks: the number of R-peaks found.
Ranges for `compare_features(..., ranges=ECG_RANGES)`: resting heart rate 60-100 bpm (the usual adult
definition of normal sinus rate); RMSSD 19-75 ms and SDNN 32-93 ms, the spread of healthy-adult means in
Nunan et al. 2010 (Pacing Clin Electrophysiol 33:1407). Those are 5-minute norms: on 10-s windows RMSSD and SDNN
are ultra-short-term estimates, so read the shares as a plausibility check, not a diagnosis.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dataloader.errors import UserError
from dataloader.heart_rate import RR_PLAUSIBLE_S, plausible_rr, r_peaks  # noqa: F401 (re-exported)

ECG_FEATURES = ("hr_bpm", "rmssd_ms", "sdnn_ms", "n_peaks", "rhythm_detected")

# what the `conditioning` metric compares per class by default: rate and beat-to-beat variability
ECG_CONDITIONING = ("hr_bpm", "rmssd_ms")

ECG_RANGES: dict[str, tuple[float | None, float | None]] = {
    "hr_bpm": (60.0, 100.0),
    "rmssd_ms": (19.0, 75.0),          # Nunan et al. 2010
    "sdnn_ms": (32.0, 93.0),           # Nunan et al. 2010
    "rhythm_detected": (1.0, 1.0),     # share of windows with a detectable rhythm
}

def compare_ecg_features(real: np.ndarray, synth: np.ndarray) -> dict[str, dict]:
    """`physio_ctg.compare_features` on ECG feature tables `(N, 5)` with ECG_FEATURES and ECG_RANGES: Wasserstein
    per feature, and the shares in range (rhythm_detected's share is the share of windows with a rhythm)."""
    from .physio_ctg import compare_features

    return compare_features(real, synth, ECG_FEATURES, ECG_RANGES)


def rr_features(peaks: np.ndarray, fs: float) -> dict[str, float]:
    """hr_bpm, rmssd_ms, sdnn_ms, n_peaks and rhythm_detected from R-peak sample indices (see module docstring)."""
    out = {"hr_bpm": float("nan"), "rmssd_ms": float("nan"), "sdnn_ms": float("nan"),
           "n_peaks": float(len(peaks)), "rhythm_detected": 0.0}
    rr = plausible_rr(peaks, fs)
    if rr is None:
        return out
    out.update(hr_bpm=float(60.0 / rr.mean()), rmssd_ms=float(1000.0 * np.sqrt(np.mean(np.diff(rr) ** 2))),
               sdnn_ms=float(1000.0 * rr.std(ddof=1)), rhythm_detected=1.0)
    return out


def ecg_window_features(signal: np.ndarray, fs: float) -> dict[str, float]:
    """Features (ECG_FEATURES) of one lead `(L,)` in mV at fs Hz."""
    return rr_features(r_peaks(signal, fs), fs)


def ecg_features(x: np.ndarray, fs: float, lead: int | str, channel_names: Sequence[str] | None = None) -> np.ndarray:
    """Features `(N, 5)` (columns = ECG_FEATURES) of ECG windows `(N, C, L)` on the lead `lead` (an index, or a
    name in `channel_names`)."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise UserError("ecg_features", f"windows must be (N, C, L), got shape {x.shape}")
    if fs <= 0:
        raise UserError("ecg_features", f"fs must be > 0, got {fs}")
    if isinstance(lead, str):
        if channel_names is None or lead not in channel_names:
            raise UserError("ecg_features", f"lead {lead!r} not in {list(channel_names or [])}")
        lead = list(channel_names).index(lead)
    if not 0 <= lead < x.shape[1]:
        raise UserError("ecg_features", f"lead index {lead} out of range for {x.shape[1]} channels")
    rows = [[ecg_window_features(w[lead], fs)[k] for k in ECG_FEATURES] for w in x]
    return np.asarray(rows, dtype=np.float64).reshape(len(x), len(ECG_FEATURES))
