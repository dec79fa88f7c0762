"""Clinical-style plots of signal windows, for data inspection and real-vs-synthetic comparison.

The style follows the channels' units, never the dataset name:
- CTG (a channel in bpm): FHR panel (50-210 bpm) above the other channels (UC), minutes on the x axis,
  CTG-paper grid (light lines every 1 min / 10 bpm, darker every 10 min / 30 bpm), the 110-160 bpm
  normal-baseline band shaded.
- ECG (every channel in mV): leads stacked on one axis, seconds on the x axis, ECG-paper grid (minor
  0.04 s / 0.1 mV, major 0.2 s / 0.5 mV) with square major boxes (25 mm/s, 10 mm/mV proportions).
- Anything else: one panel per channel with its name and unit.

`plot_windows(fig, real, fs, channels, compare=synthetic)` draws a second column, so real and synthetic
windows sit side by side on identical axes. Only matplotlib's object API is used (no pyplot state).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

GRID_MINOR = "#f7d4d4"     # CTG/ECG paper: light pink thin lines
GRID_MAJOR = "#e59a9a"     # darker red major lines
TRACE = "#1b1b1b"
TRACE_CMP = "#0b4f8a"      # the compare column's trace colour
MASKED = "#9a9a9a"         # samples that were interpolated or filled, not measured


def _chan(c: Any) -> dict[str, Any]:
    """A channel description from a dict (file attributes), a ChannelSpec or a plain name."""
    if isinstance(c, dict):
        return {"name": str(c.get("name", "")), "unit": str(c.get("unit", "")), "range": c.get("range")}
    if isinstance(c, str):
        return {"name": c, "unit": "", "range": None}
    rng = getattr(c, "range", None)
    return {"name": str(getattr(c, "name", "")), "unit": str(getattr(c, "unit", "")),
            "range": rng if isinstance(rng, (list, tuple)) else None}


def plot_style(channels: Sequence[Any]) -> str:
    """"ctg" (a bpm channel), "ecg" (all channels in mV) or "generic"."""
    units = [_chan(c)["unit"].strip().lower() for c in channels]
    if "bpm" in units:
        return "ctg"
    if units and all(u == "mv" for u in units):
        return "ecg"
    return "generic"


def ecg_spacing(*arrays: Optional[np.ndarray]) -> float:
    """Vertical distance between stacked leads (mV, a multiple of 0.5): the median over leads and
    windows of the robust peak-to-peak plus 0.5 mV, within [1.5, 4] mV. Tall QRS complexes may reach
    into the neighbouring lead's strip, as on a printed ECG."""
    ptps = []
    for a in arrays:
        if a is not None and a.size:
            lo, hi = np.nanpercentile(a, [0.5, 99.5], axis=-1)
            ptps.append((hi - lo).ravel())
    ptp = float(np.nanmedian(np.concatenate(ptps))) if ptps else 1.0
    return float(min(4.0, max(1.5, np.ceil(ptp / 0.5) * 0.5 + 0.5)))


def figure_size(n_rows: int, channels: Sequence[Any], length_s: float, n_cols: int = 1,
                x: Optional[np.ndarray] = None) -> tuple[float, float]:
    """A figure size (inches) that suits `plot_windows` for n_rows windows per column.

    x: the (N, C, L) windows to draw; ECG uses them for the lead spacing (default 2 mV)."""
    style = plot_style(channels)
    C = len(channels)
    if style == "ctg":
        # CTG paper runs at 1-3 cm/min; ~0.3 inch per minute keeps decelerations readable
        return (min(14.0, max(7.5, 0.3 * length_s / 60.0)) * n_cols + 1.0, 3.6 * n_rows + 0.6)
    if style == "ecg":
        # ECG paper proportions: 0.2 s is as long as 0.5 mV, so the height follows the stacked leads
        spacing = ecg_spacing(x) if x is not None else 2.0
        per_s = min(1.5, 12.0 / max(length_s, 1e-9) / n_cols)      # inches per second
        height = 0.4 * per_s * C * spacing + 0.9
        return (per_s * length_s * n_cols + 1.2, min(80.0, n_rows * height + 0.3))
    return (7.0 * n_cols + 1.0, n_rows * (1.1 * C + 0.5) + 0.6)


