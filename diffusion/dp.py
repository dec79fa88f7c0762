"""Differentially private training (DP-SGD, Abadi et al. 2016) through Opacus, hooked into diffusion/train_loop.py.

`train.dp` (training/config.py) turns it on. What changes against plain training:
- batches: Poisson sampling, a pure function of (seed, step) so that resume stays exact. `per_window`: each
  training window joins a step's batch with probability q = batch_size / windows. `per_patient`: each patient
  joins with probability q = batch_size / patients and brings ONE window, drawn uniformly from its windows;
  one patient then changes at most one gradient term per step, so the guarantee is per patient.
- gradients: per-sample gradients (Opacus GradSampleModule hooks), each clipped to `max_grad_norm`, summed,
  Gaussian noise of std noise_multiplier x max_grad_norm added, divided by the expected batch size
  (opacus DPOptimizer around the AdamW of the loop; the global grad_clip is then off);
- the noise multiplier is the smallest that keeps the accountant's epsilon at train.max_steps within
  `target_epsilon` (opacus get_noise_multiplier); the epsilon spent so far is a function of the step count
  only (history = [(noise, q, steps)]), so it survives resume, and goes into the log, the model file's
  metadata ("dp" key) and the privacy report.

What per-window DP does NOT give: with W windows per patient, one patient can move up to W terms of each
batch, so the patient-level guarantee degrades by group privacy to roughly (W x epsilon, W e^(W eps) delta);
for CTG (tens of overlapping windows per patient) that is no meaningful bound. Use per_patient.

Every layer of the UNet has an Opacus per-sample-gradient rule (Conv1d, Linear, GroupNorm, Embedding);
attention is built from 1x1 Conv1d and parameter-free SDPA, and the first stages have no trainable
parameters. `grad_sample_support(model)` lists, per layer type, whether Opacus uses its own rule or the
functorch fallback (layers with parameters but no rule).
"""
from __future__ import annotations

import json
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch import nn

from dataloader.errors import UserError

# what to use instead of each layer type that Opacus's validator rejects
REPLACEMENTS = {"BatchNorm": "GroupNorm (per-sample statistics; Opacus's ModuleValidator.fix does this)",
                "InstanceNorm": "GroupNorm or InstanceNorm(track_running_stats=False)",
                "LSTM": "opacus.layers.DPLSTM", "GRU": "opacus.layers.DPGRU", "RNN": "opacus.layers.DPRNN",
                "MultiheadAttention": "opacus.layers.DPMultiheadAttention"}


def check_model(model: nn.Module, where: str = "train.dp") -> None:
    """Refuse a network that Opacus's validator rejects: one line naming the first bad layer and its fix."""
    from opacus.validators import ModuleValidator

    for name, m in model.named_modules():
        check = ModuleValidator.VALIDATORS.get(type(m))
        errors = check(m) if check is not None else []
        if errors:
            kind = type(m).__name__
            fix = next((v for k, v in REPLACEMENTS.items() if kind.startswith(k)), "a layer Opacus supports")
            raise UserError(where, f"layer {name or '(root)'} ({kind}) cannot be trained with DP-SGD: "
                                   f"{str(errors[0]).split('.')[0]}; use {fix} instead")


def grad_sample_support(model: nn.Module) -> dict[str, str]:
    """Layer type -> "opacus" (its own per-sample rule) or "functorch" (fallback) for layers with parameters."""
    from opacus.grad_sample import GradSampleModule

    out = {}
    for m in model.modules():
        if any(p.requires_grad for p in m.parameters(recurse=False)):
            out[type(m).__name__] = "opacus" if type(m) in GradSampleModule.GRAD_SAMPLERS else "functorch"
    return out


def spent_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                  accountant: str = "prv") -> float:
    """Epsilon after `steps` DP-SGD steps of (noise_multiplier, sample_rate) at delta (Opacus accountant)."""
    from opacus.accountants import create_accountant

    if steps <= 0:
        return 0.0
    acc = create_accountant(accountant)
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    return float(acc.get_epsilon(delta=delta))


class PoissonOrder:
    """Index lists of the training windows for each DP step (the loop's `order`; micro-batch j = step j).

    `window_patients` (W,): patient number of each training window. Step j's draw comes from a generator
    seeded with (seed, j) alone, so a resumed run draws the same batches.
    """

    def __init__(self, window_patients: np.ndarray, sample_rate: float, unit: str, seed: int) -> None:
        self.unit, self.q, self.seed = unit, float(sample_rate), int(seed)
        wp = np.asarray(window_patients, np.int64)
        self.n_windows = len(wp)
        order = np.argsort(wp, kind="stable")
        self.patients, starts, counts = np.unique(wp[order], return_index=True, return_counts=True)
        self._order, self._starts, self._counts = order, starts, counts

    def draw(self, j: int) -> list[int]:
        """Window indices of step j (sorted; possibly empty)."""
        rng = np.random.default_rng([self.seed, 7_777, int(j)])
        if self.unit == "per_window":
            return np.flatnonzero(rng.random(self.n_windows) < self.q).tolist()
        chosen = np.flatnonzero(rng.random(len(self.patients)) < self.q)
        pick = (rng.random(len(chosen)) * self._counts[chosen]).astype(np.int64)
        return np.sort(self._order[self._starts[chosen] + pick]).tolist()

    def batches(self, start: int = 0) -> Iterator[list[int]]:
        j = start
        while True:
            yield self.draw(j)
            j += 1


