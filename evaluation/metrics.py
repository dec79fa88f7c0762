"""The metric names eval.py knows, what each needs (labels, an FCN, a minimum number of windows), and the
check of a requested list. The metric functions themselves are pure functions in the other files here."""
from __future__ import annotations

from dataloader.config.eval_schema import METRICS
from dataloader.errors import UserError

from .discriminative import MIN_PER_SET

# one line per metric: what the report's number is (docs/evaluation.md section 4 repeats it)
DESCRIPTIONS = {
    "fid": "FCN-FID: Frechet distance of pooled FCN features (one FCN per label column)",
    "is": "FCN-IS: exp(E KL(p(y|x) || p(y))), 10 splits",
    "accuracy": "FCN accuracy against the label each window was generated with (conditioning)",
    "tstr": "train an FCN on the synthetic windows, test on the real reference patients",
    "trts": "the FCN trained on real train patients, tested on the synthetic windows (macro-F1)",
    "discriminative": "TimeGAN discriminative score |acc - 0.5| of a post-hoc GRU",
    "predictive": "TimeGAN predictive score: MAE of a GRU trained on synthetic, tested on real",
    "dtw": "mean dependent-DTW distance to the nearest real reference window",
    "rmse_prd": "nearest-neighbour RMSE and PRD against the real reference windows",
    "mmd": "unbiased MMD^2, RBF kernel with the median heuristic",
    "diversity": "mean pairwise distance and mode-collapse share",
    "physio": "physiological features (CTG or ECG), Wasserstein distance and share in clinical ranges",
    "signal": "per channel: step-to-step roughness vs real, and the share of windows touching the range limits",
}
assert list(DESCRIPTIONS) == METRICS

LABEL_METRICS = ("accuracy", "tstr", "trts")        # need the synthetic windows' labels
FCN_METRICS = ("fid", "is", "accuracy", "trts")     # need the trained FCNs

# fewest windows (on each side) a metric can be computed with
MIN_WINDOWS = {"fid": 2, "is": 10, "accuracy": 1, "tstr": 4, "trts": 1, "discriminative": MIN_PER_SET,
               "predictive": 2, "dtw": 1, "rmse_prd": 1, "mmd": 2, "diversity": 2, "physio": 1,
               "signal": 1}


def check_metrics(names: list[str], where: str = "--metrics") -> list[str]:
    """The names in report order; UserError naming the valid ones for an unknown name."""
    for m in names:
        if m not in METRICS:
            raise UserError(where, f"unknown metric {m!r}; valid: {', '.join(METRICS)}")
    return [m for m in METRICS if m in names]


def check_counts(metrics: list[str], n: int, what: str) -> None:
    """UserError when `n` windows are fewer than a requested metric needs (says how many)."""
    for m in metrics:
        if n < MIN_WINDOWS[m]:
            raise UserError(what, f"has {n} windows; the metric {m!r} needs at least {MIN_WINDOWS[m]}")
