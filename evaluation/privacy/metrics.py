"""Attack metrics (docs/evaluation.md section 2): ROC AUC, best balanced accuracy, TPR at low FPR with 95%
Clopper-Pearson intervals, counts. Higher score = "member". A report with accuracy alone is wrong: an attack
that is right about a few patients with certainty (TPR at 0.1% FPR) leaks more than its AUC suggests
(Carlini et al. 2022).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.stats import beta, rankdata

FPR_TARGETS = (0.01, 0.001)


def roc_auc(scores: np.ndarray, is_member: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half: P(member score > non-member score)."""
    s, m = np.asarray(scores, np.float64), np.asarray(is_member, bool)
    n1, n0 = int(m.sum()), int((~m).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("need members and non-members")
    r = rankdata(s)
    return float((r[m].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def roc_curve(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for "member if score >= threshold", thresholds descending, from (0, 0)."""
    s, m = np.asarray(scores, np.float64), np.asarray(is_member, bool)
    order = np.argsort(-s, kind="stable")
    s, m = s[order], m[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each distinct score
    tp, fp = np.cumsum(m)[last], np.cumsum(~m)[last]
    tpr = np.r_[0.0, tp / max(1, m.sum())]
    fpr = np.r_[0.0, fp / max(1, (~m).sum())]
    return fpr, tpr, np.r_[np.inf, s[last]]


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials."""
    if n == 0:
        return 0.0, 1.0
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def attack_metrics(scores: np.ndarray, is_member: np.ndarray, fpr_targets: Sequence[float] = FPR_TARGETS
                   ) -> dict[str, Any]:
    """Every number the report needs for one attack (per-patient scores, per-patient truth)."""
    m = np.asarray(is_member, bool)
    n1, n0 = int(m.sum()), int((~m).sum())
    fpr, tpr, thr = roc_curve(scores, m)
    bal = 0.5 * (tpr + 1 - fpr)
    out: dict[str, Any] = {"auc": roc_auc(scores, m), "balanced_accuracy": float(bal.max()),
                           "n_members": n1, "n_non_members": n0, "tpr_at_fpr": []}
    for a in fpr_targets:
        ok = np.flatnonzero(fpr <= a + 1e-12)
        i = ok[np.argmax(tpr[ok])]
        k, fp = int(round(tpr[i] * n1)), int(round(fpr[i] * n0))
        lo, hi = clopper_pearson(k, n1)
        out["tpr_at_fpr"].append({
            "fpr_target": a, "tpr": float(tpr[i]), "tpr_ci95": [lo, hi], "fpr_achieved": float(fpr[i]),
            "true_positives": k, "false_positives": fp,
            # with n0 non-members the smallest non-zero FPR is 1 / n0: below that only "no false positive" is
            # measurable, and the interval of the FPR itself says how far that is from the target
            "fpr_ci95": list(clopper_pearson(fp, n0)), "resolvable": bool(1.0 / n0 <= a)})
    out["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return out
