"""Torch dataset over the windows of one split of a prepared file.

    ds = WindowDataset("data/ctg-4hz.h5", "train")
    x, y, pid = ds[0]            # x float32 (C, L) in [-1, 1], y int64 (n_labels,), patient id
    xb, yb, pids = ds.get_batch([3, 1, 4])   # (B, C, L), (B, n_labels): one gather, no per-item overhead

The data lives in memory (see PreparedFile), so DataLoader workers are rarely worth their start-up cost;
`get_batch` (or a DataLoader with `batch_size=None` over a batch sampler) is the fast path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .prepared import PreparedFile, open_prepared


class WindowDataset(Dataset):
    """Windows of one split: `(x: float32 (C, L) in [-1, 1], y: int64 (n_labels,), patient_id: str)`."""

    def __init__(self, source: str | Path | PreparedFile, split: str = "train") -> None:
        self.file = open_prepared(source)
        self.split = split
        self._n = self.file.n_windows(split)  # validates the split name

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        x, y, pid = self.file.window(self.split, int(i))
        return torch.from_numpy(x), torch.from_numpy(y), pid

    def __getitems__(self, idx: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
        """Batched fetch used by DataLoader (torch >= 2.1): one gather instead of B slices."""
        x, y, pids = self.get_batch(idx)
        return list(zip(x.unbind(0), y.unbind(0), pids))

    def get_batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Windows `indices` -> (x float32 (B, C, L), y int64 (B, n_labels), patient ids)."""
        if isinstance(indices, torch.Tensor):
            indices = indices.cpu().numpy()
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"window index out of range for split {self.split!r} ({self._n} windows)")
        x, y, pids = self.file.batch(self.split, idx % max(self._n, 1))
        return torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(y)), pids

    # --- what models and samplers need ------------------------------------------------------
    @property
    def labels(self) -> np.ndarray:
        """(W, n_labels) int64 label codes of every window (for samplers and class statistics)."""
        return self.file.labels(self.split)

    @property
    def label_classes(self) -> list[int]:
        """Class count per label column, the "missing" class included (embedding table sizes)."""
        return self.file.label_classes

    @property
    def label_names(self) -> list[str]:
        return self.file.label_names

    @property
    def class_names(self) -> list[list[str]]:
        """Class names per label column, indexed by code."""
        return self.file.class_names

    @property
    def label_spec(self) -> list[dict[str, Any]]:
        return self.file.label_spec

    @property
    def channels(self) -> list[dict[str, Any]]:
        """Per channel: name, unit, range [lo, hi] (physical)."""
        return self.file.channels

    @property
    def fs(self) -> float:
        return self.file.fs

    @property
    def window_len(self) -> int:
        return self.file.window_len

    def patients(self) -> list[str]:
        """Patient ids of this split."""
        return self.file.patients(self.split)

    def to_physical(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Scaled (..., C, L) -> physical units (..., C, L) float64."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return self.file.to_physical(x)
