"""The order of training windows: endless, seeded, sharded over processes, and resumable by position.

Micro-batch number j (counted over the whole run, the same on every process) is a pure function of
(seed, j, world size): pass k = j // batches_per_pass draws a permutation of the windows (or, when
classes are balanced, a weighted draw with replacement) from a generator seeded with (seed, k); each
global batch of world * batch_size windows is cut into one slice per process. Resuming at micro-batch
j therefore needs only j, whatever DataLoader workers had prefetched when the run stopped.
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import torch

from dataloader.errors import UserError


class WindowOrder:
    """Batches of window indices for one process.

    `n_windows`: training windows; `batch_size`: per process; `weights`: optional (n_windows,) sampling
    weights (class balancing: a pass draws n_windows windows with replacement in proportion to them).
    """

    def __init__(self, n_windows: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 weights: Optional[np.ndarray] = None) -> None:
        if n_windows < batch_size * world:
            raise UserError("train.batch_size", f"a global batch needs {batch_size * world} windows "
                                                f"({world} process(es) x {batch_size}) but the training split "
                                                f"has {n_windows}; lower train.batch_size")
        self.n, self.batch_size, self.seed = n_windows, batch_size, seed
        self.rank, self.world = rank, world
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        # drop the incomplete last global batch of a pass, so every batch has the same shape
        self.batches_per_pass = n_windows // (batch_size * world)

    def _pass(self, k: int) -> torch.Tensor:
        # the seed mixes the run seed and the pass number, so passes differ and any pass can be redrawn alone
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + k) % (2**63 - 1))
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        return torch.randperm(self.n, generator=g)

    def batches(self, start: int = 0) -> Iterator[list[int]]:
        """This process's batches from micro-batch number `start` on, endlessly."""
        k, j = divmod(start, self.batches_per_pass)
        g = self.batch_size * self.world
        while True:
            perm = self._pass(k)
            for b in range(j, self.batches_per_pass):
                lo = b * g + self.rank * self.batch_size
                yield perm[lo:lo + self.batch_size].tolist()
            k, j = k + 1, 0


def balance_weights(labels: np.ndarray) -> np.ndarray:
    """(W,) class codes -> (W,) weights 1 / (windows of that class), so each class is drawn equally often."""
    labels = np.asarray(labels, np.int64)
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / counts[inv]
