"""`python -m tools.inspect` on a generated file (generate.py output, dataloader/synthetic.py): what it holds.

Reads only the attributes, the labels and the windows it plots, so a file of a million windows is summarised in
the memory of its label column.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dataloader.atomic import atomic_path
from dataloader.class_csv import label_text
from dataloader.errors import UserError
from dataloader.h5safe import open_h5
from dataloader.synthetic import FORMAT, read_attrs


def is_synthetic(path: str | os.PathLike) -> bool:
    """Whether `path` is a readable HDF5 file whose root says it is a generated-samples file."""
    try:
        with open_h5(Path(path), "r", str(path)) as h5:
            return str(getattr(h5.root._v_attrs, "format", "")) == FORMAT
    except Exception:  # not HDF5, unsafe or unreadable: the prepared-file reader gives the precise error
        return False


def describe_synthetic(path: str | os.PathLike) -> str:
    """Human-readable summary of a generated file: rate, window, channels, windows per class, how it was made."""
    with open_h5(Path(path), "r", str(path)) as h5:
        a = read_attrs(h5.root._v_attrs, str(path))
        shape = tuple(h5.root.samples.shape)  # (N, C, L)
        labels = np.asarray(h5.root.labels[:shape[0]], np.int64)
        scaled = "samples_scaled" in h5.root
    fs = float(a.get("fs", 0)) or float("nan")
    lines = [f"file         {path}",
             f"format       {a.get('format')} (synthetic windows; /samples in physical units"
             + (", /samples_scaled in [-1, 1])" if scaled else ")"),
             f"created by   physiodiff {a.get('package_version', '?')}"
             + (f" at {a['created_utc']}" if a.get("created_utc") else ""),
             f"fs           {fs:g} Hz",
             f"window       {shape[2]} samples ({shape[2] / fs:g} s)",
             f"windows      {shape[0]}",
             "channels"]
    for c in a["channels"]:
        lo, hi = (c.get("range") or [float("nan")] * 2)[:2]
        lines.append(f"  {c.get('name', '?'):<10} [{c.get('unit', '')}]  range [{lo:g}, {hi:g}]")
    lines.append("labels" if a["label_spec"] else "labels       none")
    for k, lab in enumerate(a["label_spec"]):
        counts = np.bincount(labels[:, k], minlength=len(lab["classes"])) if len(labels) else []
        desc = ", ".join(f"{c} ({n})" for c, n in zip(lab["classes"], counts))
        lines.append(f"  {lab['name']:<10} {desc}")
    eta = a.get("eta")
    lines += [f"sampler      {a.get('sampler')}, {a.get('steps')} steps, guidance {a.get('guidance_scale')}, "
              f"seed {a.get('seed')}" + (f", eta {eta:g}" if isinstance(eta, float) and eta >= 0 else ""),
              f"model        sha256 {a.get('model_sha256')}, step {a.get('model_step')}",
              "config       the `config` attribute (the configuration used; YAML text)"]
    return "\n".join(lines)


def plot_synthetic(path: str | os.PathLike, out: str, n: int, seed: int) -> list[int]:
    """Plot n random windows of a generated file to an image file (written atomically); returns their indices."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from evaluation.plots.windows import figure_size, plot_windows

    with open_h5(Path(path), "r", str(path)) as h5:
        a = read_attrs(h5.root._v_attrs, str(path))
        total = len(h5.root.samples)
        if total == 0:
            raise UserError(str(path), "has no windows to plot")
        idx = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
        x = np.stack([np.asarray(h5.root.samples[int(i)], np.float64) for i in idx])
        y = np.asarray(h5.root.labels[:total], np.int64)[idx]
    spec = a["label_spec"]
    titles = [f"synthetic #{i}  [{label_text(row, [s['name'] for s in spec], [s['classes'] for s in spec])}]"
              for i, row in zip(idx, y.tolist())]
    fs = float(a["fs"])
    fig = Figure(figsize=figure_size(len(idx), a["channels"], x.shape[-1] / fs, x=x))
    FigureCanvasAgg(fig)
    plot_windows(fig, x, fs, a["channels"], titles=titles)
    fmt = Path(out).suffix.lstrip(".").lower() or "png"
    with atomic_path(out, "--plot") as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    return [int(i) for i in idx]