class DPTraining:
    """The DP parts of one training run: sampling, noise calibration, Opacus wrappers, accounting."""

    def __init__(self, tc: Any, window_patients: np.ndarray, world: int, balance_by: Optional[str] = None) -> None:
        dp = tc.dp
        if balance_by:
            raise UserError("data.balance_by", "class-balanced batches are not Poisson samples: set it to null "
                                               "with train.dp")
        if world != 1:
            raise UserError("train.dp", f"DP training runs in one process (this run has {world}); Poisson "
                                        "batches and per-sample clipping are not sharded here")
        if tc.grad_accum != 1:
            raise UserError("train.grad_accum", "must be 1 with train.dp (a DP step is one Poisson batch)")
        self.cfg = dp
        n_patients = len(np.unique(window_patients))
        units = n_patients if dp.unit == "per_patient" else len(window_patients)
        self.units, self.n_patients = units, n_patients
        self.delta = dp.delta if dp.delta is not None else 1.0 / (10 * units)
        if self.delta >= 1.0 / n_patients:
            raise UserError("train.dp.delta", f"must be < 1 / patients = {1.0 / n_patients:.3g} ({n_patients} training "
                                              f"patients; docs/evaluation.md asks <= 1 / (10 x patients)) "
                                              f"(got {self.delta:g})")
        if tc.batch_size >= units:
            raise UserError("train.batch_size", f"the expected DP batch ({tc.batch_size}) must be below the number "
                                                f"of {dp.unit.replace('per_', '')}s ({units})")
        self.sample_rate = tc.batch_size / units
        self.expected_batch = tc.batch_size
        self.steps = tc.max_steps
        if dp.noise_multiplier is not None:
            self.noise = float(dp.noise_multiplier)
        else:
            from opacus.accountants.utils import get_noise_multiplier

            self.noise = float(get_noise_multiplier(target_epsilon=dp.target_epsilon, target_delta=self.delta,
                                                    sample_rate=self.sample_rate, steps=self.steps,
                                                    accountant=dp.accountant))
        self.order = PoissonOrder(window_patients, self.sample_rate, dp.unit, tc.seed)
        self.noise_gen = torch.Generator().manual_seed(tc.seed * 1000 + 43)
        self.optimizer: Any = None

    def wrap(self, loss_module: nn.Module, opt: torch.optim.Optimizer, device: torch.device
             ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """(per-sample-gradient module, DP optimizer) around the loop's loss module and AdamW."""
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        if self.noise_gen.device != device:
            self.noise_gen = torch.Generator(device=device).manual_seed(int(self.noise_gen.initial_seed()))
        gsm = GradSampleModule(loss_module, batch_first=True, loss_reduction="mean")
        self.optimizer = DPOptimizer(opt, noise_multiplier=self.noise, max_grad_norm=self.cfg.max_grad_norm,
                                     expected_batch_size=self.expected_batch, loss_reduction="mean",
                                     generator=self.noise_gen)
        return gsm, self.optimizer

    def epsilon(self, step: int) -> float:
        return spent_epsilon(self.noise, self.sample_rate, step, self.delta, self.cfg.accountant)

    def meta(self, step: int) -> dict[str, Any]:
        """What the model file, the log and the privacy report say about the guarantee."""
        return {"epsilon": self.epsilon(step), "delta": self.delta, "target_epsilon": self.cfg.target_epsilon,
                "unit": self.cfg.unit, "accountant": self.cfg.accountant, "noise_multiplier": self.noise,
                "sample_rate": self.sample_rate, "steps": int(step), "max_grad_norm": self.cfg.max_grad_norm,
                "units": self.units, "patients": self.n_patients, "expected_batch_size": self.expected_batch}

    def model_meta(self, step: int) -> dict[str, str]:
        """The model file's extra metadata: {"dp": JSON of `meta(step)`}."""
        return {"dp": json.dumps(self.meta(step))}

    def check_model(self, model: nn.Module) -> None:
        check_model(model)

    def empty_batch(self, loss_module: nn.Module, x: torch.Tensor) -> bool:
        return empty_batch_step(loss_module, x)

    def describe(self) -> str:
        return describe(self)

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {"dp_noise": self.noise_gen.get_state()}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if "dp_noise" not in tensors:
            raise UserError("--resume", "the checkpoint was not written by a DP run (no DP noise state)")
        self.noise_gen.set_state(tensors["dp_noise"])


def empty_batch_step(loss_module: nn.Module, x: torch.Tensor) -> bool:
    """True when a Poisson batch came out empty: the loop then gives every parameter an empty per-sample
    gradient, so the DP optimizer still adds its noise (skipping the step would change the guarantee)."""
    if len(x):
        return False
    for p in loss_module.parameters():
        if p.requires_grad:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
    return True


def describe(dp: Optional[DPTraining]) -> str:
    if dp is None:
        return ""
    c = dp.cfg
    return (f"DP-SGD ({c.unit}, {c.accountant}): noise {dp.noise:.3f}, sample rate {dp.sample_rate:.4g}, "
            f"clip {c.max_grad_norm:g}, target epsilon {c.target_epsilon:g} at delta {dp.delta:.3g} after "
            f"{dp.steps} steps")

