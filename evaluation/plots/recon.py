"""A PNG of original windows with their reconstructions drawn over them (first-stage training epochs).

One panel per (window, channel): the original in black, the reconstruction in red on the same axes, the
channel's unit on the y axis and its range as limits. Entry points hand `save_recon_png` to the first-stage
training loop (diffusion/ may not import evaluation/). Written under a temporary name and renamed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dataloader.atomic import atomic_path


def save_recon_png(path: str | os.PathLike, original: np.ndarray, reconstruction: np.ndarray, fs: float,
                   channels: Sequence[Any], title: str = "") -> Path:
    """Draw `original` and `reconstruction` (N, C, L), physical units, into `path`; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, r = np.asarray(original, np.float64), np.asarray(reconstruction, np.float64)
    if x.shape != r.shape or x.ndim != 3:
        raise ValueError(f"original and reconstruction must both be (N, C, L) (got {x.shape}, {r.shape})")
    n, c, length = x.shape
    t = np.arange(length) / float(fs)
    unit_t, t = ("min", t / 60) if length / fs > 300 else ("s", t)
    fig = Figure(figsize=(12, 1.6 * n * c + 0.6), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n * c, 1, squeeze=False)[:, 0]
    for i in range(n):
        for j in range(c):
            ch = channels[j]
            name = ch.get("name", f"ch{j}") if isinstance(ch, dict) else str(getattr(ch, "name", ch))
            unit = ch.get("unit", "") if isinstance(ch, dict) else str(getattr(ch, "unit", ""))
            ax = axes[i * c + j]
            ax.plot(t, x[i, j], color="black", lw=0.7, label="original")
            ax.plot(t, r[i, j], color="tab:red", lw=0.7, alpha=0.8, label="reconstruction")
            rmse = float(np.sqrt(np.mean((r[i, j] - x[i, j]) ** 2)))
            ax.set_ylabel(f"{name} ({unit})" if unit else name, fontsize=8)
            ax.set_title(f"window {i}, {name}: RMSE {rmse:.3g} {unit}", fontsize=8, loc="left")
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel(f"time ({unit_t})", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(path, "plot") as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
