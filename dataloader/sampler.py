"""Class-balanced sampling of training windows by one label column.

Each window is drawn with probability proportional to 1 / (windows of its class), so every class present
in the split is drawn equally often on average. Rare outcomes (pH < 7.05 is ~4 % of CTG windows) then
reach the model as often as common ones; classifier-free guidance still learns the unconditional model
because labels are dropped at training, not here.

Deterministic: the indices of epoch e depend only on (seed, e). Each `iter()` uses the current epoch and
then advances it, so successive epochs differ; call `set_epoch(e)` (as with DistributedSampler) to resume
exactly.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler

from .errors import UserError


class BalancedSampler(Sampler[int]):
    """Indices into a WindowDataset, balanced by one label column.

    labels: the dataset (anything with `.labels` (W, n_labels) and `.label_names`) or an array of codes.
    column: label name or column number. num_samples: indices per epoch (default: len(dataset)).
    """

    def __init__(self, labels: object, column: str | int = 0, num_samples: Optional[int] = None,
                 seed: int = 0, with_replacement: bool = True) -> None:
        names: Sequence[str] = getattr(labels, "label_names", [])
        codes = np.asarray(getattr(labels, "labels", labels))
        if codes.ndim == 1:
            codes = codes[:, None]
        if isinstance(column, str):
            if column not in names:
                raise UserError("balance_by", f"label {column!r} is not one of {list(names)}")
            column = list(names).index(column)
        if not 0 <= column < codes.shape[1]:
            raise UserError("balance_by", f"label column {column} out of range (0..{codes.shape[1] - 1})")
        y = codes[:, column]
        n = len(y)
        if n == 0:
            raise UserError("balance_by", "no windows to sample from")
        _, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
        w = 1.0 / counts[inv]
        self.p = w / w.sum()                      # (W,) draw probability of each window
        self.num_samples = int(num_samples) if num_samples is not None else n
        if self.num_samples < 1:
            raise UserError("num_samples", f"must be >= 1 (got {self.num_samples})")
        if not with_replacement and self.num_samples > n:
            raise UserError("num_samples", f"{self.num_samples} draws without replacement from {n} windows")
        self.seed = int(seed)
        self.with_replacement = bool(with_replacement)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the index sequence of this epoch next (for exact resumption)."""
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """(num_samples,) int64 indices of one epoch; a pure function of (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        return rng.choice(len(self.p), size=self.num_samples, replace=self.with_replacement, p=self.p)

    def __iter__(self) -> Iterator[int]:
        idx = self.indices(self.epoch)
        self.epoch += 1
        return iter(idx.tolist())

    def __len__(self) -> int:
        return self.num_samples
