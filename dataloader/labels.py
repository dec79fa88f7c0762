"""Labels: raw values (a CSV cell, or WFDB beat annotations) -> integer class codes per `LabelSpec`.

Categorical: `categories` is a list of values (class name = the value as text) or a mapping
class name -> values. Cells are stripped; when both the cell and a listed value read as numbers they are
compared as numbers (category "1" matches 1 and 1.0), otherwise as text, exactly or by prefix
(`match: prefix`). The first matching class wins. A value that matches no class is an error.
Bins: `edges` e_1 < ... < e_k give k+1 classes "<e_1", "[e_1,e_2)", ..., ">=e_k" (`right: true`:
"<=e_1", "(e_1,e_2]", ..., ">e_k").
Missing values (empty, NA, NaN, null, none) get their own last class "missing" (`on_missing: class`)
or drop the patient (CSV) or the window (annotation) (`on_missing: drop`).

Annotation labels (`source: annotation`) are per window: the first class, in `categories` order, with
at least one of its symbols inside the window (list severe classes first). Symbols not listed in any
class (rhythm changes "+", noise "~", ...) are ignored; a window without any listed symbol is missing.
"""
from __future__ import annotations

import csv
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .config.data_schema import LabelSpec
from .errors import UserError

MISSING_CLASS = "missing"
_MISSING_TEXT = {"", "na", "nan", "n/a", "null", "none"}


def _num(v: Any) -> Optional[float]:
    """A number from a YAML value or a stripped cell, or None when it is text."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_value(v: Any) -> str:
    """A listed value as class-name text: 1 and 1.0 -> "1", 7.05 -> "7.05", text unchanged."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def is_missing(cell: Optional[str]) -> bool:
    return cell is None or cell.strip().lower() in _MISSING_TEXT


