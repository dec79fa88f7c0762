"""Reconstruction quality of every first stage on CTG validation patients (4 Hz, windows of 8192 samples).

    python -m bench.first_stage_recon [--windows 256]

Stages: identity, sampling (factor 8, sinc), and the learned ones whose trained files exist:
VAE (runs/ctg-vae, configs/ctg/vae-only.yaml), VQ-VAE (runs/ctg-vqvae, configs/ctg/vqvae-only.yaml) and VQ-GAN
(runs/ctg-vqgan: vqvae-only.yaml with model.first_stage.type=vqgan). Train them first, e.g. on a CPU with a
time box:  python train.py --config configs/ctg/vqvae-only.yaml model.first_stage.train.max_minutes=20
For each: per-channel RMSE (physical units) and PRD (%) of decode(encode(x)) over `--windows` validation windows
spread evenly over the val split (patients never seen in training), the compression ratio in values
(C x L / C' x L') and, for the VQ stages, in bits (16-bit samples vs log2(codebook) bits per latent vector),
and how the stage was trained (steps, minutes, from its log.csv). Targets for the VQ-VAE at compression 8:
FHR RMSE <= 3 bpm, UC RMSE <= 5. Writes bench/results/first_stage_recon.json and .md.
"""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from bench.machine import machine_info
from dataloader.cli import make_parser, run_main

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = ROOT / "data" / "ctg-4hz.h5"
LEARNED = {"vae": "runs/ctg-vae", "vqvae": "runs/ctg-vqvae", "vqgan": "runs/ctg-vqgan"}
TARGETS = {"FHR": 3.0, "UC": 5.0}


def _load_learned(out_dir: Path, c: int, n: int) -> Optional[tuple[Any, dict[str, Any]]]:
    from first_stage.config import FirstStageConfig
    from first_stage import build_first_stage
    from first_stage.files import first_stage_file, read_first_stage_file

    path = first_stage_file(out_dir)
    if not path.is_file():
        return None
    meta, weights = read_first_stage_file(path)
    stage = build_first_stage(FirstStageConfig(**meta["first_stage"]), c, n)
    stage.load_state_dict(weights, strict=True)
    return stage.eval(), meta


def _training(out_dir: Path) -> dict[str, Any]:
    log = out_dir / "log.csv"
    if not log.is_file():
        return {}
    rows = list(csv.DictReader(open(log)))
    if not rows:
        return {}
    last = rows[-1]
    return {"steps": int(last["step"]), "minutes": round(float(last["elapsed_s"]) / 60, 1), "device": "cpu",
            "log_last_row": {k: v for k, v in last.items() if k.startswith(("rmse", "prd"))}}


