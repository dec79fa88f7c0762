"""Do the joins of a long recording show? Statistics across joins versus inside windows (bench/seams.py).

Recordings (N, C, T) in physical units with join positions (the first sample each window k > 0 adds):
- step-to-step change: |x[t+1] - x[t]| per channel, the step across each join (x[j] - x[j - 1]) and the steps
  within `band` samples of a join, versus steps at least `band` away; compared by mean (and, within the band,
  90th and 99th percentile);
- CTG: FHR baseline (bpm) and STV (ms) (evaluation/metrics/physio_ctg.py) of segments centred on joins versus
  segments centred inside windows (the middle of each window's new samples), compared by their means;
- ECG: RR intervals (neurokit2 R-peaks, evaluation/metrics/physio_ecg.py) that span a join or end or start
  within one interval of it, versus all others; compared by mean and standard deviation. An interval is picked
  with a chance proportional to its length (a join falls in a long one more often), so the others are weighted
  by their length: with no seam at all, the two sides then agree (tests/test_seam_stats.py).
Each comparison gives the relative difference (join - inside) / |inside| and whether it is within `tol`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _rel(join: float, inside: float) -> float:
    return float((join - inside) / abs(inside)) if inside != 0 and np.isfinite(inside) else float("nan")


def _row(name: str, join: float, inside: float, tol: float, se: float = float("nan"), **extra: Any) -> dict[str, Any]:
    """One comparison; `se` is the standard error of the join statistic (its sampling noise), reported
    relative to the inside value so that a miss can be told from too few joins."""
    r = _rel(join, inside)
    return {"statistic": name, "join": float(join), "inside": float(inside), "rel_diff": r,
            "rel_se": float(se / abs(inside)) if inside else float("nan"),
            "within_tol": bool(np.isfinite(r) and abs(r) <= tol), **extra}


def _se(v: np.ndarray) -> float:
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def step_change(x: np.ndarray, joins: Sequence[Sequence[int]], band: int, names: Sequence[str],
                tol: float) -> list[dict[str, Any]]:
    """Rows comparing |diff| near joins (within `band` samples) with the rest, per channel."""
    near, far = [[] for _ in names], [[] for _ in names]
    for rec, js in zip(x, joins):
        t = np.arange(rec.shape[1] - 1)
        dist = np.min(np.abs(t[:, None] + 0.5 - np.asarray(js, float)[None, :]), axis=1) if len(js) else \
            np.full(len(t), np.inf)
        d = np.abs(np.diff(rec, axis=1))
        for c in range(len(names)):
            near[c].append(d[c][dist < band])
            far[c].append(d[c][dist >= band])
    rows = []
    for c, name in enumerate(names):
        a, b = np.concatenate(near[c]), np.concatenate(far[c])
        at = np.concatenate([np.abs(rec[c, np.asarray(js, int)] - rec[c, np.asarray(js, int) - 1])
                             for rec, js in zip(x, joins)])
        n = {"n_join": int(a.size), "n_inside": int(b.size)}
        rows.append(_row(f"{name} mean |step| across the join", at.mean(), b.mean(), tol, _se(at),
                         n_join=int(at.size), n_inside=int(b.size)))
        rows.append(_row(f"{name} mean |step| within {band}", a.mean(), b.mean(), tol, _se(a), **n))
        for q in (90, 99):
            rows.append(_row(f"{name} p{q} |step| within {band}", np.percentile(a, q), np.percentile(b, q), tol, **n))
    return rows


def _segments(x: np.ndarray, centres: Sequence[int], seg: int) -> np.ndarray:
    """(M, C, seg) segments of one recording (C, T) centred on `centres` (those that fit)."""
    out = [x[:, c - seg // 2:c - seg // 2 + seg] for c in centres if c - seg // 2 >= 0 and c - seg // 2 + seg <= x.shape[1]]
    return np.stack(out) if out else np.zeros((0, x.shape[0], seg), x.dtype)


def ctg_rows(x: np.ndarray, joins: Sequence[Sequence[int]], inside: Sequence[Sequence[int]], seg: int, fs: float,
             fhr: int, tol: float) -> list[dict[str, Any]]:
    """Rows comparing FHR baseline and STV of segments centred on joins with segments inside windows."""
    from evaluation.metrics.physio_ctg import FEATURES, ctg_features

    fj = np.concatenate([ctg_features(_segments(r, j, seg), fs, fhr) for r, j in zip(x, joins)])
    fi = np.concatenate([ctg_features(_segments(r, i, seg), fs, fhr) for r, i in zip(x, inside)])
    rows = []
    for name in ("baseline_bpm", "stv_ms"):
        k = FEATURES.index(name)
        a, b = fj[:, k][np.isfinite(fj[:, k])], fi[:, k][np.isfinite(fi[:, k])]
        if len(a) and len(b):
            rows.append(_row(f"{name} mean", a.mean(), b.mean(), tol, _se(a), n_join=len(a), n_inside=len(b),
                             sd_join=float(a.std()), sd_inside=float(b.std())))
    return rows


def ecg_rows(x: np.ndarray, joins: Sequence[Sequence[int]], fs: float, lead: int, tol: float) -> list[dict[str, Any]]:
    """Rows comparing RR intervals at joins (spanning one, or one interval from it) with the others."""
    from evaluation.metrics.physio_ecg import r_peaks

    near, far = [], []
    for rec, js in zip(x, joins):
        p = r_peaks(rec[lead], fs)
        if len(p) < 3:
            continue
        rr = np.diff(p) / fs
        lo, hi = p[:-1], p[1:]
        width = hi - lo
        at = np.zeros(len(rr), bool)
        for j in js:
            at |= (lo - width <= j) & (j < hi + width)
        near.append(rr[at])
        far.append(rr[~at])
    if not near:
        return []
    a, b = np.concatenate(near), np.concatenate(far)
    n = {"n_join": int(a.size), "n_inside": int(b.size)}
    mean_b = float(np.average(b, weights=b))  # length-biased, as the picking of `a` is
    sd_b = float(np.sqrt(np.average((b - mean_b) ** 2, weights=b)))
    return [_row("RR mean (s)", a.mean(), mean_b, tol, _se(a), **n), _row("RR sd (s)", a.std(), sd_b, tol, **n)]