@dataclass
class LabelCoder:
    """One label column compiled from its `LabelSpec`: raw value -> class code."""

    name: str                                   # label name (LabelSpec.key)
    column: str                                 # CSV column, or the annotation kind
    kind: str                                   # "categorical" or "bins"
    source: str                                 # "csv" or "annotation"
    classes: list[str]                          # class names by code; "missing" last when on_missing: class
    missing_code: Optional[int]                 # code of the "missing" class; None = missing drops
    match: str = "exact"                        # categorical text match: "exact" or "prefix"
    values: list[list[Union[str, float]]] = field(default_factory=list)  # categorical: raw values per class
    edges: list[float] = field(default_factory=list)  # bins: ascending edges
    right: bool = False                         # bins: (a, b] instead of [a, b)
    channel: Optional[str] = None               # heart_rate: the channel the rate is measured on
    method: Optional[str] = None                # heart_rate: dataloader.heart_rate.METHODS name

    def _matches(self, cell: str, cell_num: Optional[float], v: Union[str, float]) -> bool:
        vn = _num(v)
        if cell_num is not None and vn is not None:
            return cell_num == vn
        text = fmt_value(v)
        return cell == text if self.match == "exact" else cell.startswith(text)

    def bin_code(self, value: float) -> int:
        """The bin of a number (bins only)."""
        return (bisect_left if self.right else bisect_right)(self.edges, value)

    def encode(self, cell: Optional[str], where: str) -> Optional[int]:
        """Raw value -> code; None when missing and `on_missing: drop`. Bad values raise UserError(where)."""
        if is_missing(cell):
            return self.missing_code
        assert cell is not None
        s = cell.strip()
        sn = _num(s)
        if self.kind == "bins":
            if sn is None:
                raise UserError(where, f"column {self.column!r}: {s!r} is not a number (bins need numbers)")
            return self.bin_code(sn)
        for code, vals in enumerate(self.values):
            if any(self._matches(s, sn, v) for v in vals):
                return code
        declared = [fmt_value(v) for vals in self.values for v in vals]
        raise UserError(where, f"column {self.column!r}: value {s!r} is not one of the declared categories "
                               f"{declared}" + (" (prefix match)" if self.match == "prefix" else ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description stored in the prepared file and the model (class names travel along)."""
        d: dict[str, Any] = {"name": self.name, "column": self.column, "kind": self.kind, "source": self.source,
                             "classes": list(self.classes), "missing_code": self.missing_code}
        if self.kind == "bins":
            d.update(edges=list(self.edges), right=self.right)
            if self.source == "heart_rate":
                d.update(channel=self.channel, method=self.method)
        else:
            d.update(match=self.match, values=[[fmt_value(v) for v in vals] for vals in self.values])
        return d


def bin_names(edges: list[float], right: bool = False) -> list[str]:
    """Default class names for bins: "<7.05", "[7.05,7.15)", ">=7.15" (right: "<=", "(a,b]", ">")."""
    e = [fmt_value(float(x)) for x in edges]
    if right:
        return [f"<={e[0]}"] + [f"({a},{b}]" for a, b in zip(e, e[1:])] + [f">{e[-1]}"]
    return [f"<{e[0]}"] + [f"[{a},{b})" for a, b in zip(e, e[1:])] + [f">={e[-1]}"]


def build_coder(spec: LabelSpec) -> LabelCoder:
    """Compile one LabelSpec (already validated by the config schema)."""
    if spec.kind == "bins":
        edges = [float(x) for x in spec.edges or []]
        classes = list(spec.class_names) if spec.class_names else bin_names(edges, spec.right)
        values: list[list[Union[str, float]]] = []
    else:
        cats = spec.categories or []
        if isinstance(cats, dict):
            classes = [str(k) for k in cats]
            values = [list(v) for v in cats.values()]
        else:
            classes = [fmt_value(v) for v in cats]
            values = [[v] for v in cats]
        edges = []
    if len(set(classes)) != len(classes):
        raise UserError(f"data.label_columns ({spec.key})", f"class names must be unique (got {classes})")
    missing_code = None
    if spec.on_missing == "class":
        if MISSING_CLASS in classes:
            raise UserError(f"data.label_columns ({spec.key})", f"{MISSING_CLASS!r} is reserved for missing values")
        classes = classes + [MISSING_CLASS]
        missing_code = len(classes) - 1
    return LabelCoder(name=spec.key, column=spec.column, kind=spec.kind, source=spec.source, classes=classes,
                      missing_code=missing_code, match=spec.match, values=values, edges=edges, right=spec.right,
                      channel=spec.channel, method=spec.method)


def build_coders(specs: list[LabelSpec]) -> list[LabelCoder]:
    return [build_coder(s) for s in specs]


def read_labels_csv(path: str, id_column: str, coders: list[LabelCoder]) -> dict[str, list[Optional[int]]]:
    """Labels CSV -> {patient id: [code or None (missing, drop) per CSV-source coder]}.

    Only coders with `source == "csv"` are read (in their order). Every row is checked, also rows of
    patients without a recording, so that a bad file is found at once. Rows are 1-based lines as in
    an editor (header = 1; a quoted value with line breaks spans several lines).
    """
    csv_coders = [c for c in coders if c.source == "csv"]
    p = Path(path)
    if not p.is_file():
        raise UserError(path, "labels file not found (data.labels)")
    out: dict[str, list[Optional[int]]] = {}
    first_row: dict[str, int] = {}
    with open(p, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise UserError(path, "empty labels file (expected a header row)") from None
        if id_column not in header:
            raise UserError(f"{path}:1", f"no id column {id_column!r} (data.id_column); header has {header}")
        cols = []
        for c in csv_coders:
            if c.column not in header:
                raise UserError(f"{path}:1", f"no label column {c.column!r}; header has {header}")
            cols.append(header.index(c.column))
        id_i = header.index(id_column)
        line = reader.line_num
        for row in reader:
            start, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}:{start}"
            if len(row) != len(header):
                raise UserError(where, f"row has {len(row)} fields (expected {len(header)} as in the header)")
            pid = row[id_i].strip()
            if not pid:
                raise UserError(where, f"empty patient id in column {id_column!r}")
            if pid in out:
                raise UserError(where, f"patient {pid!r} appears twice (first at row {first_row[pid]})")
            first_row[pid] = start
            out[pid] = [c.encode(row[i], where) for c, i in zip(csv_coders, cols)]
    return out


def annotation_codes(coder: LabelCoder, ann_samples: np.ndarray, ann_symbols: np.ndarray,
                     starts: np.ndarray, length: int) -> np.ndarray:
    """Per-window codes from beat annotations. ann_samples (A,) at the windows' rate, ann_symbols (A,),
    starts (W,) window starts in the same sample axis. Returns (W,) int64; -1 = no class and drop."""
    starts = np.asarray(starts, dtype=np.int64)
    fill = -1 if coder.missing_code is None else coder.missing_code
    codes = np.full(len(starts), fill, dtype=np.int64)
    undecided = np.ones(len(starts), dtype=bool)
    sym = np.asarray([str(s) for s in ann_symbols], dtype=object)
    for code, vals in enumerate(coder.values):
        pos = np.sort(ann_samples[np.isin(sym, [fmt_value(v) for v in vals])])
        hit = (np.searchsorted(pos, starts + length, side="left") - np.searchsorted(pos, starts, side="left")) > 0
        take = hit & undecided
        codes[take] = code
        undecided &= ~take
    return codes


def rate_codes(coder: LabelCoder, rates: np.ndarray) -> np.ndarray:
    """Per-window codes of a heart-rate label from the measured rates (W,) in bpm (NaN = not measurable:
    the missing class, or -1 = drop the window). Returns (W,) int64."""
    fill = -1 if coder.missing_code is None else coder.missing_code
    return np.array([fill if not np.isfinite(r) else coder.bin_code(float(r)) for r in np.asarray(rates)],
                    dtype=np.int64)
