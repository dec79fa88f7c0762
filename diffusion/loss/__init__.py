"""The diffusion training loss (docs/design.md, "Loss"): one callable, `DiffusionLoss` (objective.py), that owns
the noise levels, the noise, the guidance label dropout, the target, the weighting and the distance
(distance.py: l2 / l1 and Diffusion-TS's Fourier term).

    loss = DiffusionLoss.from_config(cfg.model.diffusion, latent_length, label_classes)
    value = loss(denoiser, z0, labels, generator)
"""
from __future__ import annotations

from .distance import DISTANCES, L1Loss, L2Loss, PerSampleLoss, build_distance, fourier_loss, resolve_fourier_weight
from .objective import DiffusionLoss, draw_noise_levels, drop_labels, latent_weight, min_snr_weight

__all__ = ["DISTANCES", "DiffusionLoss", "L1Loss", "L2Loss", "PerSampleLoss", "build_distance", "draw_noise_levels",
           "drop_labels", "fourier_loss", "latent_weight", "min_snr_weight", "resolve_fourier_weight"]
