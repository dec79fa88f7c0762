"""Schema of `train.dp`: differentially private training (DP-SGD through Opacus, diffusion/dp.py).

With `train.dp` set, each optimizer step trains on a Poisson sample (every unit is in the batch with
probability q = train.batch_size / units, independently), each unit's gradient is clipped to
`max_grad_norm` and Gaussian noise is added; the noise multiplier is the smallest that keeps the
accountant's epsilon at `train.max_steps` steps within `target_epsilon` at `delta`.

The unit is what the guarantee protects. `per_window`: a window; a patient with 50 windows can then change
the model by up to 50 windows' worth, and the guarantee for that patient is much weaker (group privacy:
roughly 50 x epsilon). `per_patient`: a sample of patients, one random window of each sampled patient per
step, so the guarantee holds per patient, whatever the number of windows a patient has.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from .typed import limits


@dataclass
class DPConfig:
    """Differentially private training (Opacus DP-SGD, Poisson sampling)."""

    target_epsilon: float = field(metadata=limits(gt=0))  # privacy budget spent at train.max_steps
    # delta of (epsilon, delta)-DP; must be below 1 / (number of units)
    # (docs/evaluation.md asks <= 1 / (10 x patients)); null: 1 / (10 x units)
    delta: Optional[float] = field(default=None, metadata=limits(gt=0, lt=1))
    max_grad_norm: float = field(default=1.0, metadata=limits(gt=0))  # per-unit gradient clipping norm
    accountant: Literal["rdp", "prv", "gdp"] = "prv"  # Opacus accountant that sets the noise and reports epsilon
    unit: Literal["per_patient", "per_window"] = "per_patient"  # what one privacy unit is (see above)
    # noise multiplier instead of a target (null: computed from target_epsilon, delta, sample rate and steps)
    noise_multiplier: Optional[float] = field(default=None, metadata=limits(gt=0))

