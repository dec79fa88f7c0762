"""Baselines vs diffusion on CTG at 1 Hz: the same prepared data, the same wall-clock training budget, the same
test patients, the same scores (docs/evaluation.md section 3, "Quality table").

    python -m bench.baselines_ctg train [--minutes 6]    # train every model in turn (train.max_minutes each)
    python -m bench.baselines_ctg generate [--n 500]     # generate.py for every trained model
    python -m bench.baselines_ctg score                  # scores + real-vs-real floor -> bench/results/baselines_ctg.*

Every model trains in its own process, one after the other, with 1 torch thread (on a shared 2-core machine, two
threads per process made OpenMP spin and slowed GRU steps ~100x), through train.py (the real loop: epochs,
validation, plots and checkpoints count against the budget as they would for a user). The diffusion model is
configs/ctg/diffusion-identity.yaml at size tiny with a flat learning rate (its 500-step warm-up and 20000-step
cosine are made for a GPU run and would leave a few-hundred-step CPU run in warm-up).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = Path("runs/baselines-ctg")
RESULTS = ROOT / "bench" / "results"
PY = sys.executable

# name -> (config, overrides); epoch_steps chosen for about one report per minute on this machine
MODELS: dict[str, tuple[str, list[str]]] = {
    "diffusion": ("configs/ctg/diffusion-identity.yaml",
                  ["model.size=tiny", "train.lr=5.0e-4", "train.lr_schedule=constant", "train.warmup_steps=20",
                   "train.epoch_steps=20"]),
    "gan": ("configs/ctg/baseline-gan.yaml", ["train.epoch_steps=20"]),
    "wgan_gp": ("configs/ctg/baseline-wgan_gp.yaml", ["train.epoch_steps=10"]),
    "lstm_gan": ("configs/ctg/baseline-lstm_gan.yaml", ["train.epoch_steps=30"]),
    "timegan": ("configs/ctg/baseline-timegan.yaml", ["train.epoch_steps=100"]),
    "timevae": ("configs/ctg/baseline-timevae.yaml", ["train.epoch_steps=60"]),
}
COMMON = ["train.max_steps=100000", "train.threads=1", "train.val_batches=2"]


def overrides(name: str, minutes: float) -> list[str]:
    cfg, ov = MODELS[name]
    return ov + COMMON + [f"train.max_minutes={minutes}", f"train.out_dir={RUNS / name}"]


def run_train(names: list[str], minutes: float) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in names:
        cfg = MODELS[name][0]
        cmd = [PY, "train.py", "--config", cfg, *overrides(name, minutes), "--no-progress"]
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        t0, c0 = time.time(), os.times()
        rc = subprocess.call(cmd, cwd=ROOT, env=env)
        c1 = os.times()
        info = {"wall_s": round(time.time() - t0, 1),
                "cpu_s": round((c1.children_user - c0.children_user) + (c1.children_system - c0.children_system), 1),
                "rc": rc, "load_avg_end": os.getloadavg()[0]}
        (ROOT / RUNS / name).mkdir(parents=True, exist_ok=True)
        (ROOT / RUNS / name / "bench_train.json").write_text(json.dumps(info))
        print(f"== {name}: {info}", flush=True)


def run_generate(names: list[str], n: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in names:
        cfg = MODELS[name][0]
        out = RUNS / name / f"{name}-{n}.h5"
        cmd = [PY, "generate.py", "--config", cfg, *overrides(name, 1), "--samples", str(n), "--out", str(out),
               "--threads", "1"]
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        t0 = time.time()
        subprocess.check_call(cmd, cwd=ROOT, env=env)
        (ROOT / RUNS / name / "bench_generate.json").write_text(json.dumps({"n": n, "wall_s": round(time.time() - t0, 1)}))


def training_facts(name: str, minutes: float) -> dict:
    """Steps, windows seen, time and parameters of a finished run (its newest checkpoint and model file)."""
    from dataloader.config import load_config
    from diffusion.checkpoint import read_model_meta
    from training.train_state import list_checkpoints, read_state

    out = ROOT / RUNS / name
    st = read_state(list_checkpoints(out)[-1])
    cfg = load_config(ROOT / MODELS[name][0], overrides(name, minutes))
    meta = read_model_meta(out / "model.safetensors")
    from safetensors.torch import load_file

    params = sum(v.numel() for v in load_file(str(out / "model.safetensors")).values())
    bench = json.loads((out / "bench_train.json").read_text())
    gen = json.loads((out / "bench_generate.json").read_text()) if (out / "bench_generate.json").is_file() else {}
    return {"config": MODELS[name][0], "overrides": overrides(name, minutes),
            "steps": st["step"], "batches": st["consumed"], "windows_seen": st["consumed"] * cfg.train.batch_size,
            "train_elapsed_s": round(st["elapsed_s"], 1), "process_wall_s": bench["wall_s"],
            "process_cpu_s": bench["cpu_s"], "load_avg_at_end": round(bench["load_avg_end"], 2),
            "weights": int(params), "model_step": meta.step, "generate_wall_s": gen.get("wall_s")}


CONDITIONAL = ("diffusion", "gan", "wgan_gp")  # the others write label -1 (no class): no label metrics for them


def _eval(files: list[str], metrics: list[str], out: Path, reuse: bool = False) -> tuple[list[str], dict]:
    # the discriminative score with 3 runs of 1000 iterations instead of 5 of 2000 (a CPU budget on the shared
    # machine; the same for every row, the floor included)
    cmd = [PY, "eval.py", "--config", "configs/ctg/eval-1hz.yaml", "--synthetic", *files, "--out", str(out),
           "--threads", "1", "--metrics", *metrics, "eval.discriminative.runs=3", "eval.discriminative.iterations=1000"]
    print(f"== {' '.join(cmd)}" + (" (reusing its report)" if reuse else ""), flush=True)
    if not reuse:
        subprocess.check_call(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    return cmd[1:], json.loads((ROOT / out / "report.json").read_text())


def run_score(names: list[str], n: int, minutes: float, reuse: bool = False) -> None:
    """eval.py on every synthetic file (and the real-vs-real floor), then the committed JSON + markdown:
    FCN-FID, discriminative score, MMD, diversity and CTG physiology for all; FCN-IS and label accuracy (do
    the windows show the label they were generated with?) for the conditional models only."""
    from bench.machine import machine_info

    files = {name: str(RUNS / name / f"{name}-{n}.h5") for name in names}
    t0 = time.time()
    cmd_all, rep_all = _eval(list(files.values()), ["fid", "discriminative", "mmd", "diversity", "physio"],
                             RUNS / "eval", reuse)
    cond = [f for name, f in files.items() if name in CONDITIONAL]
    cmd_lab, rep_lab = _eval(cond, ["is", "accuracy"], RUNS / "eval-labels", reuse) if cond else ([], {})
    result = {"what": "baselines vs diffusion on CTU-UHB CTG at 1 Hz (2 x 2048 windows), the same prepared file, "
                      "the same wall-clock training budget, the same test patients",
              "machine": machine_info(), "budget_minutes": minutes, "n_synthetic": n,
              "eval_commands": [" ".join(cmd_all), " ".join(cmd_lab)], "eval_wall_s": round(time.time() - t0, 1),
              "training": {name: training_facts(name, minutes) for name in names},
              "eval": rep_all, "eval_labels": rep_lab}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "baselines_ctg.json").write_text(json.dumps(result, indent=1, default=str))
    lines = ["# Baselines vs diffusion on CTG (bench/baselines_ctg.py)", "",
             f"Machine: {json.dumps(result['machine'])}", "",
             "| model | config | weights | steps | windows seen | training s (wall) | CPU s | load at end |",
             "|---|---|---|---|---|---|---|---|"]
    for name, t in result["training"].items():
        lines.append(f"| {name} | {t['config']} | {t['weights']:,} | {t['steps']} | {t['windows_seen']:,} | "
                     f"{t['train_elapsed_s']} | {t['process_cpu_s']} | {t['load_avg_at_end']} |")
    lines += ["", "Each run: train.max_minutes=" f"{minutes:g}" ", 1 torch thread, one after the other on a 2-core machine "
              "that other jobs shared (load average 6-13), so CPU s (the CPU time the training process got) "
              "differs between rows. The diffusion model was trained twice: its first run (70 steps, 81 CPU s) "
              "shared the CPU with this bench's own FCN training and tests, so it was repeated after the "
              "baselines; the table shows the repeat. Windows seen = batches x batch size (WGAN-GP: 6 batches "
              "of 32 per step; TimeGAN joint phase: 3 batches of 32 per step). Label accuracy (second report): "
              "the FCNs, trained on a CPU budget, predict the majority class of every window, so it does not "
              "show whether conditioning works."]
    lines += ["", "## eval.py: every model", "", f"`{' '.join(cmd_all)}`", "",
              (ROOT / RUNS / "eval" / "report.md").read_text()]
    if cond:
        lines += ["", "## eval.py: label metrics of the conditional models", "", f"`{' '.join(cmd_lab)}`", "",
                  (ROOT / RUNS / "eval-labels" / "report.md").read_text()]
    (RESULTS / "baselines_ctg.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'baselines_ctg.json'} and .md")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("train", "generate", "score"))
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--reuse", action="store_true", help="score: reuse the eval.py reports already in runs/")
    a = p.parse_args()
    if a.what == "train":
        run_train(a.models, a.minutes)
    elif a.what == "generate":
        run_generate(a.models, a.n)
    else:
        run_score(a.models, a.n, a.minutes, a.reuse)


if __name__ == "__main__":
    main()
