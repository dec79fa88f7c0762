"""Wall time of a full eval.py evaluation: one file of 2000 generated windows against the real test patients,
the real-vs-real floor computed afresh (not from the cache), figures included; FCN training reported apart.
Writes bench/results/eval_speed.json and eval_speed.md.

    python -m bench.eval_speed [--config configs/ctg/eval.yaml] [--synthetic FILE.h5 | --stand-in 2000]

The FCNs are trained first if missing (python -m evaluation.fcn.train; not timed here: their training time is
read from their files). Target (issue 5): the full evaluation of 2000 synthetic windows < 10 minutes on this
machine (2 shared cores), FCN training excluded.
"""
from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from dataloader.atomic import write_text_atomic
from dataloader.cli import make_parser, run_main, set_threads
from dataloader.errors import UserError

from .machine import machine_info

HERE = Path(__file__).parent
TARGET_S = 600.0


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (GRU and DTW worker processes)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m bench.eval_speed", __doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/ctg/eval.yaml", help="eval config")
    p.add_argument("--synthetic", default=None,
                   help="generated file of 2000 windows (generate.py ... --samples 2000); default: --stand-in 2000")
    p.add_argument("--stand-in", type=int, default=None, metavar="N",
                   help="instead of --synthetic, time N windows of the VALIDATION patients written as a generated "
                        "file (the evaluation's cost does not depend on who made the windows; stated in the results)")
    p.add_argument("--out", default=str(HERE / "results" / "eval_speed"), help="output path without suffix")
    p.add_argument("overrides", nargs="*", help="config overrides (key=value)")
    a = p.parse_args(argv)
    if a.synthetic is None and a.stand_in is None:
        a.stand_in = 2000
    if a.stand_in is None and not Path(a.synthetic).is_file():
        raise UserError(a.synthetic, "not found; generate it first, e.g. python generate.py --config "
                                     "configs/ctg/sampling-diffusion.yaml --samples 2000 --out " + a.synthetic)
    threads = set_threads()
    from dataloader.config import load_config
    from evaluation.fcn.store import load_or_train
    from evaluation.run import evaluate
    from evaluation.reference import eval_section, label_names, open_reference

    cfg = load_config(a.config, a.overrides)
    ev = eval_section(cfg)
    pf = open_reference(cfg, ev)
    load_or_train(pf, label_names(pf, ev), ev.fcn)                   # not timed (trained once per data file)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="eval-speed-") as tmp:
        import dataclasses

        if a.stand_in is not None:
            a.synthetic = str(_stand_in(pf, a.stand_in, Path(tmp) / f"val-patients-{a.stand_in}.h5", ev.seed))

        ev = dataclasses.replace(ev, cache_dir=str(Path(tmp) / "cache"))   # compute the floor afresh
        t0, c0 = time.perf_counter(), _cpu_s()
        rep = evaluate(cfg, ev, [a.synthetic], None, str(Path(tmp) / "out"))
        wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    floor, model = rep["rows"][0], rep["rows"][1]
    result: dict[str, Any] = {
        "machine": machine_info(), "threads": threads, "config": a.config, "overrides": a.overrides,
        "synthetic": a.synthetic, "stand_in": a.stand_in is not None, "n_synthetic": model["n"],
        "n_reference": rep["reference"]["n"],
        "reference_patients": rep["reference"]["patients"], "n_floor": floor["n"],
        "window": {"channels": len(pf.channels), "length": pf.window_len, "fs_hz": pf.fs},
        "metrics": rep["metrics"], "eval_config": rep["config"],
        "seconds": {"full_evaluation": round(wall, 1), "cpu": round(cpu, 1),
                    "model_row": model["seconds"], "floor_row": floor["seconds"],
                    "floor_total": rep["floor"]["seconds_this_run"]},
        "fcn_training_s": {lab: m.get("train_seconds") for lab, m in rep["fcns"].items()},
        "fcn_test_accuracy": {lab: m.get("test_accuracy") for lab, m in rep["fcns"].items()},
        "loadavg_start": [round(v, 2) for v in load0], "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "target_s": TARGET_S, "meets_target": wall < TARGET_S,
        "values": {"floor": floor["metrics"], "model": model["metrics"]},
    }
    out = Path(a.out)
    write_text_atomic(out.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    write_text_atomic(out.with_suffix(".md"), _markdown(result))
    print(f"full evaluation {wall:.1f} s wall ({cpu:.1f} s CPU); wrote {out.with_suffix('.json')} and .md")
    return 0


def _stand_in(pf: Any, n: int, path: Path, seed: int) -> Path:
    """n windows of the validation patients as a generated-samples file (labels included)."""
    import numpy as np

    from dataloader.synthetic import SyntheticWriter
    from evaluation.real_data import real_subset

    v = real_subset(pf, "val", n, seed)
    attrs = {"fs": pf.fs, "channels": pf.channels, "config": "", "sampler": "none (real validation patients)",
             "label_spec": [{"name": s["name"], "classes": s["classes"]} for s in pf.label_spec], "steps": 0,
             "guidance_scale": 1.0, "seed": seed, "model_sha256": "", "package_version": "bench"}
    with SyntheticWriter(path, attrs=attrs, run_key="stand-in", labels=v.y, n_channels=v.x.shape[1],
                         length=v.x.shape[2]) as w:
        for i in range(0, len(v.x), 256):
            w.append(v.x[i: i + 256].astype(np.float32))
        w.finish()
    return path


def _markdown(r: dict[str, Any]) -> str:
    m, s = r["machine"], r["seconds"]
    names = sorted(set(s["model_row"]) | set(s["floor_row"]), key=lambda k: (k == "total", k))
    lines = [
        "# Evaluation speed (bench/eval_speed.py)", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; GPU: {m['gpu'] or 'none'}; Python "
        f"{m['python']}, torch {m['torch']} ({r['threads']} threads); commit {m['commit']}; {m['utc']}. "
        f"Load average (1 min) at start {r['loadavg_start'][0]}, at end {r['loadavg_end'][0]} (the evaluation's own "
        "2 worker processes count): " + ("the machine was otherwise idle." if r['loadavg_start'][0] < 1.0 else
        "the 2 cores were shared with other jobs, so every time here is longer than on an idle machine."), "",
        f"What ran: `python eval.py --config {r['config']} --synthetic {r['synthetic']}` (every metric: "
        f"{', '.join(r['metrics'])}; figures included): {r['n_synthetic']} synthetic windows of "
        f"({r['window']['channels']}, {r['window']['length']}) at {r['window']['fs_hz']:g} Hz against "
        f"{r['n_reference']} windows of {r['reference_patients']} test patients, and the real-vs-real floor "
        f"({r['n_floor']} train-patient windows) computed afresh instead of read from its cache."
        + (" The 'synthetic' windows here are windows of the validation patients written as a generated file "
           "(--stand-in): generating 2000 windows with the CPU-trained model did not fit the session on the "
           "shared cores, and no metric's cost depends on who made the windows (DTW's lower-bound pruning aside)."
           if r["stand_in"] else ""), "",
        f"**Full evaluation: {s['full_evaluation']} s wall** ({s['cpu']} s CPU in this process and its workers); "
        f"target < {r['target_s']:.0f} s: {'met' if r['meets_target'] else 'NOT met'}. Of this, the floor row "
        f"took {s['floor_total']} s (cached per prepared file afterwards, so a later evaluation of another "
        f"file costs about {round(s['full_evaluation'] - s['floor_total'], 1)} s).", "",
        "FCN training (once per prepared file, excluded from the total): " + ", ".join(
            f"{lab} {v} s (test accuracy {r['fcn_test_accuracy'].get(lab)})" for lab, v in r["fcn_training_s"].items())
        + ".", "",
        "| step | synthetic row s | floor row s |", "|---|---|---|",
    ]
    for k in names:
        lines.append(f"| {k} | {s['model_row'].get(k, '-')} | {s['floor_row'].get(k, '-')} |")
    lines += ["", "Settings: " + json.dumps({k: r["eval_config"][k] for k in ("discriminative", "predictive", "tstr",
                                                                              "fcn", "dtw_max_len", "workers")}), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
