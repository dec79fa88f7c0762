"""White-box scores: each patient's denoising loss at fixed noise levels and fixed noise draws.

For every audited window w, level t and draw d the noise is drawn from a generator seeded by
(seed, window row, d) alone, so every model (target and shadows) sees exactly the same (x_t, t) pairs and the
scores differ only through the weights. Labels are the window's own (a white-box attacker holds the record);
classifier-free label dropout is off. Per patient: the mean over its windows and draws, per level.
A member's windows were fitted, so its loss tends to be lower (Carlini et al. 2023, "Extracting training
data from diffusion models"; the loss attack of Matsumoto et al. 2023).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from dataloader.dataset import WindowDataset


def audit_windows(ds: WindowDataset, population: Sequence[str], per_patient: Optional[int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Up to `per_patient` windows of each population patient, evenly spread over its recording.

    Returns (rows of `ds` (M,), patient position in `population` (M,)), grouped by patient.
    """
    from dataloader.subset import window_patient_numbers

    ids = ds.file.patient_ids
    wp = window_patient_numbers(ds)
    pos = {p: i for i, p in enumerate(population)}
    rows, pats = [], []
    by_patient: dict[int, list[int]] = {}
    for r, num in enumerate(wp):
        i = pos.get(ids[int(num)])
        if i is not None:
            by_patient.setdefault(i, []).append(r)
    for i in range(len(population)):
        have = by_patient.get(i, [])
        if per_patient is not None and len(have) > per_patient:
            have = [have[j] for j in np.unique(np.linspace(0, len(have) - 1, per_patient).round().astype(int))]
        rows += have
        pats += [i] * len(have)
    return np.asarray(rows, np.int64), np.asarray(pats, np.int64)


def fixed_noise(shape: Sequence[int], rows: np.ndarray, draw: int, seed: int) -> torch.Tensor:
    """(len(rows), *shape) standard normal noise, a pure function of (seed, row, draw) per window."""
    out = torch.empty((len(rows), *shape))
    for i, r in enumerate(rows):
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(r) * 101 + int(draw)) % (2**63 - 1))
        out[i] = torch.randn(tuple(shape), generator=g)
    return out


@torch.no_grad()
def window_losses(model: Any, ds: WindowDataset, rows: np.ndarray, levels: Sequence[int], draws: int, seed: int,
                  batch: int = 64) -> np.ndarray:
    """Per-window denoising losses (M, n_levels, draws) of `model` (a DiffusionModel or anything with
    `latent_shape`, `training_loss(x, labels, t=, noise=, cfg_dropout=, reduction=)` and `device`)."""
    dev = getattr(model, "device", torch.device("cpu"))
    shape = model.latent_shape
    out = np.zeros((len(rows), len(levels), draws), np.float64)
    for b in range(0, len(rows), batch):
        r = rows[b:b + batch]
        x, y, _ = ds.get_batch(r)
        x, y = x.to(dev), y.to(dev)
        for d in range(draws):
            noise = fixed_noise(shape, r, d, seed).to(dev)
            for j, t in enumerate(levels):
                tt = torch.full((len(r),), int(t), dtype=torch.long, device=dev)
                loss = model.training_loss(x, y, t=tt, noise=noise, cfg_dropout=False, reduction="none")
                out[b:b + len(r), j, d] = loss.double().cpu().numpy()
    return out


def patient_scores(losses: np.ndarray, patients: np.ndarray, n_patients: int) -> np.ndarray:
    """Per-window losses (M, n_levels, draws) -> per-patient mean loss (P, n_levels)."""
    per_window = losses.mean(axis=2)
    tot = np.zeros((n_patients, per_window.shape[1]))
    np.add.at(tot, patients, per_window)
    n = np.bincount(patients, minlength=n_patients).astype(np.float64)
    if (n == 0).any():
        raise ValueError("a population patient has no audited window")
    return tot / n[:, None]


def model_patient_losses(model: Any, ds: WindowDataset, rows: np.ndarray, patients: np.ndarray, n_patients: int,
                         levels: Sequence[int], draws: int, seed: int) -> np.ndarray:
    """(P, n_levels) mean denoising loss per patient and level for one model."""
    return patient_scores(window_losses(model, ds, rows, levels, draws, seed), patients, n_patients)
