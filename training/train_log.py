"""The training log `out_dir/log.csv`: one row per epoch, appended and flushed as it happens.

Columns: step, epoch, train_loss, val_loss, lr, windows_per_s, elapsed_s. Rows are appended, flushed and
fsync'ed, so an interrupted run keeps every finished row. A resumed run first drops the rows written
after its checkpoint (they belong to the steps it is about to redo), rewriting the file atomically.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any, Optional

from dataloader.atomic import atomic_path

COLUMNS = ("step", "epoch", "train_loss", "val_loss", "lr", "windows_per_s", "elapsed_s")


class TrainLog:
    """Append rows to `path` (main process only)."""

    def __init__(self, path: str | Path, resume_step: Optional[int] = None,
                 columns: tuple[str, ...] = COLUMNS) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)  # the first-stage loop logs other columns (reconstruction error per channel)
        if resume_step is None or not self.path.is_file():
            with atomic_path(self.path, "train.out_dir") as tmp:
                tmp.write_text(",".join(self.columns) + "\n")
        else:
            self._truncate_after(resume_step)

    def _truncate_after(self, step: int) -> None:
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        keep = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
        with atomic_path(self.path, "train.out_dir") as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            w.writerows(keep)

    def append(self, **row: Any) -> None:
        """Write one row; floats get 6 significant digits, NaN/None become empty cells."""
        def fmt(v: Any) -> str:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return ""
            return f"{v:.6g}" if isinstance(v, float) else str(v)

        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([fmt(row.get(c)) for c in self.columns])
            f.flush()
            os.fsync(f.fileno())


def read_log(path: str | Path) -> list[dict[str, str]]:
    """The log's rows as dicts (for tests and reports)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
