"""Show what a prepared data file or a generated file holds, and optionally plot random windows in clinical style.

    python -m tools.inspect data/ctg-4hz.h5 [--plot out.png] [--n 4] [--split train] [--seed 0]
    python -m tools.inspect runs/demo/synthetic.h5 [--plot out.png] [--n 4] [--seed 0]

Prints the attributes (channels, rate, window, splits, label spec, manifest hash, provenance; for a generated
file: windows per class, sampler, seed, model hash; tools/inspect_synthetic.py). The plot
draws CTG as FHR over UC on CTG paper, ECG leads on ECG paper, anything else as stacked channels;
interpolated or filled samples are grey.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dataloader.atomic import atomic_path
from dataloader.cli import make_parser, run_main
from dataloader.errors import UserError
from dataloader.prepared import PreparedFile


def describe(f: PreparedFile) -> str:
    """Human-readable summary of a prepared file."""
    s = f.summary()
    lines = [f"file         {s['path']}",
             f"source       {s['source']}",
             f"created by   physiodiff {s['created_by'].get('version', '?')} at {s['created_by'].get('utc', '?')}",
             f"fs           {s['fs']:g} Hz",
             f"window       {s['window_len']} samples ({s['window_s']:g} s), stride {s['stride']} samples "
             f"({s['stride'] / s['fs']:g} s)",
             f"storage      {s['storage']}, {s['segments']} segments, "
             f"{f.data.shape[1]} samples ({f.data.shape[1] / f.fs / 3600:.1f} h)",
             "channels"]
    for c in s["channels"]:
        lines.append(f"  {c['name']:<10} [{c['unit']}]  range [{c['range'][0]:g}, {c['range'][1]:g}]")
    lines.append(f"{'split':<12} {'patients':>9} {'windows':>9}")
    for k, n in s["windows"].items():
        lines.append(f"  {k:<10} {s['patients'].get(k, 0):>9} {n:>9}")
    lines.append("labels" if s["labels"] else "labels       none")
    for k, lab in enumerate(s["labels"]):
        counts = np.bincount(f.labels("train")[:, k], minlength=len(lab["classes"])) if f.n_windows("train") \
            else np.zeros(len(lab["classes"]), int)
        desc = ", ".join(f"{c} ({n})" for c, n in zip(lab["classes"], counts))
        lines.append(f"  {lab['name']:<10} {lab['kind']}/{lab['source']}: {desc}   [train windows]")
    lines.append(f"manifest sha256 {s['manifest_sha256']}")
    return "\n".join(lines)


def plot_random(f: PreparedFile, out: str, n: int, split: str, seed: int) -> list[int]:
    """Plot n random windows of a split to an image file (written atomically); returns their indices."""
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from evaluation.plots.windows import figure_size, plot_windows

    total = f.n_windows(split)
    if total == 0:
        raise UserError(f.path, f"split {split!r} has no windows to plot")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(total, size=min(n, total), replace=False))
    x, y, pids = f.batch(split, idx)
    masks = np.stack([f.window_mask(split, int(i)) for i in idx])
    titles = []
    for i, yy, p in zip(idx, y, pids):
        seg, start = f.window_position(split, int(i))
        # class names like "pH<7.05" already say which label they belong to
        labs = ", ".join(lab["classes"][c] if lab["classes"][c].startswith(lab["name"])
                         else f"{lab['name']}={lab['classes'][c]}" for lab, c in zip(f.label_spec, yy))
        titles.append(f"{split} #{i}  patient {p}  t0={start / f.fs:g} s" + (f"  [{labs}]" if labs else ""))
    phys = f.to_physical(x)
    fig = Figure(figsize=figure_size(len(idx), f.channels, f.window_len / f.fs, x=phys))
    FigureCanvasAgg(fig)
    plot_windows(fig, phys, f.fs, f.channels, titles=titles, masks=masks)
    fmt = Path(out).suffix.lstrip(".").lower() or "png"
    with atomic_path(out, "--plot") as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    return [int(i) for i in idx]


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m tools.inspect", __doc__.split("\n\n")[0])
    p.add_argument("file", help="prepared HDF5 file (tools.prepare_data) or generated one (generate.py)")
    p.add_argument("--plot", metavar="OUT.png", help="draw random windows to this image (png, pdf, svg)")
    p.add_argument("--n", type=int, default=4, help="windows to plot")
    p.add_argument("--split", default="train", choices=["train", "val", "test"],
                   help="split to draw from (a prepared file)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random window choice")
    a = p.parse_args(argv)
    if a.n < 1:
        raise UserError("--n", f"must be >= 1 (got {a.n})")
    from .inspect_synthetic import describe_synthetic, is_synthetic, plot_synthetic

    if is_synthetic(a.file):
        print(describe_synthetic(a.file))
        if a.plot:
            print(f"plotted windows {plot_synthetic(a.file, a.plot, a.n, a.seed)} to {a.plot}")
        return 0
    f = PreparedFile(a.file)
    print(describe(f))
    if a.plot:
        idx = plot_random(f, a.plot, a.n, a.split, a.seed)
        print(f"plotted {a.split} windows {idx} to {a.plot}")
    return 0


if __name__ == "__main__":
    run_main(main)
