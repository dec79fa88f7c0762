"""Robust membership inference (RMIA, Zarifzadeh, Liu & Shokri, ICML 2024, "Low-cost high-power membership
inference attacks"), per patient, on the white-box loss scores of loss_scores.py.

For a candidate patient x, the target theta and reference models theta_1..theta_K (the audit's first K
shadow models, each trained on its keep-matrix half of the population):

    ratio(x)  = Pr(x | theta) / Pr(x),      Pr(x) = the reference models' estimate of Pr(x | a model of the recipe)
    LR(x, z)  = ratio(x) / ratio(z)
    score(x)  = share of the population patients z with LR(x, z) >= gamma, x itself never counted as beaten

"Probability" of a patient under a model: Pr(x | theta) = exp(-loss), the loss being the patient's mean
per-sample denoising MSE at the fixed noise of loss_scores.py (one value per noise level; the last feature is
exp(-mean over levels)). Why this and not a Gaussian likelihood exp(-D loss / (2 sigma^2)): that one's scale
grows with the window size D and needs a sigma nobody knows, and its values underflow; exp(-loss) is monotone
in the loss like any likelihood, lies in (0, 1] with 1 for a perfectly denoised (memorised) record, which is
the property the paper's offline approximation rests on (a trained-on record's probability moves towards 1,
as a classifier's confidence in the true label does).

Pr(x) from the references, per patient (IN: references that trained on x, OUT: the others; p_in, p_out their
mean probabilities):
- offline (OUT references only): Pr(x) = ((1 + a) p_out + (1 - a)) / 2, i.e. the mean of p_out and of the IN
  probability approximated linearly as a p_out + (1 - a), the paper's approximation.
- online: Pr(x) = (p_in + p_out) / 2, each side's mean weighted equally (the paper's mean over references
  half of which are IN; the first K shadows need not be balanced for every patient).
A patient with no reference on one side (always half of them with K = 1) gets it filled: a missing IN side by
the paper's linear model, p_in = a p_out + (1 - a); a missing OUT side by p_out = p_in, treating the references
that trained on x as if they had not. That errs on the safe side: it makes Pr(x) too high and so x's score too
low (inverting the linear model instead, p_out = (p_in - (1 - a)) / a, is ill-conditioned: an underfitted
reference has p_in < 1 - a and the estimate goes negative). `fills` in the result counts those patients; the
offline score of a patient that every reference trained on is not truly offline, and the report says how many.

`a` and the feature (noise level or mean) are chosen on the references alone when K >= 2: each reference in
turn plays the target against the others (its non-members are the population z), and the pair with the best
mean AUC wins; with K = 1, `a` is the configured value and the feature the mean over levels. The target's
truth is never looked at. The population z are the audit's non-member patients (an attacker's sample of
patients known to be outside the training data). A non-member x is among them: it never counts as beaten by
itself, and every x is divided by the same number of z, so that with gamma = 1 the score is a monotone function
of ratio(x) for members and non-members alike. (Dividing a non-member by the others only would give the most
extreme non-member a score of 1, like every member above it, and no member could then be told apart at zero
false positives.)
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .metrics import roc_auc

A_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_A = 0.5          # with one reference nothing can choose `a`: the middle of (0, 1]
TINY = 1e-300


def probabilities(losses: np.ndarray) -> np.ndarray:
    """(..., n_levels) mean losses -> (..., n_levels + 1) Pr = exp(-loss) per level, then exp(-mean loss)."""
    lo = np.maximum(np.asarray(losses, np.float64), 0.0)
    return np.exp(-np.concatenate([lo, lo.mean(axis=-1, keepdims=True)], axis=-1))


def reference_prob(ref: np.ndarray, keep: np.ndarray, a: float, online: bool) -> tuple[np.ndarray, int]:
    """Pr(x) (P,) from reference probabilities ref (K, P) and keep (K, P); also the number of patients whose
    side that the mode needs (online: IN and OUT, offline: OUT) had no reference and was filled."""
    keep = np.asarray(keep, bool)
    n_in, n_out = keep.sum(0), (~keep).sum(0)
    p_in = np.where(n_in > 0, (ref * keep).sum(0) / np.maximum(n_in, 1), np.nan)
    p_out = np.where(n_out > 0, (ref * ~keep).sum(0) / np.maximum(n_out, 1), np.nan)
    p_out = np.where(n_out > 0, p_out, p_in)          # no OUT reference: the IN ones stand in (see above)
    if online:
        p_in = np.where(n_in > 0, p_in, a * p_out + (1 - a))
        fills = int(((n_in == 0) | (n_out == 0)).sum())
        return np.maximum(0.5 * (p_in + p_out), TINY), fills
    return np.maximum(0.5 * ((1 + a) * p_out + (1 - a)), TINY), int((n_out == 0).sum())


def pairwise_scores(log_ratio: np.ndarray, population: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """score (P,): for each patient x the share of the Z population patients z with ratio(x) / ratio(z) >= gamma,
    x itself (when a z) never counted (see the module docstring); the denominator is Z for every x.

    log_ratio (P,) = log Pr(x | theta) - log Pr(x); population (P,) bool marks the z."""
    lr = np.asarray(log_ratio, np.float64)
    z = np.flatnonzero(np.asarray(population, bool))
    if len(z) < 2:
        raise ValueError("RMIA needs at least 2 population patients")
    wins = (lr[:, None] - lr[z][None, :]) >= np.log(gamma) - 1e-12      # (P, Z); tolerance for exact ties
    self_z = np.zeros_like(wins)
    self_z[z, np.arange(len(z))] = True                                 # never compare x with itself
    return (wins & ~self_z).sum(1) / len(z)


def rmia_statistic(target: np.ndarray, refs: np.ndarray, keep: np.ndarray, population: np.ndarray, a: float,
                   online: bool, gamma: float = 1.0) -> tuple[np.ndarray, int]:
    """RMIA scores (P,) of target probabilities (P,) given reference probabilities (K, P) and keep (K, P)."""
    prior, fills = reference_prob(refs, keep, a, online)
    return pairwise_scores(np.log(np.maximum(target, TINY)) - np.log(prior), population, gamma), fills


def choose(ref_feats: np.ndarray, keep: np.ndarray, online: bool, gamma: float,
           a_fixed: Optional[float]) -> tuple[int, float, dict[tuple[int, float], float]]:
    """Leave-one-reference-out over (feature, a): ref_feats (K, P, F) -> (feature, a, mean AUC per (f, a)).
    With K = 1 nothing is held out: the mean over levels and `a_fixed` (or DEFAULT_A)."""
    K, P, F = ref_feats.shape
    grid = (a_fixed,) if a_fixed is not None else A_GRID
    if K < 2:
        return F - 1, grid[0] if a_fixed is not None else DEFAULT_A, {}
    keep = np.asarray(keep, bool)
    table: dict[tuple[int, float], list[float]] = {}
    for k in range(K):
        rest = np.r_[0:k, k + 1:K]
        truth = keep[k]
        if truth.all() or (~truth).sum() < 2:
            continue
        for f in range(F):
            for a in grid:
                s, _ = rmia_statistic(ref_feats[k, :, f], ref_feats[rest, :, f], keep[rest], ~truth, a, online,
                                      gamma)
                table.setdefault((f, a), []).append(roc_auc(s, truth))
    if not table:
        return F - 1, grid[0] if a_fixed is not None else DEFAULT_A, {}
    mean = {key: float(np.mean(v)) for key, v in table.items()}
    best = max(mean, key=lambda key: (mean[key], -key[0], -key[1]))   # ties: lower level, smaller a
    return best[0], best[1], mean


def run_rmia(target_losses: np.ndarray, ref_losses: np.ndarray, keep: np.ndarray, population: np.ndarray,
             levels: list[int], gamma: float = 1.0, a: Optional[float] = None) -> dict[str, Any]:
    """Per-patient mean losses: target (P, n_levels), references (K, P, n_levels), keep (K, P); population (P,)
    bool marks the z patients (the audit's non-members).

    Returns {"online": scores (P,), "offline": scores (P,), "selection": {mode: {"feature", "a", "fills",
    "reference_auc"}}}; feature and `a` are chosen on the references alone."""
    tf, rf = probabilities(target_losses), probabilities(ref_losses)
    names = [f"t={t}" for t in levels] + ["mean over levels"]
    out: dict[str, Any] = {"selection": {}}
    for mode, online in (("online", True), ("offline", False)):
        f, a_used, table = choose(rf, keep, online, gamma, a)
        out[mode], fills = rmia_statistic(tf[:, f], rf[:, :, f], keep, population, a_used, online, gamma)
        named = {f"{names[fi]}/a={ai:g}": v for (fi, ai), v in table.items()}
        out["selection"][mode] = {"feature": names[f], "a": a_used, "fills": fills, "reference_auc": named}
    return out
