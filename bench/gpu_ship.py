"""The GPU job: train the models that ship under one time budget, generate, evaluate, and pack the results.

One call of the device tool runs `bash bench/gpu_job.sh` (docs/gpu.md), which installs the carried wheels and
calls this module. For each job below, in order, within the budget: train (train.py, `train.max_minutes` set
from the job's share of the budget; bf16 autocast on CUDA), generate (generate.py, a class CSV of every class
and --plot), evaluate on the test patients (eval.py), and pack the run's inference file, config, log,
newest trainer state, plots and eval report into $OUT/<name>.tar, split in parts of at most 15 MiB (the
device tool returns files of at most 16 MiB). Optimizer states stay behind (too large to return). Back
here, `tools.ship` makes models/<name>/ from the unpacked run with the eval folder and `--hardware`.

    .venv/bin/python -m bench.gpu_ship --out /tmp/gpu-out --budget_s 240 --quick   # rehearsal on CPU
A stage that fails is logged and the next job goes on; $OUT/summary.json says what ran, for how long, and why
anything stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Sequence

PART = 15 * 1024 * 1024  # bytes per returned file part

JOBS: list[dict[str, Any]] = [
    {"name": "ctg-4hz", "config": "configs/ctg/sampling-diffusion.yaml", "eval": "configs/ctg/eval.yaml",
     "prepared": "ctg-4hz.h5", "share": 0.6, "classes": "configs/ctg/demo-classes.csv",
     # 6.7 M parameters: the float16 file (13 MB) stays under the 25 MB a shipped model may have
     "overrides": ["model.size=custom", "model.unet.base_channels=48", "model.unet.channel_mult=[1,2,4,4]",
                   "model.unet.num_res_blocks=2", "model.unet.attention_levels=[3]", "model.unet.norm_groups=16"],
     "licence": "non-commercial research use with attribution (CTU-UHB Intrapartum CTG Database, PhysioNet; "
                "cite Chudacek et al. 2014)"},
    {"name": "ludb-12lead", "config": "configs/ecg/ludb-diffusion-vqvae.yaml", "eval": "configs/ecg/ludb-eval-vqvae.yaml",
     "prepared": "ludb-500hz-4992.h5", "share": 0.4, "classes": None, "first_stage_share": 0.35,
     "overrides": [], "licence": "ODC-By 1.0 (Lobachevsky University Electrocardiography Database, PhysioNet)"},
]
QUICK = ["model.size=tiny", "train.batch_size=8", "train.epoch_steps=20", "train.val_batches=1",
         "model.first_stage.train.batch_size=4", "model.first_stage.train.epoch_steps=10",
         "model.first_stage.hidden_channels=8", "model.first_stage.latent_channels=2"]
QUICK_EVAL = ["--metrics", "fid", "physio", "signal", "eval.fcn.epochs=1", "eval.fcn.max_train_windows=64",
              "eval.fcn.max_val_windows=16", "eval.n_real=64", "eval.n_floor=64"]


def _run(cmd: list[str], log: Path, timeout_s: float, env: dict[str, str]) -> dict[str, Any]:
    """Run one stage, its output appended to `log`; returns rc and seconds (rc 124 when it ran out of time)."""
    t0 = time.time()
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=max(1.0, timeout_s), env=env).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return {"rc": rc, "s": round(time.time() - t0, 1)}


def _stages(job: dict[str, Any], data: Path, runs: Path, train_s: float, quick: bool) -> list[tuple[str, list[str]]]:
    """(stage, command) of one job: train (a learned first stage, then the diffusion model, each with its
    share of `train_s` seconds: a time-capped first stage ends "stopped early", and `--stage all` would not
    go on), generate, eval."""
    py = sys.executable
    run = runs / job["name"]
    common = [f"data.prepared={data / job['prepared']}", f"train.out_dir={run / 'model'}",
              *(QUICK if quick else job["overrides"])]
    fs_s = train_s * job.get("first_stage_share", 0.0)
    train = [py, "train.py", "--config", job["config"], "--no-progress"]
    stages = []
    if fs_s:
        common.append(f"model.first_stage.out_dir={run / 'first_stage'}")
        stages.append(("train_first_stage", [*train, "--stage", "first_stage", *common,
                                             f"model.first_stage.train.max_minutes={fs_s / 60:.2f}",
                                             "model.first_stage.train.max_steps=1000000"]))
    stages.append(("train", [*train, "--stage", "diffusion", *common, f"train.max_minutes={(train_s - fs_s) / 60:.2f}",
                             "train.max_steps=1000000"]))
    samples = "32" if quick else (job["classes"] or "1000")
    stages += [
        ("generate", [py, "generate.py", "--config", job["config"], "--samples", samples,
                      "--out", str(run / "synthetic.h5"), "--plot", str(run / "plot"), *common]),
        ("eval", [py, "eval.py", "--config", job["eval"], "--synthetic", str(run / "synthetic.h5"),
                  "--out", str(run / "eval"), f"eval.fcn.dir={runs / 'fcn'}", *common,
                  *(QUICK_EVAL if quick else [])]),
    ]
    return stages


def _pack(run: Path, out: Path, name: str) -> list[str]:
    """$OUT/<name>.tar of what `tools.ship` and the docs need (not the optimizer state), in parts <= PART."""
    files = [p for p in run.rglob("*") if p.is_file() and "checkpoints" not in p.parts and p.suffix != ".h5"]
    epoch_plots: dict[Path, Path] = {}  # plots/ folder -> its last epoch plot (each is 1-2 MB)
    for p in sorted(f for f in files if f.parent.name == "plots"):
        epoch_plots[p.parent] = p
    keep = [p for p in files if p.parent.name != "plots"] + list(epoch_plots.values())
    newest: dict[Path, Path] = {}  # run folder -> its newest checkpoint's trainer state (resume facts, card)
    for s in sorted(run.rglob("checkpoints/step-*/trainer_state.json")):
        newest[s.parents[2]] = s
    keep += list(newest.values())
    tar = out / f"{name}.tar"
    with tarfile.open(tar, "w") as t:
        for p in sorted(keep):
            t.add(p, arcname=str(p.relative_to(run.parent)))
    data = tar.read_bytes()
    if len(data) <= PART:
        return [tar.name]
    tar.unlink()
    parts = []
    for i in range(0, len(data), PART):
        part = out / f"{name}.tar.part{i // PART:02d}"
        part.write_bytes(data[i:i + PART])
        parts.append(part.name)
    return parts


def run_jobs(out: Path, data: Path, runs: Path, budget_s: float, quick: bool, names: Sequence[str],
             tail_s: float) -> dict[str, Any]:
    """The jobs `names` within `budget_s` seconds, each in its slot (its share of the budget), of which
    `tail_s` is kept for generation and eval; returns the summary (also written to out/summary.json)."""
    import torch

    t0 = time.time()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if torch.cuda.is_available():
        env.setdefault("ACCELERATE_MIXED_PRECISION", "bf16")
    summary: dict[str, Any] = {"budget_s": budget_s, "quick": quick, "tail_s": tail_s,
                               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                               "torch": torch.__version__, "jobs": {}}
    jobs = [j for j in JOBS if j["name"] in names]
    total = sum(j["share"] for j in jobs)
    slot_end = 0.0
    for job in jobs:
        slot_end += budget_s * job["share"] / total
        train_s = max(10.0, slot_end - (time.time() - t0) - tail_s)
        res: dict[str, Any] = {"train_s": round(train_s, 1)}
        for stage, cmd in _stages(job, data, runs, train_s, quick):
            # training stops itself at max_minutes (and saves); the later stages get what is left of the slot
            limit = train_s + 120 if stage.startswith("train") else slot_end - (time.time() - t0)
            res[stage] = _run(cmd, out / f"{job['name']}.log", limit, env)
            if res[stage]["rc"] != 0:
                break
        res["files"] = _pack(runs / job["name"], out, job["name"]) if (runs / job["name"]).is_dir() else []
        summary["jobs"][job["name"]] = res
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    summary["wall_s"] = round(time.time() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_ship", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder of the returned files ($OUT on the device machine)")
    p.add_argument("--data", default=".gpu/data", help="folder of the prepared files (made by bench/gpu_prepare.sh)")
    p.add_argument("--runs", default="/tmp/gpu-runs", help="folder of the training runs (not returned whole)")
    p.add_argument("--budget_s", type=float, default=480.0, help="seconds for every job together")
    p.add_argument("--quick", action="store_true", help="tiny models and few windows: a CPU rehearsal of the job")
    p.add_argument("--jobs", nargs="+", default=[j["name"] for j in JOBS], choices=[j["name"] for j in JOBS],
                   help="which models to train (default: all, sharing the budget by their `share`)")
    p.add_argument("--tail_s", type=float, default=None,
                   help="seconds kept per job for generation and eval (default: 100 on a GPU, 120 on CPU)")
    a = p.parse_args(argv)
    out, runs = Path(a.out), Path(a.runs)
    out.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    import torch

    tail = a.tail_s if a.tail_s is not None else (100.0 if torch.cuda.is_available() else 120.0)
    s = run_jobs(out, Path(a.data), runs, a.budget_s, a.quick, a.jobs, tail)
    print(json.dumps(s, indent=1))
    return 0 if all(all(v.get("rc", 0) == 0 for v in j.values() if isinstance(v, dict)) for j in s["jobs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
