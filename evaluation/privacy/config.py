"""The `privacy` config section: membership-inference audits (evaluation/privacy/, docs/evaluation.md section 2).

Membership is per patient. The audit population is the train split's patients (or `patients` of them drawn
at random); the target model trains on a random half (the members, saved in out_dir/members.json), each of
the K shadow models on its own random half such that every patient is in exactly half of the shadows.
Target and shadows are trained by train.py's own function with the `model` and `train` sections of the
same config (train.out_dir is replaced by folders under privacy.out_dir).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from dataloader.config.typed import limits
from dataloader.errors import UserError


@dataclass
class PrivacyConfig:
    """Membership-inference audit: population, shadow models, attack settings, black-box sample."""

    out_dir: str                                # members.json, target/, shadows/, scores, synthetic sample, reports
    # audit population: this many train-split patients drawn at random (null: the whole train split)
    patients: Optional[int] = field(default=None, metadata=limits(ge=4))
    # member manifest to reuse (e.g. of a non-DP audit, to audit a DP model on the same members); null: draw one
    members: Optional[str] = None
    seed: int = 0                               # population, members, keep matrix, fixed noise draws
    shadows: int = field(default=8, metadata=limits(ge=2))  # K shadow models for LiRA (>= 16 for a real audit)
    # timesteps t (of model.diffusion.num_steps) at which the loss scores are taken; LiRA picks one level, or
    # their mean, on the shadow models alone
    noise_levels: list[int] = field(default_factory=lambda: [20, 50, 100, 200, 400], metadata=limits(min_len=1))
    draws: int = field(default=2, metadata=limits(ge=1))  # fixed noise draws per window and level
    # windows per patient used for scores and black-box attacks (evenly spread; null: all)
    windows_per_patient: Optional[int] = field(default=16, metadata=limits(ge=1))
    lira_variance: Literal["global", "per_patient"] = "global"  # LiRA Gaussians: pooled variance or per patient
    # RMIA: reference models = the first this many of the `shadows` shadow models (1-4 suffice for RMIA)
    references: int = field(default=2, metadata=limits(ge=1))
    rmia_gamma: float = field(default=1.0, metadata=limits(gt=0))  # RMIA: LR(x, z) must reach this to count z
    # RMIA offline: Pr_IN ~ a Pr_OUT + (1 - a); null: chosen on the references (0.5 with one reference)
    rmia_offline_a: Optional[float] = field(default=None, metadata=limits(gt=0, le=1))
    # attribute inference: label columns to infer (null: every label column of the data)
    attribute_labels: Optional[list[str]] = None
    attribute_steps: int = field(default=400, metadata=limits(ge=1))  # optimiser steps of its FCN
    synthetic: int = field(default=1000, metadata=limits(ge=10))  # synthetic windows for the black-box attacks
    # black box: attack this synthetic HDF5 (from generate.py) instead of sampling the target model
    synthetic_file: Optional[str] = None
    # sampler of the synthetic sample
    sampler: str = field(default="dpm_solver", metadata=limits(one_of="diffusion.samplers:SAMPLERS", what="sampler"))
    steps: int = field(default=20, metadata=limits(ge=1))  # sampler steps of the synthetic sample
    dcr_max_shift_s: float = field(default=120.0, metadata=limits(ge=0))  # DCR: compare windows shifted up to this
    dcr_max_len: int = field(default=256, metadata=limits(ge=8))  # DCR: block-mean windows to at most this length
    # DOMIAS: FCN feature file (python -m evaluation.fcn.train); null: train one on the reference patients
    fcn: Optional[str] = None
    fcn_label: str = "pH"                       # label column the FCN is trained on (when privacy.fcn is null)
    fcn_steps: int = field(default=400, metadata=limits(ge=1))  # optimiser steps of that FCN
    domias_dims: int = field(default=16, metadata=limits(ge=1))  # DOMIAS: PCA dimensions of the FCN features
    # DOMIAS reference data: patients of these splits (never in the population)
    reference_splits: list[str] = field(default_factory=lambda: ["val", "test"], metadata=limits(min_len=1))
    threads: Optional[int] = field(default=None, metadata=limits(gt=0))  # torch threads (null: all cores)

    def check(self, where: str) -> None:
        if not self.out_dir:
            raise UserError(f"{where}.out_dir", "must name a folder")
        if any(t < 0 for t in self.noise_levels):
            raise UserError(f"{where}.noise_levels", f"timesteps must be >= 0 (got {self.noise_levels})")
        bad = [s for s in self.reference_splits if s not in ("val", "test")]
        if bad:
            raise UserError(f"{where}.reference_splits", f"must be val and/or test, never the audited train split "
                                                         f"(got {bad})")

