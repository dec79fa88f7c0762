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
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UserError


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


def read_class_csv(path: str | Path, label_names: Sequence[str],
                   class_names: Sequence[Sequence[str]]) -> tuple[list[int], list[tuple[list[int], int]]]:
    """Parse a class CSV against the model's labels.

    Returns `(columns, rows)`: `columns` are indices into `label_names` (in the CSV's order), `rows` are
    `(codes, count)` with one code per listed column. Raises `UserError` naming `file:row`.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(str(path), "class CSV not found")
    with open(p, newline="") as f:
        lines = [(i + 1, r) for i, r in enumerate(csv.reader(f))
                 if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not lines:
        raise UserError(str(path), "class CSV is empty (expected a header and rows)")
    head_line, header = lines[0]
    header = [h.strip() for h in header]
    if header[-1] != "count":
        raise UserError(f"{path}:{head_line}", f"the last column must be 'count' (got {header[-1]!r})")
    names = header[:-1]
    for n in names:
        if n not in label_names:
            raise UserError(f"{path}:{head_line}", f"unknown label column {n!r} "
                                                    f"(valid: {', '.join(label_names) or 'none'}, then count)")
    if len(set(names)) != len(names):
        raise UserError(f"{path}:{head_line}", f"a label column appears twice ({names})")
    columns = [list(label_names).index(n) for n in names]
    rows: list[tuple[list[int], int]] = []
    for line, r in lines[1:]:
        where = f"{path}:{line}"
        if len(r) != len(header):
            raise UserError(where, f"expected {len(header)} cells ({', '.join(header)}) (got {len(r)})")
        codes = [parse_code(cell, class_names[c], where, label_names[c]) for cell, c in zip(r, columns)]
        text = r[-1].strip()
        try:
            count = int(text)
        except ValueError:
            raise UserError(where, f"count must be a non-negative integer (got {text!r})") from None
        if count < 0:
            raise UserError(where, f"count must be a non-negative integer (got {count})")
        rows.append((codes, count))
    if sum(c for _, c in rows) == 0:
        raise UserError(str(path), "the counts add up to 0 (expected at least one window)")
    return columns, rows


def _check_counts(label_counts: np.ndarray, n_labels: int) -> np.ndarray:
    counts = np.asarray(label_counts, dtype=np.int64).reshape(-1, n_labels + 1)
    if len(counts) == 0 or counts[:, -1].sum() <= 0:
        raise UserError("model file", "it holds no training label distribution (label_counts)")
    return counts


def labels_like_training(n: int, label_counts: np.ndarray, n_labels: int, seed: int) -> np.ndarray:
    """`n` label rows drawn from the training windows' joint label distribution.

    `label_counts`: (K, n_labels + 1) unique label rows with their window counts in the last column.
    Returns (n, n_labels) int64. The same seed gives the same rows.
    """
    if n_labels == 0:
        return np.zeros((n, 0), np.int64)
    counts = _check_counts(label_counts, n_labels)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(counts), size=n, p=counts[:, -1] / counts[:, -1].sum())
    return counts[pick, :-1].copy()


def labels_from_requests(columns: Sequence[int], rows: Sequence[tuple[Sequence[int], int]],
                         label_counts: np.ndarray, n_labels: int, seed: int,
                         where: str = "class CSV") -> np.ndarray:
    """Expand class-CSV rows to (N, n_labels) int64 label rows, in CSV order.

    Columns the CSV does not give are drawn from the training rows that match the given ones (weighted by
    their window counts); if no training window matches, each missing column is drawn from its marginal.
    """
    missing = [j for j in range(n_labels) if j not in columns]
    counts = _check_counts(label_counts, n_labels) if missing else None
    rng = np.random.default_rng(seed)
    out = []
    for codes, count in rows:
        block = np.zeros((count, n_labels), np.int64)
        block[:, list(columns)] = np.asarray(codes, np.int64)
        if missing and count:
            assert counts is not None
            match = np.all(counts[:, list(columns)] == np.asarray(codes), axis=1) if columns else \
                np.ones(len(counts), bool)
            pool = counts[match] if match.any() else counts
            w = pool[:, -1] / pool[:, -1].sum()
            if match.any():
                pick = rng.choice(len(pool), size=count, p=w)
                block[:, missing] = pool[pick][:, missing]
            else:  # a combination never seen in training: each missing column from its marginal
                for j in missing:
                    block[:, j] = rng.choice(pool[:, j], size=count, p=w)
        out.append(block)
    return np.concatenate(out) if out else np.zeros((0, n_labels), np.int64)


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
