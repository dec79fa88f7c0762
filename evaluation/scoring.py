"""Score one set of windows against the real reference: every requested metric of docs/evaluation.md section 1,
in the registry's order (`evaluation/metrics/__init__.py`), each by its function in `evaluation.scorers`.

The real-vs-real floor is the same call with the train patients' windows standing in for the synthetic ones,
so floor and model rows are computed identically.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .context import EvalContext
from .metrics import METRICS
from .scorers import SCORERS, ScoredSet

# the metrics that read the trained FCNs first (they share the set's FCN features), then the others; both in
# registry order. This is the order of a row's results and seconds in report.json.
RUN_ORDER = [m for m, spec in METRICS.items() if spec.fcn] + [m for m, spec in METRICS.items() if not spec.fcn]


def score_set(ctx: EvalContext, name: str, x: np.ndarray, labels: dict[str, np.ndarray], metrics: list[str],
              floor: bool = False) -> tuple[dict[str, Any], dict[str, float], dict[str, Any]]:
    """Run `metrics` on windows x `(N, C, L)` (physical units) with their labels {name: (N,)}.

    Returns (results per metric (JSON-ready), seconds per metric, extras for figures: FCN features and
    physiological feature arrays).
    """
    s = ScoredSet(ctx, name, x, labels, floor)
    res: dict[str, Any] = {}
    secs: dict[str, float] = {}
    if any(m in metrics for m in ("fid", "is")) and s.fcn_labels:
        # FID and IS share the set's FCN features: computed (and timed) once, and kept for the embedding figure
        t0 = time.perf_counter()
        for lab in s.fcn_labels:
            s.own_features(lab)
        secs["fcn_features"] = round(time.perf_counter() - t0, 2)
        s.extras["fcn_features"] = {lab: s.feats[lab][0] for lab in s.fcn_labels}
    for m in RUN_ORDER:
        if m not in metrics or (METRICS[m].physio and ctx.physio["kind"] == "none"):
            continue
        t0 = time.perf_counter()
        res[m] = SCORERS[m](s)
        secs[m] = round(time.perf_counter() - t0, 2)
    return res, secs, s.extras
