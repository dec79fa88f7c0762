"""Learning-rate schedule: linear warm-up, then cosine decay, plateau cuts on validation loss, or constant.

One small object instead of torch's schedulers because (1) warm-up must combine with a plateau rule,
(2) its whole state is a few numbers that go into the resumable checkpoint as JSON (no pickles), and
(3) accelerate's scheduler wrapper steps a scheduler once per process, which would shorten a cosine
schedule by the number of processes. The optimizer's learning rate is set directly before each step.
"""
from __future__ import annotations

import math
from typing import Any

import torch


class LRSchedule:
    """lr(step) for `kind` in cosine | plateau | constant, with `warmup_steps` of linear warm-up.

    cosine: lr_min + (lr - lr_min) * (1 + cos(pi * progress)) / 2 over the steps after warm-up
    (Loshchilov & Hutter 2017, no restarts). plateau: lr * scale, where scale is multiplied by `factor`
    after `patience` validations without a relative improvement of 1e-4 (as torch's ReduceLROnPlateau),
    never below lr_min. constant: lr.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, lr: float, max_steps: int,
                 warmup_steps: int = 0, lr_min: float = 0.0, patience: int = 3, factor: float = 0.5) -> None:
        if kind not in ("cosine", "plateau", "constant"):
            raise ValueError(f"unknown lr schedule {kind!r}")
        self.optimizer = optimizer
        self.kind, self.lr, self.max_steps = kind, lr, max_steps
        self.warmup_steps, self.lr_min = warmup_steps, lr_min
        self.patience, self.factor = patience, factor
        self.scale = 1.0            # plateau: product of the cuts so far
        self.best = math.inf        # plateau: best validation loss seen
        self.bad_epochs = 0         # plateau: validations since the best one

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step `step` (0-based)."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.kind == "cosine":
            span = max(1, self.max_steps - self.warmup_steps)
            p = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            base = self.lr_min + (self.lr - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * p))
        elif self.kind == "plateau":
            base = max(self.lr_min, self.lr * self.scale)
        else:
            base = self.lr
        return base * warm

    def apply(self, step: int) -> float:
        """Set every parameter group's lr for optimizer step `step`; returns it."""
        lr = self.lr_at(step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def observe(self, val_loss: float) -> bool:
        """Feed one validation loss (plateau only); returns True when the LR was cut."""
        if self.kind != "plateau" or not math.isfinite(val_loss):
            return False
        if val_loss < self.best * (1.0 - 1e-4) if self.best > 0 else val_loss < self.best:
            self.best, self.bad_epochs = val_loss, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scale": self.scale, "best": self.best if math.isfinite(self.best) else None,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.best = math.inf if state.get("best") is None else float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
