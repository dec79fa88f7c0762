"""Read generated files (dataloader/synthetic.py) for evaluation and check them against the real data.

Every check runs before any score, so bad input ends with one line and no partial report:
- the file must have the real data's channels (names and units, in order), sampling rate and window length;
- the label metrics need the file's labels for every evaluated label column, with the same class names;
- each requested metric needs a minimum number of windows (evaluation/metrics/__init__.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataloader.errors import UserError
from dataloader.prepared import PreparedFile
from dataloader.synthetic import read_synthetic

from .metrics import LABEL_METRICS, check_counts


@dataclass
class SynthSet:
    """One generated file: x `(N, C, L)` float32 physical units, labels {label name: (N,) codes} for the
    evaluated label columns it has, its attributes (sampler, steps, ...)."""

    path: str
    x: np.ndarray
    labels: dict[str, np.ndarray]
    attrs: dict[str, Any]

    @property
    def name(self) -> str:
        return Path(self.path).name


def _describe(chs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{c.get('name')} ({c.get('unit', '')})" for c in chs)


def load_synthetic(path: str, pf: PreparedFile, labels: list[str], metrics: list[str],
                   n_max: int | None) -> SynthSet:
    """Read `path`, keep its first `n_max` windows, check it against `pf` (see module docstring)."""
    x, y, attrs = read_synthetic(path)
    if n_max is not None:
        x, y = x[:n_max], y[:n_max]
    chs = attrs.get("channels") or []
    real = [(c["name"], str(c.get("unit", ""))) for c in pf.channels]
    mine = [(c.get("name"), str(c.get("unit", ""))) for c in chs]
    if mine != real:
        raise UserError(path, f"channels {_describe(chs)} differ from the real data's {_describe(pf.channels)}")
    fs = float(attrs.get("fs", float("nan")))
    if not np.isclose(fs, pf.fs, rtol=1e-9, atol=0):
        raise UserError(path, f"sampling rate {fs:g} Hz differs from the real data's {pf.fs:g} Hz")
    if x.shape[2] != pf.window_len:
        raise UserError(path, f"window length {x.shape[2]} samples differs from the real data's {pf.window_len}")
    if not np.isfinite(x).all():
        raise UserError(path, "samples contain NaN or inf")
    check_counts(metrics, len(x), path)
    spec = {s["name"]: (j, list(s["classes"])) for j, s in enumerate(attrs.get("label_spec") or [])}
    wanted = [m for m in metrics if m in LABEL_METRICS]
    out: dict[str, np.ndarray] = {}
    for lab in labels:
        real_classes = list(pf.label_spec[pf.label_names.index(lab)]["classes"])
        if lab not in spec or y.ndim != 2 or y.shape[1] <= spec[lab][0]:
            if wanted:
                raise UserError(path, f"has no labels for {lab!r}, which the metrics {', '.join(wanted)} need "
                                      f"(leave them out with --metrics, or generate with labels)")
            continue
        j, classes = spec[lab]
        if classes != real_classes:
            raise UserError(path, f"label {lab!r} has classes {classes}, the real data {real_classes}")
        codes = y[:, j]
        if len(codes) and (codes == -1).all():  # an unconditional generator's "no class" (baselines/generation.py)
            if wanted:
                raise UserError(path, f"comes from an unconditional generator (label {lab!r} is -1, no class); "
                                      f"leave out {', '.join(wanted)} with --metrics")
            continue
        if len(codes) and (codes.min() < 0 or codes.max() >= len(classes)):
            raise UserError(path, f"label {lab!r} has codes outside 0..{len(classes) - 1}")
        out[lab] = codes.astype(np.int64)
    if wanted and not labels:
        raise UserError("--metrics", f"{', '.join(wanted)} need label columns, and the real data has none")
    return SynthSet(str(path), x, out, attrs)
