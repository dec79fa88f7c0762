"""Which labels to generate: a class CSV (`--samples classes.csv`) or N draws like the training data.

A class CSV names label columns in its header (a subset of the model's label names, in any order) and
ends with a `count` column; each row asks for `count` windows of that class combination:

    pH,delivery,count
    pH<7.05,caesarean,8
    2,vaginal,24

(codes work too: 2 is the third class of pH; lines starting with `#` are comments).

A cell is a class name or an integer code; a class name wins when a name looks like a code (the CTG
`sex` classes are named "1" and "2"). Label columns the CSV leaves out are drawn, per window, from the
training windows that match the given columns (their joint distribution), so that e.g. sex stays
realistic for a pH class. The training distribution travels in the model file as `label_counts`
(unique label rows and their window counts), so generation needs no real data.

No label array is built up front: a `LabelPlan` makes the rows of any range [start, stop) on demand, each
row from (seed, row index) only, so generation memory does not grow with N, and the rows do not depend
on the batch size. A request is bounded: at most MAX_WINDOWS windows in one file and MAX_CSV_ROWS rows
in one class CSV (refused with the row that passes the limit).
"""
from __future__ import annotations

import abc
import csv
import hashlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import UserError

# Sizes a request may have; a larger one is refused before any work (memory and time stay bounded).
MAX_WINDOWS = 1_000_000   # windows in one generated file (--samples N, or a class CSV's counts in all)
MAX_CSV_ROWS = 100_000    # request rows in one class CSV


def parse_code(cell: str, classes: Sequence[str], where: str, column: str) -> int:
    """One CSV cell -> class code of `column` (a class name, or an integer code in range)."""
    text = cell.strip()
    if text in classes:
        return list(classes).index(text)
    try:
        code = int(text)
    except ValueError:
        code = -1
    if 0 <= code < len(classes) and str(code) == text:
        return code
    valid = ", ".join(f"{i}={c!r}" for i, c in enumerate(classes))
    raise UserError(where, f"unknown class {text!r} for {column!r} (expected a class name or code: {valid})")


def _read_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of every non-empty, non-comment CSV record, read lazily (a huge file is never held)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        while True:
            try:
                r = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as e:
                raise UserError(f"{path}:{reader.line_num + 1}", f"not a readable CSV row ({e})") from None
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#"):
                yield reader.line_num, r


