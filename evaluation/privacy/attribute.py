"""Attribute inference from synthetic data, per patient: how well a member's clinical label (each label
column: pH class, Apgar5, ...) can be read off its recording by a model learnt from the synthetic data alone.

The attacker holds the synthetic windows with the labels they were generated with, and a patient's real
windows, not its labels. It trains the project's FCN classifier on the synthetic windows (the TSTR machinery,
evaluation/metrics/tstr.py: a stratified, seeded train/validation split for early stopping, class-weighted
loss so that a rare class is not ignored), predicts every real window, and calls a patient's label the class
of highest mean predicted probability over its windows. Compared per group (members, who trained the target;
non-members, who did not) with the group's base rate (the share of its most frequent class: the best constant
guess, knowing the group's label distribution) and the chance balanced accuracy (1 / classes present).
Above base rate on members and non-members alike is what the synthetic data teaches about the label in
general (utility); above base rate on members beyond non-members (`member_advantage`) is what it leaks about
the training patients. Intervals: Clopper-Pearson for accuracies and base rates, a seeded bootstrap over
patients for balanced accuracy and the advantage.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dataloader.errors import UserError

from .metrics import clopper_pearson

BOOTSTRAP = 1000


def patient_truth(codes: np.ndarray, patients: np.ndarray, n_patients: int, n_classes: int) -> np.ndarray:
    """(P,) label code per patient from its windows' codes (N,) (a patient-level label: the first window's);
    -1 for a patient whose label is the "missing" class (code >= n_classes)."""
    out = np.full(n_patients, -1, np.int64)
    first = np.unique(patients, return_index=True)
    c = np.asarray(codes, np.int64)[first[1]]
    out[first[0]] = np.where(c < n_classes, c, -1)
    return out


def patient_predictions(proba: np.ndarray, patients: np.ndarray, n_patients: int) -> np.ndarray:
    """(P,) class of highest mean predicted probability over each patient's windows; proba (N, n_classes)."""
    tot = np.zeros((n_patients, proba.shape[1]))
    np.add.at(tot, patients, proba)
    return tot.argmax(axis=1)


def _balanced(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([(pred[truth == c] == c).mean() for c in np.unique(truth)]))


def group_summary(pred: np.ndarray, truth: np.ndarray, seed: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy and base rate of per-patient predictions (n,) against labels (n,)."""
    n = len(truth)
    if n == 0:
        return {"n": 0}
    k = int((pred == truth).sum())
    counts = np.bincount(truth)
    rng = np.random.default_rng([seed, 17])
    boot = [_balanced(pred[i], truth[i]) for i in rng.integers(0, n, (BOOTSTRAP, n))]
    return {"n": n, "accuracy": k / n, "accuracy_ci95": list(clopper_pearson(k, n)),
            "balanced_accuracy": _balanced(pred, truth),
            "balanced_accuracy_ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
            "base_rate": float(counts.max() / n), "base_rate_ci95": list(clopper_pearson(int(counts.max()), n)),
            "majority_class": int(counts.argmax()), "chance_balanced_accuracy": 1.0 / int((counts > 0).sum())}


def _advantage(pred: np.ndarray, truth: np.ndarray, member: np.ndarray, seed: int) -> dict[str, Any]:
    """Member minus non-member accuracy, with a bootstrap interval resampling each group."""
    hit = pred == truth
    a, b = hit[member], hit[~member]
    if len(a) == 0 or len(b) == 0:
        return {"accuracy": None, "ci95": None}
    rng = np.random.default_rng([seed, 18])
    d = (a[rng.integers(0, len(a), (BOOTSTRAP, len(a)))].mean(1)
         - b[rng.integers(0, len(b), (BOOTSTRAP, len(b)))].mean(1))
    return {"accuracy": float(a.mean() - b.mean()),
            "ci95": [float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))]}


def infer_attribute(x_synth: np.ndarray, y_synth: np.ndarray, x_real: np.ndarray, patients: np.ndarray,
                    truth: np.ndarray, is_member: np.ndarray, n_classes: int, *, steps: int, seed: int = 0,
                    downsample: int = 1, where: str = "attribute") -> dict[str, Any]:
    """Train an FCN on synthetic windows (M, C, L) with codes (M,), infer each patient's label from its real
    windows (N, C, L) (patients (N,): position in the population), score against truth (P,) (-1: unknown).

    Returns {"n_synthetic", "members": summary, "non_members": summary, "member_advantage"}."""
    from evaluation.fcn.model import predict_proba, train_fcn
    from evaluation.metrics.tstr import split_train_val

    keep = (y_synth >= 0) & (y_synth < n_classes)            # "missing" or "no class" windows teach nothing
    xs, ys = x_synth[keep], np.asarray(y_synth, np.int64)[keep]
    if len(xs) < 4 or len(np.unique(ys)) < 2:
        raise UserError(where, f"needs at least 4 synthetic windows of 2 or more classes (got {len(xs)} windows, "
                               f"{len(np.unique(ys))} classes)")
    tr, va = split_train_val(len(xs), 0.2, seed, ys)
    model = train_fcn(xs[tr], ys[tr], xs[va], ys[va], n_classes, max_steps=steps, seed=seed, downsample=downsample,
                      balanced=True)
    pred = patient_predictions(predict_proba(model, x_real), patients, len(truth))
    ok, m = truth >= 0, np.asarray(is_member, bool)
    return {"n_synthetic": int(len(xs)),
            "members": group_summary(pred[ok & m], truth[ok & m], seed),
            "non_members": group_summary(pred[ok & ~m], truth[ok & ~m], seed),
            "member_advantage": _advantage(pred[ok], truth[ok], m[ok], seed)}
