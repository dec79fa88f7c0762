"""A label schedule along a long recording (`generate.py --duration 2h --schedule schedule.csv`).

The first column, `start`, is when a row takes effect (any length of time dataloader/duration.py reads:
`0`, `60min`, `1:00:00`); the others are label columns by name, with class names or codes, as in a class
CSV (dataloader/class_csv.py, whose cell parsing this reuses):

    start,pH
    0,pH>=7.15
    60min,pH<7.05

The first row starts at 0 and starts increase. Label columns the schedule leaves out keep the recording's
own labels (from --samples). Each window of the recording takes the row in effect where its new samples
begin (diffusion/continuation.py: WindowPlan.new_start).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .class_csv import MAX_CSV_ROWS, _read_rows, parse_code
from .duration import parse_offset
from .errors import UserError


@dataclass(frozen=True)
class Schedule:
    """Label rows in effect from `starts[i]` seconds: `codes[i]` for the label columns `columns`."""

    columns: list[int]          # indices into the model's label names
    starts: list[float]         # seconds, starts[0] == 0, increasing
    codes: list[list[int]]      # (rows, len(columns)) class codes

    def definition(self) -> dict[str, Any]:
        """JSON data that identifies the schedule (enters the run key of the output)."""
        return {"columns": self.columns, "starts": self.starts, "codes": self.codes}

    def window_labels(self, base: np.ndarray, times_s: Sequence[float]) -> np.ndarray:
        """(n_windows, n_labels) int64: `base` (n_labels,) with the scheduled columns set, for windows whose
        new samples begin at `times_s` seconds."""
        out = np.repeat(np.asarray(base, np.int64).reshape(1, -1), len(times_s), axis=0)
        row = np.searchsorted(np.asarray(self.starts), np.asarray(times_s, np.float64), side="right") - 1
        out[:, self.columns] = np.asarray(self.codes, np.int64).reshape(len(self.starts), -1)[row]
        return out

    def check_within(self, duration_s: float, where: str) -> None:
        """Refuse a row that would start at or after the end of a `duration_s` recording."""
        if self.starts[-1] >= duration_s:
            raise UserError(where, f"the last row starts at {self.starts[-1]:g} s, at or after the end of the "
                                   f"{duration_s:g} s recording")


def _header(where: str, header: list[str], label_names: Sequence[str]) -> list[int]:
    if not header or header[0] != "start":
        raise UserError(where, f"the first column must be 'start' (got {header[0] if header else ''!r})")
    names = header[1:]
    if not names:
        raise UserError(where, f"expected label columns after 'start' (valid: {', '.join(label_names) or 'none'})")
    for n in names:
        if n not in label_names:
            raise UserError(where, f"unknown label column {n!r} (valid: {', '.join(label_names) or 'none'})")
    if len(set(names)) != len(names):
        raise UserError(where, f"a label column appears twice ({names})")
    return [list(label_names).index(n) for n in names]


def read_schedule_csv(path: str | Path, label_names: Sequence[str],
                      class_names: Sequence[Sequence[str]]) -> Schedule:
    """Parse a schedule CSV against the model's labels; UserError naming `file:line` for a bad row."""
    p = Path(path)
    if not p.is_file():
        raise UserError(str(path), "schedule CSV not found")
    starts: list[float] = []
    codes: list[list[int]] = []
    try:
        it = _read_rows(p)
        head_line, header = next(it, (0, []))
        header = [h.strip() for h in header]
        columns = _header(f"{path}:{head_line}", header, label_names)
        for line, r in it:
            where = f"{path}:{line}"
            if len(starts) == MAX_CSV_ROWS:
                raise UserError(where, f"more than {MAX_CSV_ROWS:,} schedule rows")
            if len(r) != len(header):
                raise UserError(where, f"expected {len(header)} cells ({', '.join(header)}) (got {len(r)})")
            t = parse_offset(r[0], where)
            if (not starts and t != 0) or (starts and t <= starts[-1]):
                raise UserError(where, "the first row must start at 0 and each later row after the one before "
                                       f"(got {r[0].strip()!r})")
            starts.append(t)
            codes.append([parse_code(cell, class_names[c], where, label_names[c]) for cell, c in zip(r[1:], columns)])
    except OSError as e:
        raise UserError(str(path), f"cannot read schedule CSV ({e.strerror or e})") from None
    if not starts:
        raise UserError(str(path), "the schedule has no rows (expected a header and at least the row at 0)")
    return Schedule(columns, starts, codes)
