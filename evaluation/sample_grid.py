"""A PNG of synthetic windows beside real ones (epoch plots in training, `generate.py --plot`).

Entry points hand `save_compare_png` to the training loop (diffusion/ may not import evaluation/,
docs/design.md section 1). Drawing is `evaluation.plots.windows.plot_windows` (clinical style from the units); the
file is written under a temporary name and renamed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from dataloader.atomic import atomic_path

from .plots.windows import figure_size, plot_windows


def save_compare_png(path: str | os.PathLike, synthetic: np.ndarray, fs: float, channels: Sequence[Any],
                     real: Optional[np.ndarray] = None, synthetic_titles: Optional[Sequence[str]] = None,
                     real_titles: Optional[Sequence[str]] = None, title: str = "",
                     description: str = "") -> Path:
    """Draw `synthetic` (M, C, L) beside `real` (N, C, L) (both physical units) into `path` (PNG).

    Without `real` only the synthetic column is drawn. `description`: text stored in the PNG's
    "Description" field (what each panel shows, for readers that cannot see the picture). Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    syn = np.asarray(synthetic, dtype=np.float64)
    length_s = syn.shape[-1] / float(fs)
    rows = max(len(syn), 0 if real is None else len(real))
    fig = Figure(figsize=figure_size(rows, channels, length_s, n_cols=1 if real is None else 2), dpi=90)
    FigureCanvasAgg(fig)
    if real is None:
        plot_windows(fig, syn, fs, channels, titles=synthetic_titles)
    else:
        plot_windows(fig, real, fs, channels, titles=real_titles, compare=syn, compare_titles=synthetic_titles)
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(path, "plot") as tmp:
        fig.savefig(tmp, format="png", metadata={"Description": description} if description else None)
    return Path(path)


MAX_PLOT_N = 100  # windows in one generated.png at most (`generate.py --plot_n`)


def spread_over_requests(starts: Optional[Sequence[int]], total: int, n: int, cap: int = MAX_PLOT_N) -> np.ndarray:
    """Indices (sorted) of the generated windows to plot.

    Without `starts`: the first n. With the first window index of each request (a class-CSV row: windows
    starts[r] .. starts[r + 1] - 1), round-robin over the requests, so that every requested class is drawn
    even when n is smaller than their number: max(n, requests) windows, at most `cap` (and `total`)."""
    if not starts:
        return np.arange(min(n, total))
    bounds = [int(b) for b in starts] + [int(total)]
    groups = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    want = min(cap, max(n, len(groups)), total)
    picked: list[int] = []
    k = 0
    while len(picked) < want:
        picked += [int(g[k]) for g in groups if k < len(g)][:want - len(picked)]
        k += 1
    return np.sort(np.array(picked, np.int64))


def _real_windows(sets: Sequence[Any], source: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(M, C, L) physical real windows: row m is window index[m] of sets[source[m]]."""
    out: list[Any] = [None] * len(index)
    for s in np.unique(source).tolist():
        rows = np.flatnonzero(source == s)
        x = sets[s].to_physical(sets[s].get_batch(index[rows].tolist())[0])
        for k, r in enumerate(rows.tolist()):
            out[r] = x[k]
    return np.stack(out)


def plot_generated(h5_path: str | os.PathLike, real: Any, out_png: str | os.PathLike, n: int = 6,
                   seed: int = 0, starts: Optional[Sequence[int]] = None,
                   columns: Optional[Sequence[int]] = None, spare: Sequence[Any] = ()) -> Path:
    """Generated windows (`spread_over_requests(starts, N, n)`: the first n, or every requested class) beside
    real windows of the same class.

    `real`: a WindowDataset (its split's windows; the test split keeps the comparison honest); `spare`: other
    WindowDatasets (val, train) tried, in order, for a class that `real` lacks. `columns`: the label columns
    a class CSV requested (None: all). Each real window is picked by `evaluation.plots.same_class.pick_real`
    (the same label row, else the same requested classes, else any, seeded) and titled with its own labels
    (and its split when it is not `real`'s). The PNG's Description field lists the panel pairs, one line per
    row ("real: ... | synthetic: ..."). The folder of `out_png` is created if its parent exists.
    """
    from dataloader.class_csv import label_text
    from dataloader.synthetic import read_synthetic

    from .plots.same_class import pick_real, real_titles

    syn, labels, attrs = read_synthetic(h5_path)
    idx = spread_over_requests(starts, len(syn), n)
    syn, labels = syn[idx], labels[idx]
    sets = [real, *spare]
    real_labels = [np.asarray(d.labels) for d in sets]
    picks = pick_real(real_labels, labels, columns, seed)
    spec = attrs.get("label_spec", [])

    def text(row: Sequence[int]) -> str:
        return label_text(row, [s["name"] for s in spec], [s["classes"] for s in spec])

    titles = [text(row) for row in labels.tolist()]
    found = len(labels) > 0 and bool((picks.index >= 0).all())
    real_x = _real_windows(sets, picks.source, picks.index) if found else None
    left = real_titles(picks, real_labels, text, [f"{getattr(d, 'split', '')} patients" for d in sets]) \
        if found else None
    rows = [f"real: {a} | synthetic: {b}" for a, b in zip(left or ["none"] * len(titles), titles)]
    Path(out_png).parent.mkdir(exist_ok=True)
    return save_compare_png(out_png, syn, float(attrs["fs"]), attrs["channels"], real=real_x,
                            synthetic_titles=titles, real_titles=left, description="\n".join(rows),
                            title=f"{Path(h5_path).name}: {attrs['sampler']} {attrs['steps']} steps, "
                                  f"guidance {attrs['guidance_scale']:g}, seed {attrs['seed']} "
                                  f"(right) beside real {getattr(real, 'split', '')} windows (left)")
