"""Utility metrics with the FCN: label accuracy, TSTR / TRTS (docs/evaluation.md section 1).

- `label_accuracy(fcn, x, y)`: accuracy of a trained FCN on windows `(N, C, L)` with labels `(N,)`; on real test
  patients it checks the classifier, on synthetic windows against the label they were generated with it checks
  the conditioning.
- `train_test(x_a, y_a, x_b, y_b, ...)`: train an FCN on A, test on B -> accuracy and macro-F1.
  TSTR = train on synthetic, test on real test patients; TRTS = the reverse; TRTR (train real, test real) is the
  reference (TimeGAN-for-ECG, SSSD-ECG).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dataloader.errors import UserError

from ..fcn.model import FCN, predict_proba, train_fcn


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN); a class that is absent from both y_true and
    y_pred is left out of the mean (it has no defined F1); a class absent only from y_pred scores 0."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    f1s = []
    for k in range(n_classes):
        tp = int(((y_true == k) & (y_pred == k)).sum())
        fp = int(((y_true != k) & (y_pred == k)).sum())
        fn = int(((y_true == k) & (y_pred != k)).sum())
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else float("nan")


def label_accuracy(fcn: FCN, x: np.ndarray, y: np.ndarray, batch: int = 256, device: str = "cpu") -> float:
    """Share of windows `(N, C, L)` whose most probable FCN class equals the label `(N,)`."""
    y = np.asarray(y)
    if y.shape != (len(x),):
        raise UserError("label_accuracy", f"need one label per window: {len(x)} windows, labels shape {y.shape}")
    return float((predict_proba(fcn, x, batch, device).argmax(axis=1) == y).mean())


def split_train_val(n: int, val_frac: float, seed: int, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices for a seeded train/validation split of n items, stratified by `y` when given (>= 1 val item)."""
    rng = np.random.default_rng(seed)
    if y is None:
        p = rng.permutation(n)
        k = max(1, int(round(val_frac * n)))
        return np.sort(p[k:]), np.sort(p[:k])
    val = []
    for c in np.unique(y):
        ix = rng.permutation(np.flatnonzero(y == c))
        val.extend(ix[: int(round(val_frac * len(ix)))])
    if not val:
        val = [int(rng.integers(n))]
    val = np.sort(np.asarray(val))
    return np.setdiff1d(np.arange(n), val), val


def train_test(x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray, n_classes: int, *,
               val_frac: float = 0.2, seed: int = 0, **train_kwargs: Any) -> dict[str, Any]:
    """Train an FCN on A (windows `(Na, C, L)`, labels `(Na,)`), test on B; returns {"accuracy", "macro_f1",
    "n_train", "n_val", "n_test"}.

    A is split (stratified, seeded) into train and validation (`val_frac`) for early stopping; B is never seen in
    training. `train_kwargs` go to `train_fcn` (epochs, max_steps, batch, lr, patience, device, downsample).
    """
    y_a, y_b = np.asarray(y_a), np.asarray(y_b)
    if len(x_a) < 4:
        raise UserError("train_test", f"need at least 4 training windows (train + validation), got {len(x_a)}")
    tr, va = split_train_val(len(x_a), val_frac, seed, y_a)
    model = train_fcn(x_a[tr], y_a[tr], x_a[va], y_a[va], n_classes, seed=seed, **train_kwargs)
    pred = predict_proba(model, x_b, device=train_kwargs.get("device", "cpu")).argmax(axis=1)
    return {"accuracy": float((pred == y_b).mean()), "macro_f1": macro_f1(y_b, pred, n_classes),
            "n_train": int(len(tr)), "n_val": int(len(va)), "n_test": int(len(x_b))}


def tstr(x_synth: np.ndarray, y_synth: np.ndarray, x_real_test: np.ndarray, y_real_test: np.ndarray,
         n_classes: int, **kwargs: Any) -> dict[str, Any]:
    """Train on synthetic, test on real test patients (see `train_test`)."""
    return train_test(x_synth, y_synth, x_real_test, y_real_test, n_classes, **kwargs)


def trts(x_real_train: np.ndarray, y_real_train: np.ndarray, x_synth: np.ndarray, y_synth: np.ndarray,
         n_classes: int, **kwargs: Any) -> dict[str, Any]:
    """Train on real train patients, test on synthetic (see `train_test`)."""
    return train_test(x_real_train, y_real_train, x_synth, y_synth, n_classes, **kwargs)
