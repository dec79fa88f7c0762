"""`python -m bench.ts_benchmark run`: the whole protocol for one config: prepare, train, generate, score.

    python -m bench.ts_benchmark run --config configs/bench/etth2.yaml --out DIR --minutes 15
        [--grid ddpm ddim dpm_solver k_dpmpp_2m k_heun] [--nfe 5 10 20 50 200] [key.sub=value ...]

Each step is the product's own command in a subprocess (tools.prepare_data, train.py, generate.py), so the
benchmark measures exactly what a user runs. Real windows are every training window of the prepared file,
mapped from [-1, 1] to [0, 1]: with `range: auto` over a series that is all train, that is the protocol's
min-max scaling over the whole series. As many windows are generated as there are real ones (the protocol),
unless `--n` caps them (then the report says so). Every (sampler, NFE) cell of the grid is generated and
scored; NFE is counted, not assumed: a sampler's step count for a target NFE is the largest whose counted
network evaluations do not exceed it. Besides the protocol's scores, each cell reports the mean step-to-step
change |x[t+1] - x[t]| of every channel, real vs synthetic (the roughness that issue 12 is about).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from dataloader.atomic import check_out_dir, write_text_atomic
from dataloader.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def add_run_args(p: argparse.ArgumentParser) -> None:
    """Options of `run`."""
    p.add_argument("--config", required=True, help="benchmark config (configs/bench/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides (train, model, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the synthetic files and reports")
    p.add_argument("--minutes", type=float, default=15.0, help="training time cap (train.max_minutes)")
    p.add_argument("--skip-train", action="store_true", help="use the model already in train.out_dir")
    p.add_argument("--skip-prepare", action="store_true", help="use the prepared file data.prepared as it is")
    p.add_argument("--grid", nargs="+", default=None, metavar="SAMPLER",
                   help="samplers to generate with (default: the config's sample.sampler)")
    p.add_argument("--nfe", nargs="+", type=int, default=None,
                   help="network evaluations per window (default: the config's sample.steps of its sampler)")
    p.add_argument("--n", type=int, default=None, help="cap on generated windows (default: as many as real)")
    p.add_argument("--runs", type=int, default=5, help="runs per score")
    p.add_argument("--seed", type=int, default=0, help="seed of generation and scoring")
    p.add_argument("--threads", type=int, default=2, help="torch threads of training and generation")
    p.add_argument("--no-real-vs-real", action="store_true",
                   help="skip the real-vs-real row (it depends only on the data: take it once per data set)")


def steps_for_nfe(sampler: str, nfe: int, num_steps: int = 1000) -> tuple[int, int]:
    """(steps, counted NFE): the most sampler steps whose network evaluations per window stay <= `nfe`."""
    import torch

    from diffusion.samplers import sample
    from diffusion.samplers.base import CountingDenoiser, NoiseSource
    from diffusion.schedule import NoiseSchedule

    sched = NoiseSchedule("linear", num_steps)

    def counted(steps: int) -> int:
        den = CountingDenoiser(lambda x, s: torch.zeros_like(x))
        sample(sampler, den, sched, steps, NoiseSource(0, [0], (1, 4)))
        return den.nfe

    best = None
    for steps in range(1, min(nfe, num_steps) + 1):
        n = counted(steps)
        if n > nfe:
            break
        best = (steps, n)
    if best is None:
        raise UserError("--nfe", f"{sampler} needs more than {nfe} network evaluations for one step")
    return best


def roughness(x: np.ndarray) -> list[float]:
    """Mean |x[t+1] - x[t]| per channel of windows (N, T, C) in [0, 1]."""
    from evaluation.metrics.signal_stats import roughness as channel_roughness

    return channel_roughness(x.transpose(0, 2, 1)).round(6).tolist()


def _cli(args: list[str], threads: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    print("$", " ".join(args), flush=True)
    rc = subprocess.call([sys.executable, *args], cwd=ROOT, env=env)
    if rc:
        raise UserError(args[0], f"exited with code {rc}")


def real_windows(config: str, overrides: list[str]) -> tuple[np.ndarray, Any]:
    """Every train window of the config's prepared file as (N, T, C) in [0, 1]; and the config."""
    from dataloader.config import load_config
    from dataloader.prepared import PreparedFile

    cfg = load_config(config, overrides)
    pf = PreparedFile(cfg.data.prepared)
    x, _, _ = pf.batch("train", np.arange(pf.n_windows("train")))
    return ((x + 1) / 2).transpose(0, 2, 1).astype(np.float32), cfg


def run(a: argparse.Namespace) -> int:
    """`run`: prepare, train (capped), generate every grid cell, score each; write report.json / report.md."""
    from evaluation.protocol import score_protocol

    from .machine import machine_info
    from .ts_benchmark_data import load_synthetic
    from .ts_benchmark_report import run_markdown

    out = check_out_dir(a.out, "--out")
    if a.minutes <= 0 or a.runs < 1 or (a.n is not None and a.n < 1):
        raise UserError("--minutes/--runs/--n", "must be positive")
    over = list(a.overrides)
    if not a.skip_prepare:
        _cli(["-m", "tools.prepare_data", "--config", a.config, *over], a.threads)
    real, cfg = real_windows(a.config, over)
    t0 = time.time()
    if not a.skip_train:
        _cli(["train.py", "--config", a.config, *over, f"train.max_minutes={a.minutes}",
              f"train.threads={a.threads}"], a.threads)
    train_s = time.time() - t0
    samplers = a.grid or [cfg.sample.sampler]
    n = len(real) if a.n is None else min(a.n, len(real))
    out.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    floor = None
    for sampler in samplers:
        for target in a.nfe or [None]:
            steps, nfe = (cfg.sample.steps, None) if target is None else steps_for_nfe(sampler, target)
            syn_path = out / f"syn-{sampler}-{steps}.h5"
            t1 = time.time()
            _cli(["generate.py", "--config", a.config, *over, "--samples", str(n), "--out", str(syn_path),
                  "--sampler", sampler, "--steps", str(steps), "--seed", str(a.seed), "--scaled",
                  "--threads", str(a.threads)], a.threads)
            gen_s = time.time() - t1
            syn, _ = load_synthetic(str(syn_path))
            res = score_protocol(real, syn, runs=a.runs, seed=a.seed,
                                 real_vs_real=floor is None and not a.no_real_vs_real)
            floor = floor or res.get("real_vs_real")
            rows.append({"sampler": sampler, "steps": steps, "nfe": nfe, "nfe_target": target,
                         "windows": int(len(syn)), "generate_s": round(gen_s, 1), "scores": res["scores"],
                         "roughness": roughness(syn)})
            print(json.dumps(rows[-1]["scores"]), flush=True)
            syn_path.unlink()  # hundreds of MB per cell at the larger windows; the scores are what is kept
    rep = {"config": a.config, "overrides": over, "real_windows": int(len(real)), "generated_windows": n,
           "train_minutes_cap": a.minutes, "train_s": round(train_s, 1), "real_roughness": roughness(real),
           "channels": [c.name for c in cfg.data.channels], "real_vs_real": floor, "rows": rows,
           "runs": a.runs, "seed": a.seed, "threads": a.threads, "machine": machine_info()}
    write_text_atomic(out / "report.json", json.dumps(rep, indent=1) + "\n", "--out")
    write_text_atomic(out / "report.md", run_markdown(rep), "--out")
    print(f"report in {out}")
    return 0
