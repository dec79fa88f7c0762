"""The `train` config section: optimiser, LR schedule, EMA, cadence of validation/plots/checkpoints, and
`train.dp`, differentially private training (DP-SGD through Opacus, diffusion/dp.py).

One "epoch" here is a reporting period of `epoch_steps` optimizer steps (validation loss, CSV log row,
sample plot, checkpoint), not necessarily one pass over the data: CTG at a 15 s stride has tens of
thousands of overlapping windows, and a tiny CPU run must still report several times.

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

from dataloader.config.typed import limits
from dataloader.errors import UserError


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


@dataclass
class TrainConfig:
    """How to train: optimiser, LR schedule, EMA, validation, plots, checkpoints and outputs."""

    out_dir: str                                # folder for checkpoints/, log.csv, plots/, model.safetensors, config.yaml
    max_steps: int = field(metadata=limits(gt=0))  # optimizer steps in total (a resumed run continues to this)
    # wall-clock cap in minutes on the run's training time (summed over resumes): stop at the next step and
    # save a checkpoint and the model file (null: no cap)
    max_minutes: Optional[float] = field(default=None, metadata=limits(gt=0))
    # defaults batch 64, lr 1e-3: the equal-budget ablation of issue 12 (bench/results/recipe_ablation.md)
    batch_size: int = field(default=64, metadata=limits(gt=0))  # windows per micro-batch on each process
    grad_accum: int = field(default=1, metadata=limits(ge=1))   # micro-batches per optimizer step
    lr: float = field(default=1e-3, metadata=limits(gt=0))       # peak learning rate (AdamW)
    weight_decay: float = field(default=0.0, metadata=limits(ge=0))  # AdamW decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.999)   # AdamW betas (momentum, second moment)
    adam_eps: float = field(default=1e-8, metadata=limits(gt=0))   # AdamW epsilon
    # diffusion AdamW kernel: fused (one kernel per tensor, 2-4x faster than foreach on CPU, issue 14) or foreach
    # (multi-tensor ops: the float bits of runs made before the fused default)
    adam_impl: Literal["fused", "foreach"] = "fused"
    grad_clip: Optional[float] = field(default=1.0, metadata=limits(gt=0))  # max global grad norm (null: off)
    ema_decay: float = field(default=0.999, metadata=limits(ge=0, lt=1))  # EMA of weights; the model file holds the EMA
    # EMA warm-up: decay = min(ema_decay, (1 + n) / (10 + n)) at update n, so early EMA is not stuck at init
    ema_warmup: bool = True
    lr_schedule: Literal["cosine", "plateau", "constant"] = "cosine"  # after warm-up: cosine to lr_min, plateau on val loss, or flat
    # linear LR warm-up from 0 over this many steps; null = min(200, max_steps // 10) (short runs still reach lr)
    warmup_steps: Optional[int] = field(default=None, metadata=limits(ge=0))
    lr_min: float = field(default=0.0, metadata=limits(ge=0))    # cosine: final learning rate; plateau: lower bound
    plateau_patience: int = field(default=3, metadata=limits(ge=0))  # plateau: epochs without val improvement before a cut
    plateau_factor: float = field(default=0.5, metadata=limits(gt=0, lt=1))  # plateau: multiply the LR by this at a cut
    # optimizer steps per "epoch" (validation, log row, plot, checkpoint); null = one pass over the training
    # windows, capped at 2000 steps and at max_steps / 10 so that every run reports at least ~10 times
    epoch_steps: Optional[int] = field(default=None, metadata=limits(gt=0))
    val_batches: int = field(default=8, metadata=limits(ge=0))  # validation batches per epoch (fixed windows, fixed noise); 0 = off
    plot_every: int = field(default=1, metadata=limits(ge=0))   # plot samples every this many epochs (0 = never)
    plot_samples: int = field(default=4, metadata=limits(gt=0))  # samples in each epoch plot (beside as many real windows)
    # sampler and steps of the epoch plots: keep FEW steps (a 1000-step plot pass once cost 890 s per epoch)
    plot_sampler: str = field(default="dpm_solver", metadata=limits(one_of="diffusion.samplers:SAMPLERS", what="sampler"))
    plot_steps: int = field(default=15, metadata=limits(gt=0))  # sampler steps of the epoch plots
    seed: int = 0                               # seeds data order, noise, t and label dropout (resume is exact)
    num_workers: int = field(default=0, metadata=limits(ge=0))  # DataLoader worker processes (0: read in the training process)
    keep_checkpoints: int = field(default=2, metadata=limits(ge=1))  # resumable states kept in out_dir/checkpoints
    # torch threads per process (null: OMP_NUM_THREADS if set, else this process's cores / local processes)
    threads: Optional[int] = field(default=None, metadata=limits(gt=0))
    # train only on these patients of the train split (privacy audits: target and shadow models); null = all
    patients: Optional[list[str]] = None
    dp: Optional[DPConfig] = None               # differentially private training (DP-SGD, Opacus); null = off

    def check(self, where: str) -> None:
        if self.warmup_steps is None:  # resolved here, so the saved config says what ran
            self.warmup_steps = min(200, self.max_steps // 10)
        if not all(0 <= b < 1 for b in self.betas):
            raise UserError(f"{where}.betas", f"each beta must be in [0, 1) (got {list(self.betas)})")
        if self.lr_min > self.lr:
            raise UserError(f"{where}.lr_min", f"must be <= lr ({self.lr:g}) (got {self.lr_min:g})")
        if self.lr_schedule == "plateau" and self.val_batches == 0:
            raise UserError(f"{where}.lr_schedule", "plateau follows the validation loss: set val_batches > 0")
        if not self.out_dir:
            raise UserError(f"{where}.out_dir", "must name a folder")

