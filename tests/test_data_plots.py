"""evaluation.plots.windows: style from units, compare column, drawing into an existing Axes."""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evaluation.plots.windows import ecg_spacing, figure_size, plot_style, plot_windows

CTG = [{"name": "FHR", "unit": "bpm", "range": [50, 210]}, {"name": "UC", "unit": "nd", "range": [0, 100]}]
ECG = [{"name": n, "unit": "mV", "range": [-5, 5]} for n in ("MLII", "V")]


def _fig(size=(6, 4)) -> Figure:
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def test_style_from_units():
    assert plot_style(CTG) == "ctg" and plot_style(ECG) == "ecg"
    assert plot_style([{"name": "price", "unit": "USD"}]) == "generic" and plot_style(["a", "b"]) == "generic"


def test_ctg_with_compare_column_and_masks(tmp_path):
    rng = np.random.default_rng(0)
    real = np.stack([140 + rng.normal(0, 5, (2, 480)) * [[1], [0]] + [[0], [30]] for _ in range(2)])
    fig = _fig(figure_size(2, CTG, 120.0, n_cols=2))
    masks = np.zeros(real.shape, bool)
    masks[:, 0, 100:120] = True
    axes = plot_windows(fig, real, 4.0, CTG, titles=["a", "b"], compare=real[:1], masks=masks)
    assert len(axes) == 2 * 2 + 2               # FHR + UC per window: 2 real, 1 compare
    assert axes[0].get_ylim() == (50, 210) and axes[0].get_title(loc="left") == "real: a"
    assert axes[4].get_title(loc="left") == "synthetic"
    fig.savefig(tmp_path / "ctg.png")


def test_ecg_grid_square_boxes_and_axes_input(tmp_path):
    t = np.arange(720) / 360.0
    x = np.stack([np.sin(2 * np.pi * t) * 0.8, np.cos(2 * np.pi * t) * 0.3])
    assert ecg_spacing(x[None]) == 2.0        # median lead peak-to-peak 1.1 mV -> 1.5 + 0.5 margin
    fig = _fig()
    ax = fig.add_subplot(1, 2, 2)
    axes = plot_windows(ax, x, 360.0, ECG, titles=["beat"])   # (C, L) is one window
    assert len(axes) == 1 and axes[0].get_aspect() == 0.4 and ax not in fig.axes
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["MLII", "V"]
    fig.savefig(tmp_path / "ecg.png")
