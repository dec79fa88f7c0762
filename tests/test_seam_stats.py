"""bench/seam_stats.py: the seam statistics see a planted seam and pass a seamless series (step change, CTG
features, ECG RR intervals), so the seam benchmark can fail."""
from __future__ import annotations

import numpy as np

from bench.seam_stats import ctg_rows, ecg_rows, step_change

FS = 4.0


def _ctg(n: int, seam: float, joins: list[int], seed: int) -> np.ndarray:
    """(C=2, n) FHR around 140 bpm with beat-to-beat noise and UC, plus a jump of `seam` bpm after each join."""
    rng = np.random.default_rng(seed)
    fhr = 140 + np.cumsum(rng.normal(0, 0.4, n)) * 0.05 + rng.normal(0, 1.0, n)
    for j in joins:
        fhr[j:] += seam * (1 if (j // 1000) % 2 else -1)
    uc = 20 + 10 * np.sin(np.arange(n) / 200) + rng.normal(0, 0.5, n)
    return np.stack([fhr, uc])


def _rel(rows: list[dict], name: str) -> float:
    return next(r["rel_diff"] for r in rows if r["statistic"] == name)


def test_step_change_sees_a_planted_seam() -> None:
    joins = [[3000, 6000, 9000]] * 20   # 960 steps near joins: the statistic's noise is ~2.5 %
    clean = np.stack([_ctg(12000, 0.0, j, s + 100) for s, j in enumerate(joins)])
    seamed = np.stack([_ctg(12000, 8.0, j, s) for s, j in enumerate(joins)])
    ok = step_change(clean, joins, 8, ["FHR", "UC"], 0.10)
    bad = step_change(seamed, joins, 8, ["FHR", "UC"], 0.10)
    assert abs(_rel(ok, "FHR mean |step| within 8")) < 0.10
    assert _rel(bad, "FHR mean |step| across the join") > 1.0 and _rel(bad, "FHR mean |step| within 8") > 0.10
    assert not next(r for r in bad if r["statistic"] == "FHR mean |step| across the join")["within_tol"]
    assert abs(_rel(bad, "UC mean |step| within 8")) < 0.10      # the seam was planted in FHR only


def test_ctg_features_see_a_baseline_change_at_joins() -> None:
    n, seg = 12000, 1200           # 5-min segments: join and inside segments do not overlap
    joins = [[3000, 6000, 9000]] * 3
    inside = [[1500, 4500, 7500, 10500]] * 3
    x = np.stack([_ctg(n, 0.0, j, s) for s, j in enumerate(joins)])
    rows = ctg_rows(x, joins, inside, seg, FS, 0, 0.10)
    assert {r["statistic"] for r in rows} == {"baseline_bpm mean", "stv_ms mean"}
    assert abs(_rel(rows, "baseline_bpm mean")) < 0.02
    y = x.copy()
    for rec, js in zip(y, joins):       # the level 10 bpm higher around every join (under an acceleration's 15)
        for j in js:
            rec[0, j - seg // 2:j + seg // 2] += 10
    assert _rel(ctg_rows(y, joins, inside, seg, FS, 0, 0.10), "baseline_bpm mean") > 0.05


def _ecg(fs: float, n: int, rr_s: np.ndarray) -> np.ndarray:
    """A spike train (one narrow Gaussian QRS per beat at the given intervals) on a flat baseline."""
    t = np.arange(n) / fs
    beats = np.cumsum(rr_s)
    sig = np.zeros(n)
    for b in beats[beats < t[-1]]:
        sig += 1.2 * np.exp(-0.5 * ((t - b) / 0.012) ** 2) - 0.2 * np.exp(-0.5 * ((t - b - 0.25) / 0.05) ** 2)
    return sig


def test_ecg_rr_at_joins() -> None:
    fs, n = 250.0, 250 * 60
    rng = np.random.default_rng(0)
    rr = 0.8 + rng.normal(0, 0.02, 100)
    joins = [[n // 3, 2 * n // 3]]
    x = _ecg(fs, n, rr)[None, None]
    rows = ecg_rows(x, joins, fs, 0, 0.10)
    assert abs(_rel(rows, "RR mean (s)")) < 0.10
    beats = np.cumsum(rr)
    for j in joins[0]:              # a long pause at each join
        k = int(np.searchsorted(beats, j / fs))
        rr[k] += 0.6
    assert _rel(ecg_rows(_ecg(fs, n, rr)[None, None], joins, fs, 0, 0.10), "RR mean (s)") > 0.10


def test_ecg_rr_without_seams_agrees_although_long_intervals_hold_more_joins() -> None:
    """Variable RR (sd 0.3 s around 0.8 s) and 40 joins that change nothing: a join falls in a long interval
    more often (unweighted, the join side reads about +11 %); weighted by length the two sides agree."""
    fs = 250.0
    rng = np.random.default_rng(1)
    rr = 0.5 + rng.exponential(0.3, 600)
    n = int(rr.sum() * fs) - int(fs)
    joins = [sorted(rng.integers(int(fs), n - int(fs), 40).tolist())]
    rows = ecg_rows(_ecg(fs, n, rr)[None, None], joins, fs, 0, 0.10)
    assert abs(_rel(rows, "RR mean (s)")) < 0.05, rows