def _parse_count(text: str, where: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise UserError(where, f"count must be a non-negative integer (got {text!r})") from None
    if count < 0:
        raise UserError(where, f"count must be a non-negative integer (got {count})")
    return count


def read_class_csv(path: str | Path, label_names: Sequence[str],
                   class_names: Sequence[Sequence[str]]) -> tuple[list[int], list[tuple[list[int], int]]]:
    """Parse a class CSV against the model's labels.

    Returns `(columns, rows)`: `columns` are indices into `label_names` (in the CSV's order), `rows` are
    `(codes, count)` with one code per listed column. At most MAX_CSV_ROWS rows asking for at most
    MAX_WINDOWS windows in all: reading stops at the first row past either limit. Raises `UserError`
    naming `file:row`.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(str(path), "class CSV not found")
    try:
        it = _read_rows(p)
        head_line, header = next(it, (0, []))
        if not header:
            raise UserError(str(path), "class CSV is empty (expected a header and rows)")
        columns = _parse_header(f"{path}:{head_line}", [h.strip() for h in header], label_names)
        rows: list[tuple[list[int], int]] = []
        total = 0
        for line, r in it:
            where = f"{path}:{line}"
            if len(rows) == MAX_CSV_ROWS:
                raise UserError(where, f"more than {MAX_CSV_ROWS:,} class rows (the most a class CSV may hold; "
                                       "merge rows of the same classes or split the file)")
            if len(r) != len(header):
                raise UserError(where, f"expected {len(header)} cells ({', '.join(h.strip() for h in header)}) "
                                       f"(got {len(r)})")
            codes = [parse_code(cell, class_names[c], where, label_names[c]) for cell, c in zip(r, columns)]
            count = _parse_count(r[-1].strip(), where)
            total += count
            if total > MAX_WINDOWS:
                raise UserError(where, f"the counts add up to {total:,} windows by this row; one file holds at "
                                       f"most {MAX_WINDOWS:,} (split the request into several files)")
            rows.append((codes, count))
    except OSError as e:
        raise UserError(str(path), f"cannot read class CSV ({e.strerror or e})") from None
    if total == 0:
        raise UserError(str(path), "the counts add up to 0 (expected at least one window)")
    return columns, rows


def _parse_header(where: str, header: list[str], label_names: Sequence[str]) -> list[int]:
    """Header cells -> indices into `label_names` of the label columns (the last cell must be `count`)."""
    if header[-1] != "count":
        raise UserError(where, f"the last column must be 'count' (got {header[-1]!r})")
    names = header[:-1]
    for n in names:
        if n not in label_names:
            raise UserError(where, f"unknown label column {n!r} "
                                   f"(valid: {', '.join(label_names) or 'none'}, then count)")
    if len(set(names)) != len(names):
        raise UserError(where, f"a label column appears twice ({names})")
    return [list(label_names).index(n) for n in names]


def _check_counts(label_counts: np.ndarray, n_labels: int) -> np.ndarray:
    counts = np.asarray(label_counts, dtype=np.int64).reshape(-1, n_labels + 1)
    if len(counts) == 0 or counts[:, -1].sum() <= 0:
        raise UserError("model file", "it holds no training label distribution (label_counts)")
    return counts


# Draws for label columns come in fixed blocks of rows, each from a generator keyed on (seed, stream, block):
# row i's draw depends on (seed, i) only, never on which rows a batch asks for, and a batch costs O(batch size).
_BLOCK = 1024


def _uniforms(seed: int, stream: int, start: int, stop: int, k: int) -> np.ndarray:
    """(stop - start, k) float64 uniforms in [0, 1); row i depends only on (seed, stream, i)."""
    if stop <= start:
        return np.zeros((0, k))
    first, last = start // _BLOCK, (stop - 1) // _BLOCK
    u = np.concatenate([np.random.default_rng([seed, stream, b]).random((_BLOCK, k))
                        for b in range(first, last + 1)])
    off = start - first * _BLOCK
    return u[off: off + stop - start]


def _pick(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn with probability proportional to `weights` (K,), one per uniform in `u` (B,)."""
    cdf = np.cumsum(weights, dtype=np.float64)
    return np.minimum(np.searchsorted(cdf / cdf[-1], u, side="right"), len(weights) - 1)


class LabelPlan(abc.ABC):
    """The label rows of a generation run, made on demand so that memory does not grow with N.

    `rows(start, stop)` -> (stop - start, n_labels) int64 codes of windows start .. stop - 1; the same
    plan always gives the same rows, whatever ranges they are asked in. `definition()` is JSON data that
    identifies the plan (a continued run must have the same one).
    """

    n: int
    n_labels: int

    def __len__(self) -> int:
        return self.n

    @abc.abstractmethod
    def rows(self, start: int, stop: int) -> np.ndarray:
        """Label rows [start, stop) as (stop - start, n_labels) int64."""

    @abc.abstractmethod
    def definition(self) -> dict[str, Any]:
        """JSON-able data that determines every row."""

    def _range(self, start: int, stop: int) -> tuple[int, int]:
        if not 0 <= start <= stop <= self.n:
            raise IndexError(f"rows [{start}, {stop}) outside the plan's {self.n}")
        return start, stop


class ArrayPlan(LabelPlan):
    """Rows given as an (N, n_labels) array (stand-in files of real windows, tests)."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = np.asarray(labels, np.int64).reshape(len(labels), -1)
        self.n, self.n_labels = self.labels.shape

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._range(start, stop)
        return self.labels[start:stop].copy()

    def definition(self) -> dict[str, Any]:
        return {"kind": "array", "shape": list(self.labels.shape),
                "sha256": hashlib.sha256(np.ascontiguousarray(self.labels).tobytes()).hexdigest()}


class ConstantPlan(LabelPlan):
    """`n` rows of one code in every column (-1 = no class: unconditional baselines)."""

    def __init__(self, n: int, n_labels: int, code: int = -1) -> None:
        self.n, self.n_labels, self.code = int(n), int(n_labels), int(code)

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._range(start, stop)
        return np.full((stop - start, self.n_labels), self.code, np.int64)

    def definition(self) -> dict[str, Any]:
        return {"kind": "constant", "n": self.n, "n_labels": self.n_labels, "code": self.code}


class TrainingPlan(LabelPlan):
    """`n` rows drawn from the training windows' joint label distribution.

    `label_counts`: (K, n_labels + 1) unique label rows with their window counts in the last column.
    """

    def __init__(self, n: int, label_counts: np.ndarray, n_labels: int, seed: int) -> None:
        self.n, self.n_labels, self.seed = int(n), int(n_labels), int(seed)
        self.counts = _check_counts(label_counts, n_labels) if n_labels else np.zeros((0, 1), np.int64)

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._range(start, stop)
        if self.n_labels == 0:
            return np.zeros((stop - start, 0), np.int64)
        pick = _pick(self.counts[:, -1], _uniforms(self.seed, 0, start, stop, 1)[:, 0])
        return self.counts[pick, :-1].copy()

    def definition(self) -> dict[str, Any]:
        return {"kind": "training", "n": self.n, "n_labels": self.n_labels, "seed": self.seed,
                "label_counts": self.counts.tolist()}


class RequestPlan(LabelPlan):
    """Class-CSV rows expanded in CSV order: request r gives windows cum[r - 1] .. cum[r] - 1.

    Columns the CSV does not give are drawn per window from the training rows that match the given ones
    (weighted by their window counts); if no training window matches, each missing column is drawn from
    its marginal.
    """

    def __init__(self, columns: Sequence[int], requests: Sequence[tuple[Sequence[int], int]],
                 label_counts: np.ndarray, n_labels: int, seed: int) -> None:
        self.columns, self.n_labels, self.seed = [int(c) for c in columns], int(n_labels), int(seed)
        self.missing = [j for j in range(n_labels) if j not in self.columns]
        self.codes = np.array([list(c) for c, _ in requests], np.int64).reshape(len(requests), len(self.columns))
        self.cum = np.cumsum([int(n) for _, n in requests], dtype=np.int64)
        self.n = int(self.cum[-1]) if len(self.cum) else 0
        self.counts = _check_counts(label_counts, n_labels) if self.missing else np.zeros((0, n_labels + 1), np.int64)

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._range(start, stop)
        req = np.searchsorted(self.cum, np.arange(start, stop), side="right")   # (B,) request of each window
        out = np.zeros((stop - start, self.n_labels), np.int64)
        out[:, self.columns] = self.codes[req]
        if self.missing and stop > start:
            u = _uniforms(self.seed, 1, start, stop, len(self.missing))
            for r in np.unique(req):
                self._draw_missing(out, req == r, self.codes[r], u)
        return out

    def _draw_missing(self, out: np.ndarray, sel: np.ndarray, codes: np.ndarray, u: np.ndarray) -> None:
        counts, miss = self.counts, self.missing
        match = np.all(counts[:, self.columns] == codes, axis=1) & (counts[:, -1] > 0)
        if match.any():   # the given classes' joint distribution of the missing columns
            pool = counts[match]
            out[np.ix_(sel, miss)] = pool[_pick(pool[:, -1], u[sel, 0])][:, miss]
        else:             # a combination never seen in training: each missing column from its marginal
            for m, j in enumerate(miss):
                out[sel, j] = counts[_pick(counts[:, -1], u[sel, m]), j]

    def definition(self) -> dict[str, Any]:
        return {"kind": "requests", "n": self.n, "n_labels": self.n_labels, "seed": self.seed,
                "columns": self.columns, "codes": self.codes.tolist(), "cum": self.cum.tolist(),
                "label_counts": self.counts.tolist()}


def as_plan(labels: "LabelPlan | np.ndarray") -> LabelPlan:
    """A plan as it is, or an (N, n_labels) array wrapped in an ArrayPlan."""
    return labels if isinstance(labels, LabelPlan) else ArrayPlan(labels)


def count_label_rows(labels: np.ndarray) -> np.ndarray:
    """(M, n_labels) label rows -> (K, n_labels + 1) unique rows with their counts (stored in the model)."""
    labels = np.asarray(labels, np.int64)
    if labels.shape[0] == 0:
        return np.zeros((0, labels.shape[1] + 1), np.int64)
    uniq, cnt = np.unique(labels, axis=0, return_counts=True)
    return np.concatenate([uniq, cnt[:, None]], axis=1).astype(np.int64)


def label_text(codes: Sequence[int], label_names: Sequence[str], class_names: Sequence[Sequence[str]]) -> str:
    """One label row as text for plot titles: "pH<7.05, delivery=caesarean" (a class name that already
    starts with its label name is shown alone)."""
    parts = []
    for code, name, classes in zip(codes, label_names, class_names):
        cls = classes[code] if 0 <= code < len(classes) else str(code)
        parts.append(cls if cls.startswith(name) else f"{name}={cls}")
    return ", ".join(parts) or "unlabelled"
