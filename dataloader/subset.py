"""The windows of chosen patients of one split (privacy audits: target and shadow models train on subsets).

    ds = patient_subset(WindowDataset("data/ctg-1hz.h5", "train"), ["1001", "1004"])
    len(ds), ds.get_batch([0, 1]), ds.window_patient_index()   # only those patients' windows

A subset keeps every property of the split it comes from (channels, label classes, rates), so a model trained
on it has the same shapes and label tables as one trained on the whole split. Patients are the unit: a patient
is either in (all windows) or out (none), never split.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .dataset import WindowDataset
from .errors import UserError


class PatientSubset(WindowDataset):
    """A WindowDataset restricted to the windows of `patients` (ids of the split)."""

    def __init__(self, base: WindowDataset, patients: Sequence[str], where: str = "train.patients") -> None:
        super().__init__(base.file, base.split)
        known = set(self.file.patients(self.split))
        unknown = sorted(set(patients) - known)
        if unknown:
            raise UserError(where, f"{len(unknown)} patient(s) are not in the {self.split!r} split of "
                                   f"{self.file.path}: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
        if not patients:
            raise UserError(where, "names no patient")
        chosen = set(patients)
        wanted = np.array([pid in chosen for pid in self.file.patient_ids], dtype=bool)
        self._all_pat = self.file.window_patients(self.split)
        self.index = np.flatnonzero(wanted[self._all_pat]).astype(np.int64)   # rows of the split
        self._patients = sorted(set(patients))
        self._n = len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        x, y, pid = self.file.window(self.split, int(self.index[int(i)]))
        return torch.from_numpy(x), torch.from_numpy(y), pid

    def get_batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Subset positions -> (x (B, C, L), y (B, n_labels), patient ids)."""
        if isinstance(indices, torch.Tensor):
            indices = indices.cpu().numpy()
        idx = np.asarray(indices, dtype=np.int64)
        x, y, pids = self.file.batch(self.split, self.index[idx])
        return torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(y)), pids

    @property
    def labels(self) -> np.ndarray:
        return self.file.labels(self.split)[self.index]

    def patients(self) -> list[str]:
        return list(self._patients)

    def window_patient_numbers(self) -> np.ndarray:
        """(W,) int64 patient number (row of the file's patient ids) of every window of the subset."""
        return self._all_pat[self.index]


def window_patient_numbers(ds: WindowDataset) -> np.ndarray:
    """(W,) patient number of every window of a dataset or subset (for per-patient sampling and scores)."""
    if isinstance(ds, PatientSubset):
        return ds.window_patient_numbers()
    return ds.file.window_patients(ds.split)


def patient_subset(ds: WindowDataset, patients: Sequence[str] | None, where: str = "train.patients") -> WindowDataset:
    """`ds` itself when `patients` is None, else its windows of those patients."""
    return ds if patients is None else PatientSubset(ds, patients, where)
