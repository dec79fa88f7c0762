"""Ablation of the training recipe at an equal CPU budget (issue 12): which defaults the schema should have.

    python -m bench.recipe_ablation [--data etth2 sines] [--only NAME ...] [--lanes 2] [--budget 1600]

Every recipe is trained from scratch on each data set by `python -m bench.ts_benchmark run` (prepare, train,
generate as many windows as real ones with the config's sampler, score with the TimeGAN / Diffusion-TS
protocol, 5 runs), `--lanes` recipes at a time, one torch thread each, so that each has one core. The budget
is optimizer steps x batch: `--budget` steps at batch 64, proportionally fewer at larger batches, with the
learning-rate schedule run to its end; each run's wall time is reported beside it. The real-vs-real row is
scored once per data set. Results: bench/results/recipe_ablation.md and .json.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from dataloader.atomic import write_text_atomic
from dataloader.cli import make_parser, run_main

from .machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = {"etth2": "configs/bench/etth2.yaml", "sines": "configs/bench/sines.yaml"}

# name -> (batch, overrides); "defaults" is what a config naming only its data got before issue 12
RECIPES: dict[str, tuple[int, list[str]]] = {
    "eps linear lr2e-4 b32 (old schema defaults)": (32, ["model.diffusion.parameterization=eps",
                                                         "model.diffusion.schedule=linear", "train.lr=2.0e-4"]),
    "v cosine lr1e-3 b64": (64, ["model.diffusion.parameterization=v", "model.diffusion.schedule=cosine"]),
    "x0 cosine lr1e-3 b64": (64, ["model.diffusion.parameterization=x0", "model.diffusion.schedule=cosine"]),
    "v linear lr1e-3 b64": (64, ["model.diffusion.parameterization=v", "model.diffusion.schedule=linear"]),
    "v cosine lr1e-3 b128": (128, ["model.diffusion.parameterization=v", "model.diffusion.schedule=cosine"]),
    "x0 cosine lr1e-3 b128": (128, ["model.diffusion.parameterization=x0", "model.diffusion.schedule=cosine"]),
    "v cosine lr1e-3 b64 min-SNR 5": (64, ["model.diffusion.parameterization=v", "model.diffusion.schedule=cosine",
                                           "model.diffusion.min_snr_gamma=5"]),
    "v cosine lr1e-3 b64 Fourier auto": (64, ["model.diffusion.parameterization=v",
                                              "model.diffusion.schedule=cosine", "model.diffusion.fourier_weight=auto"]),
    "edm edm lr1e-3 b64": (64, ["model.diffusion.parameterization=edm", "model.diffusion.schedule=edm"]),
}


def _data_overrides(data: str, tmp: Path) -> list[str]:
    """Prepared file (and for Sines its generated CSV) in the scratch folder."""
    return [f"data.prepared={tmp}/{data}.h5"] + ([f"data.source={tmp}/sines"] if data == "sines" else [])


def _command(data: str, name: str, batch: int, overrides: list[str], budget: int, tmp: Path,
             floor: bool) -> list[str]:
    slug = "".join(c if c.isalnum() else "-" for c in name)
    steps = max(1, budget * 64 // batch)
    over = [*_data_overrides(data, tmp), f"train.out_dir={tmp}/{data}-{slug}", f"train.batch_size={batch}",
            f"train.max_steps={steps}", f"train.epoch_steps={steps}", "train.plot_every=0", *overrides]
    return [sys.executable, "-m", "bench.ts_benchmark", "run", *over, "--config", DATA[data],
            "--out", str(tmp / f"{data}-{slug}-out"), "--threads", "1", "--minutes", "60", "--skip-prepare"] + \
        ([] if floor else ["--no-real-vs-real"])


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m bench.recipe_ablation", __doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", choices=list(DATA), default=list(DATA), help="data sets")
    p.add_argument("--only", nargs="+", choices=list(RECIPES), default=None, help="recipes to run")
    p.add_argument("--lanes", type=int, default=2, help="recipes trained at the same time (one core each)")
    p.add_argument("--budget", type=int, default=1600, help="optimizer steps at batch 64 (scaled by 64/batch)")
    p.add_argument("--tmp", default="/tmp/physiodiff-ablation", help="scratch folder (models, generated files)")
    p.add_argument("--collect", action="store_true", help="only write the results of the runs already in --tmp")
    a = p.parse_args(argv)
    tmp = Path(a.tmp)
    if a.collect:
        write_results(tmp, a)
        return 0
    tmp.mkdir(parents=True, exist_ok=True)
    jobs = []
    for data in a.data:
        # prepare once per data set before the lanes start, so that parallel runs never write the same file
        if data == "sines":
            subprocess.run([sys.executable, "-m", "tools.make_sines", "--out", str(tmp / "sines")], cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "tools.prepare_data", "--config", DATA[data],
                        *_data_overrides(data, tmp)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        for i, name in enumerate(a.only or RECIPES):
            batch, over = RECIPES[name]
            jobs.append((data, name, _command(data, name, batch, over, a.budget, tmp, floor=i == 0)))
    running: list[tuple[Any, ...]] = []
    t0 = time.time()
    while jobs or running:
        while jobs and len(running) < a.lanes:
            data, name, cmd = jobs.pop(0)
            log = open(tmp / f"{data}-{len(running)}-{int(time.time())}.log", "w")
            running.append((data, name, subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log))
            print(f"[{time.time() - t0:6.0f} s] start {data}: {name}", flush=True)
        time.sleep(5)
        for job in [j for j in running if j[2].poll() is not None]:
            running.remove(job)
            job[3].close()
            print(f"[{time.time() - t0:6.0f} s] done {job[0]}: {job[1]} (exit {job[2].returncode})", flush=True)
    write_results(tmp, a)
    return 0


def write_results(tmp: Path, a: Any) -> None:
    """Collect every run's report.json into bench/results/recipe_ablation.{json,md}."""
    out: dict[str, Any] = {"budget_steps_at_b64": a.budget, "lanes": a.lanes, "machine": machine_info(), "runs": []}
    for data in DATA:  # every run on disk, not only this call's (runs may come from several calls)
        for name in RECIPES:
            slug = "".join(c if c.isalnum() else "-" for c in name)
            f = tmp / f"{data}-{slug}-out" / "report.json"
            if f.is_file():
                out["runs"].append({"data": data, "recipe": name, **json.loads(f.read_text())})
    write_text_atomic(RESULTS / "recipe_ablation.json", json.dumps(out, indent=1) + "\n")
    write_text_atomic(RESULTS / "recipe_ablation.md", markdown(out))


