"""Real windows for evaluation: seeded subsets of one split of a prepared file, in physical units.

Every score compares synthetic windows with windows of patients the generator never saw (the reference split,
`test` by default); the real-vs-real floor uses windows of the TRAIN patients in place of the synthetic ones
(docs/evaluation.md). Patients are the unit of every split; here only whole splits are read. A data set with no
held-out patients (one series, all in train) may use `eval.reference: train`: then the floor draws its
windows from the train windows that are not in the reference subset.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dataloader.errors import UserError
from dataloader.prepared import PreparedFile

from .fcn.weights import file_sha256


@dataclass
class RealSet:
    """Windows of one split: x `(N, C, L)` float32 physical units, y `(N, n_labels)` int64, patient ids."""

    split: str
    x: np.ndarray
    y: np.ndarray
    patients: list[str]
    index: np.ndarray            # (N,) window numbers within the split

    @property
    def n_patients(self) -> int:
        return len(set(self.patients))


def real_subset(pf: PreparedFile, split: str, n: int | None, seed: int,
                exclude: np.ndarray | None = None) -> RealSet:
    """Up to `n` windows of `split` drawn without replacement (seeded; all of them when the split has fewer),
    kept in window order, never one of the window numbers in `exclude` (the reference's, when the floor is
    drawn from the reference split itself). UserError when no window is left."""
    total = pf.n_windows(split)
    pool = np.arange(total) if exclude is None else np.setdiff1d(np.arange(total), exclude)
    if len(pool) == 0:
        left = "" if exclude is None else f" besides the {len(exclude)} reference windows"
        raise UserError(pf.path, f"split {split!r} has no windows{left}")
    rng = np.random.default_rng([seed, {"train": 0, "val": 1, "test": 2}.get(split, 3)])
    idx = pool if n is None or n >= len(pool) else np.sort(rng.choice(pool, n, replace=False))
    xs, ys, pids = [], [], []
    for i in range(0, len(idx), 512):                 # bounded memory: float64 physical copies per chunk
        xb, yb, pb = pf.batch(split, idx[i: i + 512])
        xs.append(pf.to_physical(xb).astype(np.float32))
        ys.append(yb)
        pids += pb
    return RealSet(split, np.concatenate(xs), np.concatenate(ys).astype(np.int64), pids, idx)


@lru_cache(maxsize=8)
def _sha_cached(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def data_sha256(path: str) -> str:
    """SHA-256 of a prepared file (the key of trained FCNs and cached floors); memoised per size and mtime."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise UserError(str(path), f"cannot read: {e.strerror}") from None
    return _sha_cached(os.path.abspath(path), st.st_size, st.st_mtime_ns)
