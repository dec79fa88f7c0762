"""Figures of an evaluation (PNG, matplotlib object API, each written atomically):
- `<stem>-grid.png`: synthetic windows beside real reference windows with the same labels, clinical style
  (evaluation/sample_grid.py);
- `<stem>-physio.png`: histograms of each physiological feature, real reference vs this set (vs train patients);
- `<stem>-embedding.png`: PCA (fitted on the real reference) and t-SNE of pooled FCN features, real vs this set.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dataloader.atomic import atomic_path

REAL, SYN, FLOOR = "#1b1b1b", "#c0392b", "#2e86c1"


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path, "figure") as tmp:
        fig.savefig(tmp, format="png")
    return path


def _figure(w: float, h: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def physio_histograms(path: Path, names: Sequence[str], real: np.ndarray, synth: np.ndarray, title: str,
                      floor: np.ndarray | None = None) -> Path:
    """One panel per feature: density histograms of real `(Nr, F)`, synthetic `(Ns, F)` (and floor) values."""
    n = len(names)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = _figure(3.4 * cols, 2.6 * rows + 0.6)
    for j, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, j + 1)
        sets = [(real[:, j], "real reference", REAL), (synth[:, j], "this set", SYN)]
        if floor is not None:
            sets.append((floor[:, j], "train patients", FLOOR))
        vals = np.concatenate([v[np.isfinite(v)] for v, _, _ in sets])
        if len(vals) == 0:
            ax.set_title(f"{name}: no values", fontsize=9)
            continue
        lo, hi = np.percentile(vals, [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
        for v, lab, col in sets:
            v = v[np.isfinite(v)]
            if len(v):
                ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, density=True, histtype="step", color=col,
                        label=f"{lab} (n={len(v)})", linewidth=1.3)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if j == 0:
            ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def embedding_plot(path: Path, real: np.ndarray, synth: np.ndarray, title: str, seed: int = 0,
                   max_points: int = 500) -> Path:
    """PCA (fit on the real features `(Nr, D)`) and t-SNE (of both) of features, real vs synthetic."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    r = real[rng.permutation(len(real))[:max_points]]
    s = synth[rng.permutation(len(synth))[:max_points]]
    mu, sd = r.mean(0), r.std(0) + 1e-9                       # standardise with the real statistics
    r, s = (r - mu) / sd, (s - mu) / sd
    pca = PCA(2, random_state=seed).fit(r)
    pr, ps = pca.transform(r), pca.transform(s)
    both = np.concatenate([r, s])
    tsne = TSNE(2, perplexity=min(30.0, max(2.0, (len(both) - 1) / 3.0)), init="pca", random_state=seed)
    emb = tsne.fit_transform(both)
    fig = _figure(10, 4.6)
    for k, (a, b, what) in enumerate(((pr, ps, f"PCA (fit on real; {pca.explained_variance_ratio_.sum():.0%} "
                                                 "of real variance)"),
                                      (emb[: len(r)], emb[len(r):], "t-SNE"))):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.scatter(a[:, 0], a[:, 1], s=6, c=REAL, alpha=0.5, label=f"real reference ({len(a)})")
        ax.scatter(b[:, 0], b[:, 1], s=6, c=SYN, alpha=0.5, label=f"this set ({len(b)})")
        ax.set_title(what, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, markerscale=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def grid_plot(path: Path, synth_path: str, real_dataset: Any, n: int, seed: int) -> Path:
    """Synthetic windows of a generated file beside real reference windows with the same labels."""
    from ..sample_grid import plot_generated

    return plot_generated(synth_path, real_dataset, path, n=n, seed=seed)


def stem_for(name: str) -> str:
    """A file-name-safe stem for a row name."""
    base = os.path.splitext(name)[0]
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in base)
