"""Does conditioning show in the physiology? Per label column, the Wasserstein-1 distance of each physiological
feature between the synthetic windows generated for class c and the real reference windows of every class c'
(docs/evaluation.md section 1, `conditioning`).

Definitions (the caller chooses the feature columns: the data kind's conditioning features, e.g. CTG baseline and
FIGO variability, ECG heart rate and RMSSD; nothing here knows the kind):
- a window is *measured* when every chosen feature is finite (a flat trace has no baseline, an ECG without
  a rhythm has no RMSSD); only measured windows enter the distances, and the counts of both are reported;
- the columns are the real classes with at least `min_windows` measured reference windows;
- a row is a synthetic class c with at least `min_windows` measured windows whose own real class is a column,
  with at least one other column to compare with; otherwise the class is *skipped*, with its counts and why;
- per feature f, W1[f][c][c'] = scipy.stats.wasserstein_distance between the synthetic c values and the real c'
  values of f (in the feature's unit). The features are not combined into one number: a row *passes* when, for
  EVERY feature, the same-class distance W1[f][c][c] is strictly smaller than W1[f][c][c'] for every other
  column c' (a tie is not "closer"). `nearest` names the closest real class per feature, so a failing row says
  which feature disagrees;
- verdict of the label column: "fail" when a tested row fails; "pass" when every class present in either set
  was tested and passed; "incomplete" when nothing failed but a present class was skipped (or none was
  testable). Classes with no window on either side are listed as absent and do not count.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.stats import wasserstein_distance

from dataloader.errors import UserError


def _counts(y: np.ndarray, measured: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows and measured windows per class code 0..k-1, each `(k,)`."""
    return np.bincount(y, minlength=k)[:k], np.bincount(y[measured], minlength=k)[:k]


def _row(synth: np.ndarray, real: np.ndarray, real_y: np.ndarray, c: int, cols: list[int],
         features: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """One tested row: W1 per feature against each column, nearest real class per feature, the pass flag.
    synth: the measured synthetic c windows `(n, F)`; real / real_y: the measured reference windows."""
    w1: dict[str, list[float]] = {}
    nearest: dict[str, str] = {}
    ok = True
    for j, f in enumerate(features):
        d = [float(wasserstein_distance(synth[:, j], real[real_y == cc, j])) for cc in cols]
        w1[f] = d
        nearest[f] = classes[cols[int(np.argmin(d))]]
        own = d[cols.index(c)]
        ok &= all(own < v for cc, v in zip(cols, d) if cc != c)
    return {"w1": w1, "nearest": nearest, "pass": bool(ok)}


def class_distances(real: np.ndarray, real_y: np.ndarray, synth: np.ndarray, synth_y: np.ndarray,
                    features: Sequence[str], classes: Sequence[str], min_windows: int) -> dict[str, Any]:
    """The conditioning check of one label column (see the module docstring).

    real `(Nr, F)` / synth `(Ns, F)`: per-window feature values (NaN = not measurable), columns `features`;
    real_y `(Nr,)` / synth_y `(Ns,)`: class codes 0..K-1 of `classes`. Returns {"columns": real class names,
    "rows": {class: {n_synth, n_synth_measured, n_real, n_real_measured, w1: {feature: [per column]},
    nearest, pass}}, "skipped": {class: counts and "reason"}, "absent": [class names], "tested", "passed",
    "verdict"}.
    """
    real, synth = np.asarray(real, np.float64), np.asarray(synth, np.float64)
    real_y, synth_y = np.asarray(real_y, np.int64), np.asarray(synth_y, np.int64)
    k, nf = len(classes), len(features)
    if min_windows < 1:
        raise UserError("conditioning", f"min_windows must be >= 1, got {min_windows}")
    if real.ndim != 2 or synth.ndim != 2 or real.shape[1] != nf or synth.shape[1] != nf:
        raise UserError("conditioning", f"{nf} features for tables of shapes {real.shape} and {synth.shape}")
    if real_y.shape != (len(real),) or synth_y.shape != (len(synth),):
        raise UserError("conditioning", "one class code per window is needed on each side")
    for y in (real_y, synth_y):
        if len(y) and (y.min() < 0 or y.max() >= k):
            raise UserError("conditioning", f"class codes outside 0..{k - 1}")
    r_ok, s_ok = np.isfinite(real).all(axis=1), np.isfinite(synth).all(axis=1)
    n_r, m_r = _counts(real_y, r_ok, k)
    n_s, m_s = _counts(synth_y, s_ok, k)
    cols = [c for c in range(k) if m_r[c] >= min_windows]
    real_m, real_my = real[r_ok], real_y[r_ok]
    rows: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    absent: list[str] = []
    for c in range(k):
        counts = {"n_synth": int(n_s[c]), "n_synth_measured": int(m_s[c]), "n_real": int(n_r[c]),
                  "n_real_measured": int(m_r[c])}
        if n_s[c] == 0 and n_r[c] == 0:
            absent.append(classes[c])
        elif m_s[c] < min_windows or c not in cols:
            side = "synthetic" if m_s[c] < min_windows else "real reference"
            skipped[classes[c]] = {**counts, "reason": f"fewer than {min_windows} measured {side} windows"}
        elif len(cols) < 2:
            skipped[classes[c]] = {**counts, "reason": "no other real class with enough windows to compare with"}
        else:
            rows[classes[c]] = {**counts, **_row(synth[s_ok & (synth_y == c)], real_m, real_my, c, cols,
                                                 features, classes)}
    passed = sum(r["pass"] for r in rows.values())
    verdict = "fail" if passed < len(rows) else "incomplete" if skipped or not rows else "pass"
    return {"columns": [classes[c] for c in cols], "rows": rows, "skipped": skipped, "absent": absent,
            "tested": len(rows), "passed": int(passed), "verdict": verdict}
