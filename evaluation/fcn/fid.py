"""Fréchet distance and Inception Score on precomputed features / class probabilities.

Pure functions on numpy arrays (docs/design.md section 7.8); the feature extractors live in `evaluation/fcn/model.py`.

- `gaussian_stats(features (N, D)) -> (mu (D,), cov (D, D))`
- `frechet_distance(mu1, s1, mu2, s2)`: ||mu1 - mu2||^2 + tr(s1 + s2 - 2 (s1 s2)^(1/2))
  (Dowson & Landau 1982; the FID of Heusel et al. 2017; FCN-FID as in TimeVQVAE, Context-FID as in Diffusion-TS).
- `inception_score(probs (N, K), splits=10) -> (mean, std)`: exp(E_x KL(p(y|x) || p(y))) over `splits` parts
  (Salimans et al. 2016; the split convention of Smith & Smith 2020 / the reference Inception-Score code).
"""
from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from dataloader.errors import UserError


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ddof=1) covariance of `features` `(N, D)`, in float64.

    FID needs many samples for a stable covariance: docs/evaluation.md asks for >= 1000 per side where available.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise UserError("gaussian_stats", f"features must be (N, D), got shape {f.shape}")
    if f.shape[0] < 2:
        raise UserError("gaussian_stats", f"need at least 2 feature vectors for a covariance, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise UserError("gaussian_stats", "features contain NaN or inf")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix via eigh (negative round-off -> 0)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, s1) and N(mu2, s2): mu `(D,)`, s `(D, D)`.

    tr((s1 s2)^(1/2)) is computed as sum sqrt(eig(A s2 A)) with A = s1^(1/2): A s2 A is symmetric PSD and has
    the same eigenvalues as s1 s2, so no complex parts arise (scipy.linalg.sqrtm on s1 s2 needs the eps-offset
    fallback of pytorch-fid for singular products; this route needs none). Eigenvalues below 0 from round-off
    are clipped to 0. The result is clipped at 0 (tiny negative values are round-off).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise UserError("frechet_distance", f"shapes do not match: mu1 {mu1.shape}, s1 {s1.shape}, "
                                            f"mu2 {mu2.shape}, s2 {s2.shape}")
    for name, a in (("mu1", mu1), ("s1", s1), ("mu2", mu2), ("s2", s2)):
        if not np.isfinite(a).all():
            raise UserError("frechet_distance", f"{name} contains NaN or inf")
    a = _psd_sqrt(s1)
    m = a @ s2 @ a
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(fd, 0.0)


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets `(N1, D)` and `(N2, D)`."""
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score of class probabilities `(N, K)`: mean and std over `splits` consecutive parts.

    For each part: IS = exp(mean_x KL(p(y|x) || p(y))) with p(y) the part's mean prediction (Salimans et al. 2016;
    10 splits as in Smith & Smith 2020). 1 for uniform predictions; K for confident predictions spread evenly over
    K classes. Rows are renormalised to sum to 1; 0 log 0 = 0.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise UserError("inception_score", f"probs must be (N, K), got shape {p.shape}")
    if splits < 1 or p.shape[0] < splits:
        raise UserError("inception_score", f"need at least splits={splits} samples (one per split), got {p.shape[0]}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise UserError("inception_score", "probs must be finite and non-negative")
    p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-300, None)
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = (xlogy(part, part) - xlogy(part, py)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