def _paper_grid(ax: Any, x_minor: float, x_major: float, y_minor: float, y_major: float) -> None:
    """Draw a paper grid inside the current limits, independent of the tick positions (ECG ticks
    name the leads, not the 0.5 mV lines). Call after setting the limits."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for step, color, lw in ((x_minor, GRID_MINOR, 0.4), (x_major, GRID_MAJOR, 0.8)):
        xs = np.arange(np.ceil(x0 / step - 1e-6), np.floor(x1 / step + 1e-6) + 1) * step
        ax.vlines(xs, y0, y1, colors=color, linewidth=lw, zorder=0.5)
    for step, color, lw in ((y_minor, GRID_MINOR, 0.4), (y_major, GRID_MAJOR, 0.8)):
        ys = np.arange(np.ceil(y0 / step - 1e-6), np.floor(y1 / step + 1e-6) + 1) * step
        ax.hlines(ys, x0, x1, colors=color, linewidth=lw, zorder=0.5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def _trace(ax: Any, t: np.ndarray, v: np.ndarray, m: Optional[np.ndarray], color: str, lw: float) -> None:
    """Draw a trace; masked (not measured) samples in grey, NaN breaks the line."""
    if m is None or not m.any():
        ax.plot(t, v, color=color, linewidth=lw)
        return
    meas = np.where(m, np.nan, v)
    # grey segments include one neighbour on each side so the two colours join without gaps
    grow = m | np.concatenate([m[1:], [False]]) | np.concatenate([[False], m[:-1]])
    ax.plot(t, np.where(grow, v, np.nan), color=MASKED, linewidth=lw)
    ax.plot(t, meas, color=color, linewidth=lw)


def _ctg(fig: Any, spec: Any, x: np.ndarray, m: Optional[np.ndarray], fs: float, chans: list[dict],
         color: str, title: Optional[str]) -> list[Any]:
    bpm = [i for i, c in enumerate(chans) if c["unit"].strip().lower() == "bpm"]
    rest = [i for i in range(len(chans)) if i not in bpm]
    gs = spec.subgridspec(1 + len(rest), 1, height_ratios=[2.2] + [1.0] * len(rest))
    t = np.arange(x.shape[-1]) / fs / 60.0
    ax0 = fig.add_subplot(gs[0])
    axes = [ax0]
    ax0.axhspan(110, 160, color="#fbeaea", zorder=0)
    for i in bpm:
        _trace(ax0, t, x[i], None if m is None else m[i], color, 0.7)
    ax0.set_ylim(50, 210)
    ax0.set_xlim(0, t[-1] if len(t) > 1 else 1)
    ax0.set_yticks(np.arange(60, 211, 30))
    ax0.set_ylabel(" / ".join(chans[i]["name"] for i in bpm) + " [bpm]")
    _paper_grid(ax0, 1, 10, 10, 30)
    if title:
        ax0.set_title(title, fontsize=9, loc="left")
    for k, i in enumerate(rest):
        ax = fig.add_subplot(gs[1 + k], sharex=ax0)
        _trace(ax, t, x[i], None if m is None else m[i], color, 0.7)
        r = chans[i]["range"]
        lo, hi = (float(r[0]), float(r[1])) if r else (float(np.nanmin(x[i])), float(np.nanmax(x[i])) + 1e-9)
        ax.set_ylim(lo, hi)
        step = 10 ** np.floor(np.log10(max(hi - lo, 1e-9) / 4))
        major = step * (2.5 if (hi - lo) / step > 8 else 1)
        ax.set_yticks(np.arange(np.ceil(lo / major), np.floor(hi / major) + 1) * major)
        _paper_grid(ax, 1, 10, step, major)
        unit = chans[i]["unit"]
        ax.set_ylabel(chans[i]["name"] + (f" [{unit}]" if unit else ""))
        axes.append(ax)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time [min]")
    axes[-1].set_xticks(np.arange(0, t[-1] + 1e-9, 5 if t[-1] > 15 else 1))
    return axes


def _ecg(fig: Any, spec: Any, x: np.ndarray, m: Optional[np.ndarray], fs: float, chans: list[dict],
         color: str, title: Optional[str], spacing: float) -> list[Any]:
    ax = fig.add_subplot(spec)
    t = np.arange(x.shape[-1]) / fs
    offsets = -spacing * np.arange(len(chans))
    top, bottom = spacing / 2, offsets[-1] - spacing / 2
    for i, c in enumerate(chans):
        base = np.nanmedian(x[i]) if np.isfinite(x[i]).any() else 0.0
        y = x[i] - base + offsets[i]
        _trace(ax, t, y, None if m is None else m[i], color, 0.6)
        if np.isfinite(y).any():
            top, bottom = max(top, float(np.nanmax(y))), min(bottom, float(np.nanmin(y)))
    ax.set_xlim(0, t[-1] if len(t) > 1 else 1)
    # whole 0.5 mV boxes, with room for the tallest wave of the first and last lead
    ax.set_ylim(np.floor(bottom / 0.5 - 0.2) * 0.5, np.ceil(top / 0.5 + 0.2) * 0.5)
    _paper_grid(ax, 0.04, 0.2, 0.1, 0.5)
    ax.set_aspect(0.4, adjustable="box")  # 0.2 s and 0.5 mV make the same length: square major boxes
    ax.set_yticks(offsets)
    ax.set_yticklabels([c["name"] for c in chans], fontsize=8)
    ax.set_xlabel("time [s]   (grid: 0.2 s x 0.5 mV)")
    xt = np.arange(0, t[-1] + 1e-9, 1.0 if t[-1] > 2 else 0.2)
    ax.set_xticks(xt)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    return [ax]


def _generic(fig: Any, spec: Any, x: np.ndarray, m: Optional[np.ndarray], fs: float, chans: list[dict],
             color: str, title: Optional[str]) -> list[Any]:
    C = len(chans)
    gs = spec.subgridspec(C, 1)
    minutes = x.shape[-1] / fs > 600
    t = np.arange(x.shape[-1]) / fs / (60.0 if minutes else 1.0)
    axes = []
    for i, c in enumerate(chans):
        ax = fig.add_subplot(gs[i], sharex=axes[0] if axes else None)
        _trace(ax, t, x[i], None if m is None else m[i], color, 0.7)
        if c["range"]:
            ax.set_ylim(float(c["range"][0]), float(c["range"][1]))
        ax.set_ylabel(c["name"] + (f" [{c['unit']}]" if c["unit"] else ""), fontsize=8)
        ax.grid(color="#dddddd", linewidth=0.5)
        if i < C - 1:
            ax.tick_params(labelbottom=False)
        axes.append(ax)
    axes[0].set_xlim(0, t[-1] if len(t) > 1 else 1)
    axes[-1].set_xlabel("time [min]" if minutes else "time [s]")
    if title:
        axes[0].set_title(title, fontsize=9, loc="left")
    return axes


def plot_windows(ax_or_fig: Any, x_phys: np.ndarray, fs: float, channels: Sequence[Any],
                 titles: Optional[Sequence[str]] = None, compare: Optional[np.ndarray] = None,
                 compare_titles: Optional[Sequence[str]] = None, masks: Optional[np.ndarray] = None,
                 column_titles: Sequence[str] = ("real", "synthetic")) -> list[Any]:
    """Draw windows in clinical style; returns the axes created.

    ax_or_fig: a matplotlib Figure (the plot fills it) or an Axes (the plot replaces it, in its place).
    x_phys: (N, C, L) or (C, L) physical units; NaN breaks the trace. fs: Hz. channels: per channel a
    dict (name, unit, range) as in prepared files, a ChannelSpec, or a name. titles: N strings.
    compare: (M, C, L) windows drawn in a second column (e.g. synthetic beside real), same axes limits.
    masks: (N, C, L) bool, True = interpolated/filled; those samples are drawn grey.
    """
    from matplotlib.figure import Figure

    x = np.asarray(x_phys, dtype=np.float64)
    x = x[None] if x.ndim == 2 else x
    cmp_ = None if compare is None else np.asarray(compare, dtype=np.float64)
    cmp_ = cmp_[None] if cmp_ is not None and cmp_.ndim == 2 else cmp_
    mk = None if masks is None else np.asarray(masks, dtype=bool).reshape(x.shape)
    chans = [_chan(c) for c in channels]
    if x.ndim != 3 or x.shape[1] != len(chans):
        raise ValueError(f"x_phys must be (N, C, L) with C = {len(chans)} channels (got {x.shape})")
    if cmp_ is not None and (cmp_.ndim != 3 or cmp_.shape[1] != len(chans)):
        raise ValueError(f"compare must be (M, C, L) with C = {len(chans)} (got {cmp_.shape})")
    if isinstance(ax_or_fig, Figure):
        fig = ax_or_fig
        fig.set_layout_engine("constrained")  # room for titles and labels without overlaps
        outer = fig.add_gridspec(1, 1)[0]
    else:
        fig = ax_or_fig.figure
        outer = ax_or_fig.get_subplotspec()
        ax_or_fig.remove()
    style = plot_style(chans)
    ncols = 1 if cmp_ is None else 2
    nrows = max(len(x), 0 if cmp_ is None else len(cmp_))
    grid = outer.subgridspec(nrows, ncols)
    spacing = ecg_spacing(x, cmp_) if style == "ecg" else 0.0
    axes: list[Any] = []
    for col, (data, names, color) in enumerate([(x, titles, TRACE), (cmp_, compare_titles, TRACE_CMP)][:ncols]):
        assert data is not None
        for r in range(len(data)):
            title = names[r] if names is not None and r < len(names) else None
            if r == 0 and ncols == 2:
                title = f"{column_titles[col]}" + (f": {title}" if title else "")
            m = mk[r] if (mk is not None and col == 0) else None
            if style == "ctg":
                axes += _ctg(fig, grid[r, col], data[r], m, fs, chans, color, title)
            elif style == "ecg":
                axes += _ecg(fig, grid[r, col], data[r], m, fs, chans, color, title, spacing)
            else:
                axes += _generic(fig, grid[r, col], data[r], m, fs, chans, color, title)
    return axes
