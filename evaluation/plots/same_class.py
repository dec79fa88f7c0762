"""Which real window to draw beside each generated one (`generate.py --plot`, the eval report's grid).

A generated window from a class CSV has the classes the CSV asked for in its `columns` and the other label
columns drawn like the training windows (dataloader/class_csv.py: RequestPlan), so a real window with the
very same label row may not exist among the test patients even when many have the requested class. The
pick therefore falls back in steps: the same whole label row, else the same requested columns, else any
real window. The panel titles then say what each real window is (its own labels) and which fallback found
it, so a window of another class is never shown under the synthetic one's labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

SAME_ROW, SAME_REQUEST, OTHER = "same labels", "same requested classes", "other class"


@dataclass(frozen=True)
class RealPicks:
    """index: (M,) int64 rows of the real labels (-1: there are no real windows at all);
    how: (M,) one of SAME_ROW, SAME_REQUEST, OTHER (or "" where index is -1)."""
    index: np.ndarray
    how: list[str]

    def same_class(self) -> np.ndarray:
        """(M,) bool: the real window shares the requested classes (or the whole row)."""
        return np.array([h in (SAME_ROW, SAME_REQUEST) for h in self.how], dtype=bool)


def pick_real(real_labels: np.ndarray, rows: np.ndarray, columns: Optional[Sequence[int]], seed: int) -> RealPicks:
    """For each generated label row (rows (M, n)) one real window (real_labels (N, n)), seeded.

    `columns`: the label columns that were requested (a class CSV's), None when every column was (a
    `--samples N` draw: then the only fallback after the whole row is any window). One draw of the seeded
    generator per row, from the first non-empty pool of: same row, same requested columns, every window.
    """
    rows = np.asarray(rows, np.int64)
    real_labels = np.asarray(real_labels, np.int64).reshape(-1, rows.shape[1])
    rng = np.random.default_rng(seed)
    index, how = np.full(len(rows), -1, np.int64), []
    for r, row in enumerate(rows):
        pools = [(SAME_ROW, (real_labels == row).all(axis=1))]
        if columns is not None and len(columns) < real_labels.shape[1]:
            cols = [int(c) for c in columns]
            pools.append((SAME_REQUEST, (real_labels[:, cols] == row[cols]).all(axis=1)))
        pools.append((OTHER, np.ones(len(real_labels), bool)))
        for name, ok in pools:
            pool = np.flatnonzero(ok)
            if len(pool):
                index[r] = int(rng.choice(pool))
                how.append(name)
                break
        else:
            how.append("")
    return RealPicks(index, how)


def real_titles(picks: RealPicks, real_labels: np.ndarray, text: Callable[[Sequence[int]], str]) -> list[str]:
    """Panel titles of the real column: each real window's own labels, and the fallback that found it
    when it is not the whole row ("same requested classes: ...", "other class (no real window of the
    requested class): ...")."""
    out = []
    for i, how in zip(picks.index.tolist(), picks.how):
        own = text(np.asarray(real_labels)[i].tolist()) if i >= 0 else "none"
        if how == SAME_REQUEST:
            own = f"{SAME_REQUEST}: {own}"
        elif how == OTHER:
            own = f"{OTHER} (no real window of the requested class): {own}"
        out.append(own)
    return out

