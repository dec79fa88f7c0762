"""Likelihood-ratio attack (LiRA, Carlini et al. 2022, "Membership inference attacks from first principles").

Scores: s = -log(mean denoising loss) of a patient (loss_scores.py), per noise level, plus their mean over
levels; the log makes the spread across models closer to Gaussian. For patient p the shadow models where p
was IN give mu_in(p), the others mu_out(p); variances are per patient or pooled over patients ("global",
the steadier choice with few shadows). Online: log N(s; mu_in, sd_in) - log N(s; mu_out, sd_out). Offline
(OUT models only): log Phi((s - mu_out) / sd_out), i.e. how far the target's score sits above what models
without p give. Which level (or the mean) is used is chosen on the shadow models alone: each shadow in turn
plays the target against the others, and the feature with the best mean AUC wins; the target's truth is
never looked at.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm

from .metrics import roc_auc

MIN_VAR = 1e-8


def lira_features(losses: np.ndarray) -> np.ndarray:
    """(..., n_levels) mean losses -> (..., n_levels + 1) scores: -log loss per level, then their mean."""
    s = -np.log(np.maximum(losses, 1e-12))
    return np.concatenate([s, s.mean(axis=-1, keepdims=True)], axis=-1)


def _moments(shadow: np.ndarray, keep: np.ndarray, variance: str) -> tuple[np.ndarray, ...]:
    """shadow (K, P), keep (K, P) -> (mu_in, var_in, mu_out, var_out), each (P,)."""
    def side(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = mask.sum(axis=0)
        mu = np.where(n > 0, (shadow * mask).sum(axis=0) / np.maximum(n, 1), np.nan)
        sq = (((shadow - mu) ** 2) * mask).sum(axis=0)
        return mu, sq, n

    mu_in, sq_in, n_in = side(keep)
    mu_out, sq_out, n_out = side(~keep)
    if variance == "per_patient" and n_in.min() >= 2 and n_out.min() >= 2:
        var_in, var_out = sq_in / (n_in - 1), sq_out / (n_out - 1)
    else:  # pooled over patients: sum of squared deviations over all (patient, model) pairs
        var_in = np.full_like(mu_in, sq_in.sum() / max(1, (n_in - (n_in > 0)).sum()))
        var_out = np.full_like(mu_out, sq_out.sum() / max(1, (n_out - (n_out > 0)).sum()))
    return mu_in, np.maximum(var_in, MIN_VAR), mu_out, np.maximum(var_out, MIN_VAR)


def lira_statistic(target: np.ndarray, shadow: np.ndarray, keep: np.ndarray, online: bool = True,
                   variance: str = "global") -> np.ndarray:
    """Per-patient LiRA statistic (P,) of target scores (P,) given shadow scores (K, P) and keep (K, P)."""
    mu_in, var_in, mu_out, var_out = _moments(shadow, keep.astype(bool), variance)
    if not online:
        return norm.logcdf((target - mu_out) / np.sqrt(var_out))
    if np.isnan(mu_in).any() or np.isnan(mu_out).any():
        raise ValueError("online LiRA needs every patient IN and OUT of at least one shadow model")
    return (norm.logpdf(target, mu_in, np.sqrt(var_in)) - norm.logpdf(target, mu_out, np.sqrt(var_out)))


def choose_feature(shadow_feats: np.ndarray, keep: np.ndarray, online: bool, variance: str) -> tuple[int, list[float]]:
    """Leave-one-shadow-out: mean AUC of each feature (K, P, F) -> (best feature index, mean AUC per feature).
    Falls back to the last feature (mean over levels) when the shadows are too few to hold one out."""
    K, P, F = shadow_feats.shape
    keep = keep.astype(bool)
    aucs = np.full((K, F), np.nan)
    for k in range(K):
        rest = np.r_[0:k, k + 1:K]
        kr = keep[rest]
        truth = keep[k]
        if not truth.any() or truth.all() or kr.all(axis=0).any() or (~kr).all(axis=0).any():
            continue  # some patient has no IN (or no OUT) model left: this hold-out says nothing
        for f in range(F):
            stat = lira_statistic(shadow_feats[k, :, f], shadow_feats[rest, :, f], kr, online, variance)
            aucs[k, f] = roc_auc(stat, truth)
    if np.isnan(aucs).all():
        return F - 1, [float("nan")] * F
    mean = np.nanmean(aucs, axis=0)
    return int(np.argmax(mean)), mean.tolist()


def run_lira(target_losses: np.ndarray, shadow_losses: np.ndarray, keep: np.ndarray, levels: list[int],
             variance: str = "global") -> dict[str, Any]:
    """LiRA on per-patient mean losses: target (P, n_levels), shadows (K, P, n_levels), keep (K, P).

    Returns {"online": stat (P,), "offline": stat (P,), "feature": name, "selection": {...}} where the feature
    of each mode is chosen on the shadows alone.
    """
    tf, sf = lira_features(target_losses), lira_features(shadow_losses)
    names = [f"t={t}" for t in levels] + ["mean over levels"]
    out: dict[str, Any] = {"selection": {}}
    for mode, online in (("online", True), ("offline", False)):
        f, aucs = choose_feature(sf, keep, online, variance)
        out[mode] = lira_statistic(tf[:, f], sf[:, :, f], keep, online, variance)
        out["selection"][mode] = {"feature": names[f], "shadow_auc_by_feature": dict(zip(names, aucs))}
    return out
