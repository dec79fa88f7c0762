"""Black box, synthetic data only: distance to the closest synthetic record (DCR), per patient, shift tolerant.

The attacker holds the synthetic windows and the candidate patients' real windows (scaled to [-1, 1]). For a
real window a: min over synthetic windows b and shifts s (|s| <= max_shift samples) of the mean squared
difference of the overlapping parts of a and b shifted by s, so a copied stretch that starts a minute later
still counts as close. Windows are block-averaged to at most `max_len` samples first (cost; CTG detail below
a few seconds is not what identifies a patient). A patient's score is minus the smallest DCR over its
windows: one memorised window exposes the patient. Members are expected closer (Chen et al. 2020,
"GAN-Leaks"; the "distance to closest record" of synthetic-data privacy audits).
"""
from __future__ import annotations

import numpy as np
import torch

from evaluation.metrics.prep import block_mean, block_size_for


def shift_tolerant_dcr(real: np.ndarray, synth: np.ndarray, max_shift: int, chunk: int = 512) -> np.ndarray:
    """(N, C, L) real, (M, C, L) synthetic -> (N,) min over synthetic windows and shifts |s| <= max_shift of
    the mean squared difference over the overlap."""
    a = torch.as_tensor(np.ascontiguousarray(real), dtype=torch.float32)
    b = torch.as_tensor(np.ascontiguousarray(synth), dtype=torch.float32)
    L = a.shape[-1]
    max_shift = int(min(max_shift, L // 2))
    best = torch.full((len(a),), float("inf"))
    for s in range(-max_shift, max_shift + 1):
        aa = a[..., s:] if s >= 0 else a[..., :L + s]     # a[t + s] against b[t]
        bb = b[..., :L - s] if s >= 0 else b[..., -s:]
        af, bf = aa.reshape(len(a), -1), bb.reshape(len(b), -1)
        d = af.shape[1]
        bn = (bf * bf).sum(1)
        for i in range(0, len(a), chunk):
            x = af[i:i + chunk]
            dist = ((x * x).sum(1, keepdim=True) + bn[None] - 2 * x @ bf.T).clamp_min(0) / d
            best[i:i + chunk] = torch.minimum(best[i:i + chunk], dist.min(1).values)
    return best.numpy().astype(np.float64)


def dcr_scores(real: np.ndarray, patients: np.ndarray, n_patients: int, synth: np.ndarray, fs: float,
               max_shift_s: float, max_len: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-patient DCR attack scores (P,) (higher = closer = member) and the per-window DCR (N,).

    real (N, C, L) scaled windows of the population, patients (N,) their position in the population."""
    block = block_size_for(real.shape[-1], max_len)
    r, s = block_mean(real, block), block_mean(synth, block)
    shift = int(round(max_shift_s * fs / block))
    d = shift_tolerant_dcr(r, s, shift)
    best = np.full(n_patients, np.inf)
    np.minimum.at(best, patients, d)
    return -best, d
