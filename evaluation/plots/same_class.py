"""Which real window to draw beside each generated one (`generate.py --plot`, the eval report's grid).

A generated window from a class CSV has the classes the CSV asked for in its `columns` and the other label
columns drawn like the training windows (dataloader/class_csv.py: RequestPlan), so a real window with the
very same label row may not exist among the test patients even when many have the requested class, and a
requested class may be missing from the test patients altogether (CTU-UHB's 36 test patients have no
caesarean with 7.05 <= pH < 7.15). The pick therefore falls back in steps, over the real sources in order
(the test split first, then the other held-out split, then the training split): the same whole label row,
else the same requested columns; only when no source has the class, any window of the first source. The
panel titles say what each real window is (its own labels, its source when not the first, and the
fallback that found it), so a window of another class is never shown under the synthetic one's labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

SAME_ROW, SAME_REQUEST, OTHER = "same labels", "same requested classes", "other class"


@dataclass(frozen=True)
class RealPicks:
    """source: (M,) int64 which real label array each pick is from; index: (M,) int64 its row there (-1: there
    are no real windows at all); how: (M,) one of SAME_ROW, SAME_REQUEST, OTHER ("" where index is -1)."""
    source: np.ndarray
    index: np.ndarray
    how: list[str]

    def same_class(self) -> np.ndarray:
        """(M,) bool: the real window shares the requested classes (or the whole row)."""
        return np.array([h in (SAME_ROW, SAME_REQUEST) for h in self.how], dtype=bool)


def _pools(sources: list[np.ndarray], row: np.ndarray, cols: Optional[list[int]]) -> list[tuple[int, str, np.ndarray]]:
    """(source, fallback, bool mask) in the order they are tried for one generated label row."""
    out = []
    for s, lab in enumerate(sources):
        out.append((s, SAME_ROW, (lab == row).all(axis=1)))
        if cols is not None:
            out.append((s, SAME_REQUEST, (lab[:, cols] == row[cols]).all(axis=1)))
    return out + [(0, OTHER, np.ones(len(sources[0]), bool))]


def pick_real(real_labels: np.ndarray | Sequence[np.ndarray], rows: np.ndarray, columns: Optional[Sequence[int]],
              seed: int) -> RealPicks:
    """For each generated label row (rows (M, n)) one real window, seeded.

    real_labels: (N, n) label codes of the real windows, or a sequence of such arrays (sources in order of
    preference). `columns`: the label columns that were requested (a class CSV's), None when every column
    was (`--samples N`: then the only fallback after the whole row is any window). One draw of the seeded
    generator per row, from the first non-empty pool of `_pools`.
    """
    rows = np.asarray(rows, np.int64)
    many = not isinstance(real_labels, np.ndarray)
    sources = [np.asarray(r, np.int64).reshape(-1, rows.shape[1]) for r in (real_labels if many else [real_labels])]
    cols = [int(c) for c in columns] if columns is not None and len(columns) < rows.shape[1] else None
    rng = np.random.default_rng(seed)
    source, index, how = np.zeros(len(rows), np.int64), np.full(len(rows), -1, np.int64), []
    for r, row in enumerate(rows):
        for s, name, ok in _pools(sources, row, cols):
            pool = np.flatnonzero(ok)
            if len(pool):
                source[r], index[r] = s, int(rng.choice(pool))
                how.append(name)
                break
        else:
            how.append("")
    return RealPicks(source, index, how)


def real_titles(picks: RealPicks, real_labels: np.ndarray | Sequence[np.ndarray], text: Callable[[Sequence[int]], str],
                source_names: Sequence[str] = ()) -> list[str]:
    """Panel titles of the real column: each real window's own labels, prefixed by its source's name when it
    is not the first source ("val: ...") and by the fallback that found it when it is not the whole row
    ("same requested classes: ...", "other class (no real window of the requested class): ...")."""
    sources = [real_labels] if isinstance(real_labels, np.ndarray) else list(real_labels)
    out = []
    for s, i, how in zip(picks.source.tolist(), picks.index.tolist(), picks.how):
        own = text(np.asarray(sources[s])[i].tolist()) if i >= 0 else "none"
        if how == SAME_REQUEST:
            own = f"{SAME_REQUEST}: {own}"
        elif how == OTHER:
            own = f"{OTHER} (no real window of the requested class): {own}"
        if s > 0 and s < len(source_names):
            own = f"{source_names[s]}: {own}"
        out.append(own)
    return out
