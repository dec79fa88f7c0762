"""The metrics: this registry, and beside it the pure metric functions on windows `(N, C, L)` in physical units
(discriminative, predictive with their numpy GRU, tstr, distance, signal_stats, physio_ctg / physio_ecg, and
conditioning: the per-class physiology of a label column).

The registry: every metric eval.py knows, in report order, with what it needs and the fewest windows it can be
computed with; the check of a requested list. This module is light on purpose (no numpy, no torch):
`evaluation/config.py` reads the names from here when a config loads, so the config's list cannot
drift from the registry. The function that computes each metric on one set is `evaluation.scorers.SCORERS[name]`.
"""
from __future__ import annotations

from dataclasses import dataclass

from dataloader.errors import UserError


@dataclass(frozen=True)
class MetricSpec:
    """What one metric is and needs. Every metric compares the synthetic windows with the real reference."""

    description: str          # one line: what the report's number is (docs/evaluation.md section 4 repeats it)
    min_windows: int          # fewest windows (on each side) it can be computed with
    labels: bool = False      # needs the synthetic windows' labels
    fcn: bool = False         # needs the trained FCNs (one per label column)
    physio: bool = False      # needs a physiological feature plan (CTG or ECG); skipped when there is none


METRICS: dict[str, MetricSpec] = {
    "fid": MetricSpec("FCN-FID: Frechet distance of pooled FCN features (one FCN per label column)", 2, fcn=True),
    "is": MetricSpec("FCN-IS: exp(E KL(p(y|x) || p(y))), 10 splits", 10, fcn=True),
    "accuracy": MetricSpec("FCN accuracy against the label each window was generated with (conditioning)", 1,
                           labels=True, fcn=True),
    "tstr": MetricSpec("train an FCN on the synthetic windows, test on the real reference patients", 4,
                       labels=True),
    "trts": MetricSpec("the FCN trained on real train patients, tested on the synthetic windows (macro-F1)", 1,
                       labels=True, fcn=True),
    # 10: the 80/20 split must leave at least 2 held-out windows per set (evaluation/metrics/discriminative.py)
    "discriminative": MetricSpec("TimeGAN discriminative score |acc - 0.5| of a post-hoc GRU", 10),
    "predictive": MetricSpec("TimeGAN predictive score: MAE of a GRU trained on synthetic, tested on real", 2),
    "dtw": MetricSpec("mean dependent-DTW distance to the nearest real reference window", 1),
    "rmse_prd": MetricSpec("nearest-neighbour RMSE and PRD against the real reference windows", 1),
    "mmd": MetricSpec("unbiased MMD^2, RBF kernel with the median heuristic", 2),
    "diversity": MetricSpec("mean pairwise distance and mode-collapse share", 2),
    "physio": MetricSpec("physiological features (CTG or ECG), Wasserstein distance and share in clinical ranges",
                         1, physio=True),
    "conditioning": MetricSpec("per label column: Wasserstein-1 of each physiological feature between each "
                               "generated class and every real class; passes when its own class is nearest",
                               1, labels=True, physio=True),
    "signal": MetricSpec("per channel: step-to-step roughness vs real, and the share of windows touching the "
                         "range limits", 1),
}
LABEL_METRICS = tuple(m for m, s in METRICS.items() if s.labels)    # need the synthetic windows' labels
FCN_METRICS = tuple(m for m, s in METRICS.items() if s.fcn)         # need the trained FCNs


def check_metrics(names: list[str], where: str = "--metrics") -> list[str]:
    """The names in report order; UserError naming the valid ones for an unknown name."""
    for m in names:
        if m not in METRICS:
            raise UserError(where, f"unknown metric {m!r}; valid: {', '.join(METRICS)}")
    return [m for m in METRICS if m in names]


def check_counts(metrics: list[str], n: int, what: str) -> None:
    """UserError when `n` windows are fewer than a requested metric needs (says how many)."""
    for m in metrics:
        if n < METRICS[m].min_windows:
            raise UserError(what, f"has {n} windows; the metric {m!r} needs at least {METRICS[m].min_windows}")
