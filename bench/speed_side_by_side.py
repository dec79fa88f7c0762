"""Training and evaluation speed of an older commit and the current tree, side by side in one run.

    nice python -m bench.speed_side_by_side [--base 81c55ba] [--pairs 3] [--quick]

The older commit (`--base`, default 81c55ba: the landed commit before the speed work of issue 14) is checked
out into a temporary `git worktree add --detach`, removed afterwards; the current tree (uncommitted changes
included) is measured where it is. Measurements alternate A (base), B (current), A, B, ... for `--pairs` pairs,
each in a fresh process (bench/speed_child.py, the same measuring code for both) with the same environment:
the Makefile's GLIBC_TUNABLES, OMP_NUM_THREADS = torch threads = `--threads`; the load average is read
before and after each. Both train `configs/ctg/diffusion-identity.yaml` at its base size (2 x 2048 windows at
1 Hz), batch 16, on the same synthetic CTU-UHB-shaped recordings (written and prepared once by the current
tree: speed does not depend on the values, and the bench needs no real data). Figures per measurement: windows/s
of the real training loop, the bare step, the optimizer's share of it, seconds per network evaluation at batch
16 and 64, peak RSS, and the fraction of the dense fp32 matmul rate measured in the same process. Ratios are
taken within each pair (B against the A next to it), so load that comes and goes hits both sides alike.
Writes bench/results/speed_side_by_side_<base>_<head>_<machine>.json and .md (`-quick` added in quick mode).
"""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from bench.machine import machine_info, machine_slug

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/ctg/diffusion-identity.yaml"
BASE = "81c55ba"
# 6 loop steps (the first is left out: 4 step times) and 2 repeats: about 15 step-times per measurement, a few
# minutes on 2 loaded cores; interleaved pairs, not long repeats, are what makes the ratios fair
FULL = {"size": "base", "batch": 16, "steps": 6, "batches": [16, 64], "repeats": 2, "window": None}
QUICK = {"size": "tiny", "batch": 4, "steps": 3, "batches": [2, 4], "repeats": 1, "window": 256}
PATIENTS, MINUTES = 14, 60               # synthetic recordings: 26 windows of 2048 s each at a 60 s stride


def makefile_tunables(root: Path = ROOT) -> str:
    """GLIBC_TUNABLES as the Makefile exports it (the one place the project sets it)."""
    m = re.search(r"^export GLIBC_TUNABLES \?= *(\S+)", (root / "Makefile").read_text(), re.M)
    if m is None:
        raise SystemExit("error: Makefile: no `export GLIBC_TUNABLES ?= ...` line")
    return m.group(1)


