"""Seam benchmark for recordings of any length (diffusion/continuation.py): do the joins show?

    python -m bench.seams --checkpoint runs/seams-ctg/model.safetensors --duration 2h --recordings 8 \
        --physio ctg --out bench/results/seams_ctg
    python -m bench.seams --checkpoint runs/ecg/model.safetensors --duration 30min --physio ecg --channel MLII

Generates `--recordings` long recordings (labels drawn like the training windows, recording r from
recording_seed(seed, r) as generate.py does) with each method, and compares, across joins versus inside
windows, the step-to-step change of every channel and the physiological features (bench/seam_stats.py:
CTG FHR baseline and STV, ECG RR intervals); the target is a relative difference within 10 %. Methods:
`pinned` (the continuation, with --resample passes, default 0), `pinned-resample` (with at least one
RePaint resampling pass) and `independent` (windows sampled independently and concatenated: what the joins look like with no
continuation, the reference). Writes OUT.json, OUT.md (with machine and load) and OUT.png (the first
recording of each method, joins marked).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bench.seam_stats import ctg_rows, ecg_rows, step_change

TOL = 0.10


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.seams", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="diffusion model file (model.safetensors)")
    p.add_argument("--duration", default="2h", help="length of each recording (90s, 30min, 2h, ...)")
    p.add_argument("--recordings", type=int, default=8, help="recordings per method (default 8)")
    p.add_argument("--sampler", default="dpm_solver", help="sampler name (default dpm_solver)")
    p.add_argument("--steps", type=int, default=20, help="sampler steps per window (default 20)")
    p.add_argument("--guidance_scale", type=float, default=1.0, help="classifier-free guidance w (default 1: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the recordings (default 0)")
    p.add_argument("--overlap", type=float, default=0.25,
                   help="fraction of a window shared with the previous one (default 0.25)")
    p.add_argument("--resample", type=int, default=0, help="resampling passes of the `pinned` method")
    p.add_argument("--physio", choices=("ctg", "ecg", "none"), default="none",
                   help="physiological features compared across joins: ctg (FHR baseline, STV), ecg (RR intervals)")
    p.add_argument("--channel", default=None, help="FHR channel (ctg) or lead (ecg); default: the first "
                                                  "channel in bpm (ctg) or the first channel (ecg)")
    p.add_argument("--segment_s", type=float, default=600.0, help="ctg: feature segment length (FIGO's 10 min)")
    p.add_argument("--methods", default="pinned,pinned-resample,independent",
                   help="comma-separated: pinned (the default continuation), pinned-resample (with --resample "
                        "passes), independent (windows sampled alone and concatenated: the no-continuation floor)")
    p.add_argument("--out", required=True, help="output prefix: OUT.json, OUT.md, OUT.png")
    return p


def _independent(model: Any, n: int, row: np.ndarray, a: argparse.Namespace, seed: int) -> tuple[np.ndarray, list[int]]:
    """Windows sampled independently (noise of (seed, k)) and concatenated; joins at multiples of the window."""
    w = -(-n // model.length)
    x = model.sample(w, torch.as_tensor(row).view(1, -1).expand(w, -1), sampler=a.sampler, steps=a.steps,
                     guidance_scale=a.guidance_scale, seed=seed)
    x = torch.cat(list(x), dim=-1)[:, :n]
    return x.numpy(), [k * model.length for k in range(1, w)]


def _generate(model: Any, meta: Any, method: str, a: argparse.Namespace, n: int
              ) -> tuple[np.ndarray, list[list[int]], list[list[int]], float]:
    """(recordings (R, C, n) physical, joins per recording, inside-window centres, seconds)."""
    from dataloader.class_csv import TrainingPlan
    from dataloader.scaling import to_physical
    from diffusion.continuation import plan_windows, sample_long
    from diffusion.long_file import recording_seed

    d = meta.data
    labels = TrainingPlan(a.recordings, np.asarray(d.label_counts).reshape(-1, len(d.label_names) + 1),
                          len(d.label_names), a.seed).rows(0, a.recordings)
    plan = plan_windows(model, n, a.overlap)
    outs, joins, inside = [], [], []
    t0 = time.perf_counter()
    for r, row in enumerate(labels):
        seed = recording_seed(a.seed, r)
        if method == "independent":
            x, js = _independent(model, n, row, a, seed)
        else:
            u = a.resample if method == "pinned" else max(1, a.resample)
            x = sample_long(model, n, row, a.sampler, a.steps, a.guidance_scale, seed, overlap=a.overlap,
                            resample=u).numpy()
            js = [plan.join(k) for k in range(1, plan.n_windows)]
        bounds = [0, *js, n]
        outs.append(to_physical(np.clip(x, -1, 1)[None], *d.ranges)[0])
        joins.append(js)
        inside.append([(lo + hi) // 2 for lo, hi in zip(bounds[:-1], bounds[1:])])
    return np.stack(outs), joins, inside, time.perf_counter() - t0


def _channel(meta: Any, a: argparse.Namespace) -> int:
    names = [c["name"] for c in meta.data.channels]
    if a.channel is not None:
        return names.index(a.channel)
    if a.physio == "ctg":
        return next(i for i, c in enumerate(meta.data.channels) if c.get("unit") == "bpm")
    return 0


def _score(model: Any, x: np.ndarray, joins: list, inside: list, meta: Any, a: argparse.Namespace
           ) -> list[dict[str, Any]]:
    from diffusion.continuation import plan_windows

    fs = float(meta.data.fs)
    names = [c["name"] for c in meta.data.channels]
    plan = plan_windows(model, x.shape[-1], a.overlap)
    # the hand-over is the soft ramp (plan.ramp latent positions): the band covers it and two latent steps
    rows = step_change(x, joins, max(8, (plan.ramp // 2 + 2) * plan.factor), names, TOL)
    if a.physio == "ctg":
        rows += ctg_rows(x, joins, inside, int(round(a.segment_s * fs)), fs, _channel(meta, a), TOL)
    elif a.physio == "ecg":
        rows += ecg_rows(x, joins, fs, _channel(meta, a), TOL)
    return rows


def _plot(results: dict[str, Any], recs: dict[str, tuple[np.ndarray, list]], meta: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fs = float(meta.data.fs)
    chans = meta.data.channels
    fig, axes = plt.subplots(len(recs) * len(chans), 1, figsize=(14, 1.8 * len(recs) * len(chans)), squeeze=False)
    for m, (method, (x, joins)) in enumerate(recs.items()):
        t = np.arange(x.shape[-1]) / fs / 60
        for c, ch in enumerate(chans):
            ax = axes[m * len(chans) + c, 0]
            ax.plot(t, x[0, c], lw=0.4, color="k")
            for j in joins[0]:
                ax.axvline(j / fs / 60, color="r", lw=0.6, alpha=0.6)
            ax.set_ylabel(f"{ch['name']} [{ch.get('unit', '')}]", fontsize=7)
            ax.set_title(f"{method}: recording 0 (joins in red)", fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def _pct(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.1%}"


def _markdown(res: dict[str, Any]) -> str:
    lines = [f"# Seams of long recordings ({res['duration_s'] / 60:g} min, {res['recordings']} recordings)", "",
             f"Model: `{res['checkpoint']}` (step {res['model_step']}, sha256 {res['model_sha256'][:12]}), "
             f"sampler {res['sampler']} {res['steps']} steps, overlap {res['overlap']}, resample {res['resample']}.",
             f"Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores, torch threads "
             f"{res['machine']['torch_threads']}; load average before/after {res['load_before']} / {res['load_after']}.",
             f"Command: `{res['command']}`", "", f"Target: |join - inside| / inside within {TOL:.0%}.", ""]
    for method, r in res["methods"].items():
        ok = sum(row["within_tol"] for row in r["rows"])
        lines += [f"## {method} ({r['seconds']:.0f} s; {ok} of {len(r['rows'])} within target)", "",
                  "| statistic | join | inside | rel. diff | its s.e. | within 10 % | n join / inside |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {row['statistic']} | {row['join']:.4g} | {row['inside']:.4g} | {row['rel_diff']:+.1%} | "
                  f"{_pct(row['rel_se'])} | {'yes' if row['within_tol'] else 'no'} | "
                  f"{row['n_join']} / {row['n_inside']} |" for row in r["rows"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    from bench.machine import machine_info
    from dataloader.atomic import atomic_path
    from dataloader.duration import parse_duration
    from diffusion.checkpoint import load_model_file
    from diffusion.long_file import n_samples_of

    a = _parser().parse_args(argv)
    model, meta = load_model_file(a.checkpoint, None, "cpu")
    n = n_samples_of(parse_duration(a.duration, "--duration"), meta.data.fs)
    res: dict[str, Any] = {k: getattr(a, k) for k in ("checkpoint", "recordings", "sampler", "steps", "seed",
                                                      "overlap", "resample", "physio", "guidance_scale")}
    res.update(duration_s=n / float(meta.data.fs), model_step=int(meta.step), model_sha256=meta.sha256,
               machine=machine_info(), load_before=[round(v, 2) for v in os.getloadavg()],
               command="python -m bench.seams " + " ".join(sys.argv[1:] if argv is None else argv), methods={})
    recs = {}
    for method in a.methods.split(","):
        x, joins, inside, secs = _generate(model, meta, method, a, n)
        res["methods"][method] = {"seconds": secs, "rows": _score(model, x, joins, inside, meta, a),
                                  "joins_per_recording": len(joins[0])}
        recs[method] = (x, joins)
        print(f"{method}: {secs:.0f} s", flush=True)
    res["load_after"] = [round(v, 2) for v in os.getloadavg()]
    out = Path(a.out)
    for suffix, text in ((".json", json.dumps(res, indent=1) + "\n"), (".md", _markdown(res) + "\n")):
        with atomic_path(out.with_suffix(suffix)) as tmp:
            Path(tmp).write_text(text)
    with atomic_path(out.with_suffix(".png")) as tmp:
        _plot(res, recs, meta, Path(tmp))
    print(_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
