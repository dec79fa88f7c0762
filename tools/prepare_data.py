"""Prepare recordings for training: read, clean, window, label, split, scale, write one HDF5 file.

    python -m tools.prepare_data --config configs/ctg/sampling-diffusion.yaml [key=value ...]
        [--dry-run] [--workers N]

Writes `data.prepared` (see dataloader/prepared.py), `<prepared stem>.report.csv` (one row per recording:
samples, segments, windows, missing fractions, status) and `<prepared stem>.yaml` (the resolved config),
all atomically: a failure leaves none of them behind. The folder of `data.prepared` is created if needed.
Recordings that yield no window are reported and skipped; if none yields a window it is an error.
The work is the library function `dataloader.prepare.prepare`; this command parses, calls it and prints a
summary.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dataloader.cli import add_config_args, make_parser, run_main
from dataloader.config import load_config
from dataloader.errors import UserError
from dataloader.prepare import check_outputs, prepare
from dataloader.prepared import PreparedData
from dataloader.split import SPLITS


def _summary(facts: dict[str, Any], path: str) -> str:
    prep: PreparedData = facts["prep"]
    kept, rows, names = facts["kept"], facts["rows"], facts["names"]
    size = Path(path).stat().st_size / 1e6
    lines = [f"prepared {path} ({size:.1f} MB, {prep.storage}) from {len(facts['results'])} recordings "
             f"in {facts['seconds']:.1f} s",
             f"{facts['note']}; stride {prep.stride} samples ({prep.stride / prep.fs:g} s)",
             "channels: " + ", ".join(f"{c['name']} [{c['unit']}] range [{c['range'][0]:g}, {c['range'][1]:g}]"
                                      for c in prep.channels),
             "", f"{'split':<8}{'patients':>10}{'segments':>10}{'windows':>10}"]
    side = {p: s for s, ps in prep.manifest.items() for p in ps}
    for s in SPLITS:
        pats = [r for r in kept if side[r["patient"]] == s]
        lines.append(f"{s:<8}{len(pats):>10}{sum(len(r['segments']) for r in pats):>10}{len(prep.windows[s]):>10}")
    lines.append(f"{'total':<8}{len(kept):>10}{len(prep.seg_index):>10}"
                 f"{sum(len(w) for w in prep.windows.values()):>10}")
    n_src = np.array([r["n_src"] for r in facts["results"]], dtype=np.float64)
    miss = np.array([r["missing_frac"] for r in facts["results"]])
    raw = (miss * n_src[:, None]).sum(0) / max(n_src.sum(), 1)
    stored = prep.mask.mean(axis=1) if prep.mask.shape[1] else np.zeros(len(names))
    lines += ["", "missing per channel: fraction of source samples marked missing; fraction of stored samples "
                  "interpolated or filled"]
    lines += [f"  {n:<10}{a:>8.3f}{b:>8.3f}" for n, a, b in zip(names, raw, stored)]
    for k, lab in enumerate(prep.label_spec):
        lines += ["", f"label {lab['name']!r} (windows per class)",
                  f"  {'class':<16}" + "".join(f"{s:>9}" for s in SPLITS)]
        for code, cname in enumerate(lab["classes"]):
            counts = [int((prep.windows[s][:, 2 + k] == code).sum()) for s in SPLITS]
            lines.append(f"  {cname:<16}" + "".join(f"{c:>9}" for c in counts))
    skipped = [r for r in rows.values() if r["status"] != "ok"]
    if skipped:
        shown = "; ".join(f"{r['patient']} ({r['status'][9:]})" for r in skipped[:5])
        lines += ["", f"skipped {len(skipped)} recording(s) that yield no window: {shown}"
                      + (" ..." if len(skipped) > 5 else "") + " (see the report)"]
    lines += ["", f"manifest sha256: {prep.manifest_sha256}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m tools.prepare_data", __doc__.split("\n\n")[0])
    add_config_args(p)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="reading processes (default: data.workers); each uses one thread")
    a = p.parse_args(argv)
    if a.workers is not None and a.workers < 1:
        raise UserError("--workers", f"must be >= 1 (got {a.workers})")
    cfg = load_config(a.config, a.overrides)
    check_outputs(cfg)
    if a.dry_run:
        print(cfg.yaml(), end="")
        return 0
    facts = prepare(cfg, a.workers)
    print(_summary(facts, cfg.data.prepared))
    return 0


if __name__ == "__main__":
    run_main(main)