def write_ctg_source(root: Path, patients: int = PATIENTS, minutes: int = MINUTES, seed: int = 0) -> None:
    """CTU-UHB-shaped recordings under `root`: signals/<id>.csv.gz (FHR, UC at 4 Hz) and labels.csv with the
    columns configs/ctg/data-ctu-uhb.yaml reads (pH, Deliv. type, Sex, Apgar5), every label class present."""
    rng = np.random.default_rng(seed)
    (root / "signals").mkdir(parents=True, exist_ok=True)
    n = minutes * 60 * 4
    t = np.arange(n) / 4
    rows = ["ID,pH,Deliv. type,Sex,Apgar5"]
    for p in range(patients):
        fhr = 140 + 10 * np.sin(2 * np.pi * t / (300 + 20 * p)) + 3 * rng.standard_normal(n)
        uc = 20 + 15 * np.maximum(0, np.sin(2 * np.pi * t / 180)) + rng.standard_normal(n)
        text = "FHR,UC\n" + "\n".join(f"{a:.2f},{b:.2f}" for a, b in zip(fhr, uc)) + "\n"
        (root / "signals" / f"{1001 + p}.csv.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
        rows.append(f"{1001 + p},{(7.0, 7.1, 7.3)[p % 3]},{1 + p % 2},{1 + (p // 2) % 2},{(5, 9)[p % 4 == 0]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def overrides(data: Path, mode: dict[str, Any]) -> list[str]:
    """The config overrides both sides train with (data under `data`, the mode's size and batch)."""
    out = [f"data.source={data / 'signals'}", f"data.labels={data / 'labels.csv'}",
           f"data.prepared={data / 'ctg-1hz.h5'}", f"model.size={mode['size']}",
           f"train.batch_size={mode['batch']}", "train.val_batches=1", "train.plot_every=0", "train.seed=0"]
    return out + ([f"data.window={mode['window']}"] if mode["window"] else [])


def prepare_data(data: Path, mode: dict[str, Any]) -> list[str]:
    """Write and prepare the synthetic recordings once (current tree's pipeline); returns the overrides."""
    from dataloader.config import load_config
    from dataloader.prepare import prepare

    write_ctg_source(data)
    ov = overrides(data, mode)
    prepare(load_config(ROOT / CONFIG, ov), workers=1)
    return ov


@contextlib.contextmanager
def base_worktree(commit: str, parent: Path) -> Iterator[tuple[Path, str]]:
    """`git worktree add --detach` of `commit` under `parent`; yields (path, full hash); removed afterwards."""
    path = parent / "base"
    full = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
    _git("worktree", "add", "--detach", "--quiet", str(path), full)
    try:
        yield path, full
    finally:
        _git("worktree", "remove", "--force", str(path))


def _git(*args: str) -> str:
    r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"error: git {' '.join(args[:2])}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout.strip()


def head_label() -> str:
    """Short hash of HEAD, with '-dirty' when the tree has uncommitted changes to tracked files."""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return _git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")


def run_child(root: Path, ov: Sequence[str], mode: dict[str, Any], threads: int, env: dict[str, str]
              ) -> dict[str, Any]:
    """One measurement of the tree at `root` in a fresh process (cwd: this tree, for the measuring code)."""
    cmd = [sys.executable, "-m", "bench.speed_child", "--root", str(root), "--config", CONFIG, "--set", *ov,
           "--steps", str(mode["steps"]), "--batches", *map(str, mode["batches"]),
           "--repeats", str(mode["repeats"]), "--threads", str(threads)]
    load0, t0 = os.getloadavg(), time.time()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"error: measurement of {root}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res.update(loadavg_before=list(load0), loadavg_after=list(os.getloadavg()), wall_s=time.time() - t0)
    return res


def figures(m: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of one measurement (medians of its repeats)."""
    bare = statistics.median(m["bare_step_s"])
    full = m["batch"] / m["train_windows_per_s"]
    out = {"train_windows_per_s": m["train_windows_per_s"], "full_step_s": full, "bare_step_s": bare,
           "full_over_bare": full / bare,
           "optimizer_s": statistics.median(m["optimizer_s"]),
           "optimizer_share": statistics.median(m["optimizer_s"]) / bare,
           "train_fraction_of_peak": m["train_gflop"] / bare / m["matmul_gflops_per_s"],
           "matmul_gflops_per_s": m["matmul_gflops_per_s"], "peak_rss_train_mib": m["peak_rss_train_mib"],
           "peak_rss_mib": m["peak_rss_mib"]}
    for b, ts in m["eval_s"].items():
        s = statistics.median(ts)
        out[f"eval_s_b{b}"] = s
        out[f"eval_fraction_of_peak_b{b}"] = m["eval_gflop"][b] / s / m["matmul_gflops_per_s"]
    return out


# figures where larger is better: the pair ratio B/A is then a speed-up; for the others A/B is
RATE_KEYS = ("train_windows_per_s", "train_fraction_of_peak", "matmul_gflops_per_s")


def summarise(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Per side the median of each figure over the pairs; per figure the median of the pair ratios
    (speed-up of B over A: B/A for rates, A/B for times and memory)."""
    fa = [figures(a) for a, _ in pairs]
    fb = [figures(b) for _, b in pairs]
    keys = [k for k in fa[0] if k in fb[0]]
    med = {side: {k: statistics.median(f[k] for f in fs) for k in keys} for side, fs in (("A", fa), ("B", fb))}
    ratio = {k: statistics.median((b[k] / a[k]) if k in RATE_KEYS or "fraction" in k or k == "full_over_bare"
                                  else (a[k] / b[k]) for a, b in zip(fa, fb)) for k in keys}
    return {"A": med["A"], "B": med["B"], "speedup_B_over_A": ratio,
            "pair_ratios_train": [b["train_windows_per_s"] / a["train_windows_per_s"] for a, b in zip(fa, fb)]}


ROWS = [("training loop, windows/s", "train_windows_per_s", "{:.2f}"), ("full step, s", "full_step_s", "{:.2f}"),
        ("bare step, s", "bare_step_s", "{:.2f}"), ("full / bare", "full_over_bare", "{:.2f}"),
        ("optimizer.step, s", "optimizer_s", "{:.3f}"), ("optimizer share of the bare step", "optimizer_share",
                                                           "{:.1%}"),
        ("training, fraction of the matmul peak", "train_fraction_of_peak", "{:.0%}"),
        ("matmul peak in the same process, GFLOP/s", "matmul_gflops_per_s", "{:.0f}"),
        ("peak RSS after training, MiB", "peak_rss_train_mib", "{:.0f}"), ("peak RSS at the end, MiB",
                                                                           "peak_rss_mib", "{:.0f}")]


def markdown(res: dict[str, Any]) -> str:
    """The result as a short markdown table (medians per side, median of the pair ratios)."""
    m, s, mode = res["machine"], res["summary"], res["mode"]
    rows = ROWS[:7] + [(f"network evaluation, batch {b}, s", f"eval_s_b{b}", "{:.3f}") for b in mode["batches"]] + \
        [(f"evaluation batch {b}, fraction of the peak", f"eval_fraction_of_peak_b{b}", "{:.0%}")
         for b in mode["batches"]] + ROWS[7:]
    lines = [f"# Speed side by side: A = {res['A']['label']}, B = {res['B']['label']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']}, Python "
             f"{m['python']}; {res['threads']} threads (OMP_NUM_THREADS), GLIBC_TUNABLES=`{res['glibc_tunables']}`; "
             f"{m['utc']}. Config `{CONFIG}` size {mode['size']}, batch {mode['batch']}, {mode['steps']} loop "
             f"steps, {res['pairs']} interleaved pairs (A, B, A, B, ...), each measurement in a fresh process.",
             f"Load average (1 min) before/after each measurement: "
             + ", ".join(f"{r['side']}{r['pair']} {r['loadavg_before'][0]:.1f}/{r['loadavg_after'][0]:.1f}"
                         for r in res["runs"]) + ".", "",
             "| figure | A (median) | B (median) | B vs A (median of pair ratios) |", "| --- | --- | --- | --- |"]
    for name, k, fmt in rows:
        if k in s["A"]:
            lines.append(f"| {name} | {fmt.format(s['A'][k])} | {fmt.format(s['B'][k])} | "
                         f"{s['speedup_B_over_A'][k]:.2f}x |")
    lines += ["", "Ratios: B/A for rates, fractions and full/bare; A/B for times and memory (above 1 = B faster "
              "or smaller). Training windows/s per pair: " + ", ".join(f"{r:.2f}x" for r in s["pair_ratios_train"])
              + f". Optimizers: A {res['A']['optimizer']}, B {res['B']['optimizer']}.",
              "Spread (load): single loop steps took " + ", ".join(
                  f"{k} {min(t for r in res['runs'] if r['side'] == k for t in r['train_steps_s']):.1f}-"
                  f"{max(t for r in res['runs'] if r['side'] == k for t in r['train_steps_s']):.1f} s"
                  for k in ("A", "B")) + "; a ratio is only as good as this spread allows.",
              f"Command: `nice -n {res.get('nice', 0)} python -m bench.speed_side_by_side --base {res['A']['label']} "
              f"--pairs {res['pairs']}{' --quick' if res['quick'] else ''}`.", ""]
    return "\n".join(lines)


def measure_pairs(base: str, pairs: int, mode: dict[str, Any], threads: int, quiet: bool = False
                  ) -> dict[str, Any]:
    """Prepare the data and the base worktree, then A, B, A, B, ... in fresh processes."""
    tunables = makefile_tunables()
    env = dict(os.environ, GLIBC_TUNABLES=tunables, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ov = prepare_data(Path(tmp) / "data", mode)
        with base_worktree(base, Path(tmp)) as (base_root, base_full):
            sides = {"A": (base_root, base_full[:7]), "B": (ROOT, head_label())}
            for pair in range(pairs):
                for side, (root, label) in sides.items():
                    r = run_child(root, ov, mode, threads, env)
                    r.update(side=side, pair=pair, label=label)
                    runs.append(r)
                    if not quiet:
                        print(f"{side}{pair} ({label}): {r['train_windows_per_s']:.2f} windows/s, load "
                              f"{r['loadavg_before'][0]:.1f} -> {r['loadavg_after'][0]:.1f}", flush=True)
    by = [(runs[2 * i], runs[2 * i + 1]) for i in range(pairs)]
    side = {k: {"label": runs[i]["label"], "optimizer": runs[i]["optimizer"], "params": runs[i]["params"],
                "param_tensors": runs[i]["param_tensors"]} for i, k in ((0, "A"), (1, "B"))}
    return {"benchmark": "speed_side_by_side", "machine": machine_info(), "threads": threads, "nice": os.nice(0),
            "glibc_tunables": tunables, "mode": mode, "pairs": pairs, **side, "summary": summarise(by),
            "runs": runs}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from dataloader.atomic import write_text_atomic
    from dataloader.cli import make_parser

    p = make_parser("python -m bench.speed_side_by_side", __doc__.split("\n\n")[0])
    p.add_argument("--base", default=BASE, help="the older commit, side A")
    p.add_argument("--pairs", type=int, default=3, help="interleaved A, B pairs")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every measurement")
    p.add_argument("--quick", action="store_true", help="tiny model, 256-sample windows, 3 steps (a smoke run)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder of the JSON and .md")
    a = p.parse_args(argv)
    # a terminated bench still removes its worktree and temporary data (SystemExit runs the finally clauses, and
    # subprocess.run kills the measurement it waits for)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.pairs < 1 or a.threads < 1:
        p.error("--pairs and --threads must be >= 1")
    res = measure_pairs(a.base, a.pairs, QUICK if a.quick else FULL, a.threads)
    res["quick"] = a.quick
    name = (f"speed_side_by_side_{res['A']['label']}_{res['B']['label']}_{machine_slug(res['machine']['cpu'])}"
            + ("-quick" if a.quick else ""))
    md = markdown(res)
    a.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(a.out / f"{name}.json", json.dumps(res, indent=1) + "\n")
    write_text_atomic(a.out / f"{name}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    from dataloader.cli import run_main

    run_main(main)
