"""The field's time-series generation benchmark (TimeGAN / Diffusion-TS protocol, docs/benchmark_protocol.md).

    python -m bench.ts_benchmark score --real REAL --synthetic SYN --out DIR [--window 24] [--runs 5] [--seed 0]

REAL: a CSV series (e.g. ../shared/data/bench/etth2/etth2.csv.gz; non-numeric columns dropped, every channel
min-max scaled over the whole series, stride-1 windows of --window steps) or a .npy (N, T, C) in [0, 1].
SYN: the project's synthetic HDF5 (its [-1, 1] copy mapped to [0, 1]) or a .npy (M, T, C) in [0, 1].
Writes DIR/report.json and DIR/report.md (DIR's parent must exist). Subcommands: `score` (this), and `run`
(prepare, train, generate and score one config over a grid of samplers and NFE: bench/ts_benchmark_run.py).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

from dataloader.atomic import check_out_dir, write_text_atomic
from dataloader.cli import make_parser, run_main
from dataloader.errors import UserError

from .machine import machine_info
from .ts_benchmark_data import WINDOWS, load_real, load_synthetic
from .ts_benchmark_report import report_markdown
from .ts_benchmark_run import __doc__ as run_doc
from .ts_benchmark_run import add_run_args, run

PROG = "python -m bench.ts_benchmark"


def add_score_args(p: argparse.ArgumentParser) -> None:
    """Options of `score`."""
    from evaluation.protocol import METRICS

    p.add_argument("--real", required=True, help="real series (.csv, .csv.gz) or windows (.npy, (N, T, C))")
    p.add_argument("--synthetic", required=True, help="synthetic windows: physiodiff .h5 or .npy (M, T, C)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for report.json and report.md")
    p.add_argument("--window", type=int, choices=WINDOWS, default=None,
                   help="window length for a CSV series (default 24); checked against a .npy")
    p.add_argument("--runs", type=int, default=5, help="runs per score (the references use 5)")
    p.add_argument("--seed", type=int, default=0, help="base seed (run r of a score uses [seed, score, r])")
    p.add_argument("--metrics", nargs="+", choices=METRICS, default=list(METRICS), help="scores to compute")
    p.add_argument("--no-real-vs-real", action="store_true", help="skip the real-vs-real row")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny GRUs)")
    p.add_argument("--hidden", type=int, default=None,
                   help="GRU width instead of the reference int(C/2) (a deviation, flagged in the report)")


def score(a: argparse.Namespace) -> int:
    """`score`: read, score, write report.json and report.md; bad input is refused before anything is written."""
    from evaluation.protocol import score_protocol

    if a.runs < 1 or a.threads < 1:
        raise UserError("--runs/--threads", f"must be >= 1, got {a.runs}, {a.threads}")
    out = check_out_dir(a.out, "--out")
    if out.exists() and not out.is_dir():
        raise UserError("--out", f"{a.out} exists and is not a folder")
    real, real_info = load_real(a.real, a.window)
    synth, syn_info = load_synthetic(a.synthetic)
    if synth.ndim == 3 and synth.shape[1:] != real.shape[1:]:
        raise UserError("--synthetic", f"windows of {synth.shape[1]} steps x {synth.shape[2]} channels, but the "
                                       f"real ones are {real.shape[1]} x {real.shape[2]}")
    t0 = time.perf_counter()
    res = score_protocol(real, synth, runs=a.runs, seed=a.seed, metrics=tuple(a.metrics),
                         real_vs_real=not a.no_real_vs_real, hidden=a.hidden, threads=a.threads,
                         progress=lambda name: print(f"{name}: done", flush=True))
    rep: dict[str, Any] = {"protocol": "TimeGAN / Diffusion-TS", "real": real_info, "synthetic": syn_info,
                           "result": res, "threads": a.threads, "machine": machine_info(),
                           "seconds_total": round(time.perf_counter() - t0, 1)}
    out.mkdir(exist_ok=True)
    write_text_atomic(Path(out) / "report.json", json.dumps(rep, indent=1) + "\n", "--out")
    write_text_atomic(Path(out) / "report.md", report_markdown(rep), "--out")
    for name, s in res["scores"].items():
        floor = res.get("real_vs_real", {}).get(name)
        print(f"{name}: {s['mean']:.4f} ± {s['std']:.4f}" + (f" (real vs real {floor['mean']:.4f})" if floor else ""))
    print(f"report in {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser(PROG, __doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(p))
    sp = sub.add_parser("score", help="score synthetic windows against real ones", description=__doc__,
                        formatter_class=p.formatter_class)
    add_score_args(sp)
    rp = sub.add_parser("run", help="prepare, train (time-capped), generate and score one config",
                        description=run_doc, formatter_class=p.formatter_class)
    add_run_args(rp)
    a = p.parse_args(argv)
    if a.command is None:
        raise UserError(PROG, "a subcommand is needed: score or run (see --help)")
    return score(a) if a.command == "score" else run(a)


if __name__ == "__main__":
    run_main(main)