def markdown(rep: dict[str, Any]) -> str:
    """One table per data set: recipe, train seconds, scores (mean ± std), roughness / real per channel."""
    m = rep["machine"]
    lines = ["# Training-recipe ablation at equal budget (issue 12)", "",
             f"Each recipe trained from scratch for {rep['budget_steps_at_b64']} optimizer steps at batch 64 "
             "(proportionally fewer at larger batches), cosine LR to its end, one torch thread, "
             f"{rep['lanes']} runs side by side on {m['cores']} cores ({m['cpu']}, torch {m['torch']}, commit "
             f"{m['commit']}). Sampler: the config's (dpm_solver, 20 steps). Scores: TimeGAN / Diffusion-TS "
             "protocol, mean ± std of 5 runs, as many windows generated as real ones.", ""]
    for data in dict.fromkeys(r["data"] for r in rep["runs"]):
        runs = [r for r in rep["runs"] if r["data"] == data]
        floor = next((r["real_vs_real"] for r in runs if r.get("real_vs_real")), None) or {}
        names = list(runs[0]["rows"][0]["scores"])
        lines += [f"## {data}", "", "| recipe | train s | " + " | ".join(names) + " | roughness / real |",
                  "| --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]
        if floor:
            lines.append("| real vs real | | " + " | ".join(f"{floor[n]['mean']:.4f} ± {floor[n]['std']:.4f}"
                                                        for n in names) + " | 1.00 |")
        for r in runs:
            row = r["rows"][0]
            ratio = " ".join(f"{s / max(q, 1e-12):.2f}" for s, q in zip(row["roughness"], r["real_roughness"]))
            lines.append(f"| {r['recipe']} | {r['train_s']:.0f} | "
                         + " | ".join(f"{row['scores'][n]['mean']:.4f} ± {row['scores'][n]['std']:.4f}"
                                      for n in names) + f" | {ratio} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