def evaluate(stage: Any, ds: Any, idx: np.ndarray, batch: int = 16) -> dict[str, Any]:
    """Per-channel RMSE and PRD of reconstructions over the windows `idx` of `ds`, physical units."""
    from first_stage.train_loop import recon_errors

    e2 = x2 = 0.0
    n = 0
    t = time.perf_counter()
    xs, rs = [], []
    with torch.no_grad():
        for b in range(0, len(idx), batch):
            x = ds.get_batch(idx[b:b + batch])[0]
            r = stage(x).clamp(-1, 1)
            xs.append(ds.to_physical(x))
            rs.append(ds.to_physical(r))
    x, r = np.concatenate(xs), np.concatenate(rs)
    rmse, prd = recon_errors(x, r)
    names = [str(c["name"]) for c in ds.channels]
    return {"rmse": {k: round(float(v), 3) for k, v in zip(names, rmse)},
            "prd_percent": {k: round(float(v), 3) for k, v in zip(names, prd)},
            "seconds": round(time.perf_counter() - t, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    from dataloader.dataset import WindowDataset
    from first_stage import IdentityFirstStage, SamplingFirstStage

    p = make_parser("bench.first_stage_recon", __doc__.split("\n\n")[0])
    p.add_argument("--windows", type=int, default=256, help="validation windows (spread over the val split)")
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    ds = WindowDataset(DATA, "val")
    c, n = len(ds.channels), int(ds.window_len)
    idx = np.unique(np.linspace(0, len(ds) - 1, min(a.windows, len(ds))).round().astype(np.int64))
    stages: dict[str, tuple[Any, dict[str, Any]]] = {"identity": (IdentityFirstStage(c, n), {}),
                                                      "sampling": (SamplingFirstStage(c, n, 8), {})}
    for name, folder in LEARNED.items():
        got = _load_learned(ROOT / folder, c, n)
        if got is not None:
            stages[name] = got
    rows = []
    for name, (stage, meta) in stages.items():
        cl, ll = stage.latent_shape(c, n)
        row: dict[str, Any] = {"stage": name, "latent": [cl, ll], "compression_values": round(c * n / (cl * ll), 2)}
        if name in ("vqvae", "vqgan"):
            k = int(meta["first_stage"]["codebook_size"])
            row["compression_bits"] = round(c * n * 16 / (ll * math.log2(k)), 1)
        if name == "sampling":
            row["factor"] = 8
        if meta:
            fsc = meta["first_stage"]
            row["config"] = {k: fsc[k] for k in ("factor", "latent_channels", "hidden_channels", "codebook_size",
                                                 "ffl_weight", "kl_weight") if k in fsc}
            row["training"] = _training(ROOT / LEARNED[name])
            row["scale"] = round(float(meta["scale"]), 4)
        row.update(evaluate(stage, ds, idx))
        if name == "vqvae":
            row["targets"] = {ch: {"rmse_max": t, "met": row["rmse"][ch] <= t} for ch, t in TARGETS.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    res = {"machine": machine_info(), "data": str(DATA.relative_to(ROOT)), "split": "val", "windows": int(len(idx)),
           "window_len": n, "fs": float(ds.fs), "val_patients": len(ds.patients()),
           "results": rows,
           "note": "learned stages trained on this CPU (2 cores shared with other jobs, load ~10) for the minutes "
                   "given under training; no GPU was available to this task"}
    RESULTS.mkdir(exist_ok=True)
    from dataloader.atomic import write_text_atomic

    write_text_atomic(RESULTS / "first_stage_recon.json", json.dumps(res, indent=1) + "\n")
    write_text_atomic(RESULTS / "first_stage_recon.md", _markdown(res))
    return 0


def _markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [f"# First-stage reconstruction on CTG validation patients ({res['windows']} windows of "
             f"{res['window_len']} samples at {res['fs']:g} Hz)", "",
             f"Machine: {m.get('cpu', '')}, {m.get('cores', '')} cores, torch {m.get('torch', '')}. {res['note']}.", "",
             "| stage | latent (C' x L') | compression (values) | compression (bits) | FHR RMSE (bpm) | UC RMSE (nd) "
             "| FHR PRD % | UC PRD % | training |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["results"]:
        tr = r.get("training") or {}
        lines.append(f"| {r['stage']} | {r['latent'][0]} x {r['latent'][1]} | {r['compression_values']} | "
                     f"{r.get('compression_bits', '')} | {r['rmse'].get('FHR')} | {r['rmse'].get('UC')} | "
                     f"{r['prd_percent'].get('FHR')} | {r['prd_percent'].get('UC')} | "
                     + (f"{tr['steps']} steps, {tr['minutes']} min CPU" if tr else "fixed") + " |")
    vq = next((r for r in res["results"] if r["stage"] == "vqvae"), None)
    if vq:
        lines += ["", "VQ-VAE targets (compression 8): " + ", ".join(
            f"{ch} RMSE {vq['rmse'][ch]} <= {t['rmse_max']}: {'met' if t['met'] else 'NOT met'}"
            for ch, t in vq["targets"].items())]
    lines += ["", "PRD = 100 sqrt(sum e^2 / sum x^2) in physical units (FHR around 140 bpm makes its PRD small).",
              "Compression (bits): 16-bit samples in, log2(codebook size) bits per latent vector out."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
