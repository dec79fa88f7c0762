"""Sampling speed of latent diffusion against diffusion on the signal, and the cost of each super-resolution stage.

    python -m bench.latent_speed [--nfe 20] [--batch 2]

Same 4 Hz CTG windows (2 x 8192), same UNet preset (base, from configs/ctg/diffusion-vqvae.yaml), same sampler
(ddim) and number of network evaluations (NFE):
- identity: the UNet runs on the 2 x 8192 signal;
- latent:   the UNet runs on the VQ-VAE's 2 x 1024 latent and every window is decoded (quantise + decoder),
            decoding included in the time. Target: >= 5x the identity model's windows/s.
- super-resolution (configs/ctg/sampling-diffusion-sr_vqvae.yaml): coarse model (base UNet on the 0.5 Hz
  decimated signal, sinc-decoded), up-sampling, SR model (small UNet on the VQ-VAE latent, conditioned on the
  latent of the coarse window) + decoding: seconds per window for each stage.
Weights are freshly initialised (seeded): the time of a forward pass does not depend on their values. Each time
is the median of 2 runs after a warm-up run, 1 torch thread (see THREADS), all measured in one process side by side (the
machine is shared: compare ratios, not absolute times). Writes bench/results/latent_speed.json and .md.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from bench.machine import machine_info, median_time
from dataloader.cli import make_parser, run_main

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# one thread: on this 2-core machine, shared with other jobs, 2 threads made every UNet forward ~11 s whatever its
# size (the second thread waits to be scheduled at every op); with 1 thread the times follow the work
THREADS = 1


def main(argv: Sequence[str] | None = None) -> int:
    from dataloader.config import load_config
    from dataloader.dataset import WindowDataset
    from diffusion.model import build_diffusion
    from diffusion.superres import SRPipeline, build_sr

    p = make_parser("bench.latent_speed", __doc__.split("\n\n")[0])
    p.add_argument("--nfe", type=int, default=20, help="network evaluations per window (ddim steps)")
    p.add_argument("--batch", type=int, default=2, help="windows per sampling call")
    a = p.parse_args(argv)
    torch.set_num_threads(THREADS)
    ds = WindowDataset(ROOT / "data" / "ctg-4hz.h5", "train")
    c, n, labels = len(ds.channels), int(ds.window_len), list(ds.label_classes)
    lat_cfg = load_config(ROOT / "configs/ctg/diffusion-vqvae.yaml")
    id_cfg = load_config(ROOT / "configs/ctg/diffusion-vqvae.yaml",
                         ["model.first_stage.type=identity", "model.first_stage.factor=1"])
    kw = dict(sampler="ddim", steps=a.nfe, seed=0, batch_size=a.batch)
    rows: dict[str, Any] = {}
    for name, cfg in (("identity", id_cfg), ("latent_vqvae", lat_cfg)):
        torch.manual_seed(0)
        model = build_diffusion(cfg.model, c, n, labels).eval()
        t = median_time(lambda: model.sample(a.batch, None, **kw), 2)
        z = torch.randn(a.batch, *model.latent_shape)
        dec = median_time(lambda: model.decode(z), 2) if name != "identity" else 0.0
        rows[name] = {"latent": list(model.latent_shape), "unet_params": sum(p.numel() for p in model.net.parameters()),
                      "seconds_per_batch": round(t, 3), "decode_seconds_per_batch": round(dec, 3),
                      "windows_per_s": round(a.batch / t, 4)}
        print(name, rows[name], flush=True)
    speedup = rows["latent_vqvae"]["windows_per_s"] / rows["identity"]["windows_per_s"]

    sr_cfg = load_config(ROOT / "configs/ctg/sampling-diffusion-sr_vqvae.yaml")
    torch.manual_seed(0)
    coarse = build_diffusion(sr_cfg.model, c, n, labels).eval()
    sr = build_sr(sr_cfg, c, n, labels, float(ds.fs)).eval()
    pipe = SRPipeline(coarse, sr, up=1)
    pipe.sample(a.batch, None, **kw)  # warm-up
    runs = 2
    pipe.timings = {k: 0.0 for k in pipe.timings}
    for _ in range(runs):
        pipe.sample(a.batch, None, **kw)
    per_window = {k: round(v / runs / a.batch, 3) for k, v in pipe.timings.items()}
    sr_row = {"coarse_latent": list(coarse.latent_shape), "sr_latent": list(sr.latent_shape),
              "coarse_unet_params": sum(p.numel() for p in coarse.net.parameters()),
              "sr_unet_params": sum(p.numel() for p in sr.net.parameters()),
              "seconds_per_window": per_window, "total_seconds_per_window": round(sum(per_window.values()), 3)}
    print("sr", sr_row, flush=True)
    res = {"machine": machine_info(), "threads": THREADS, "sampler": "ddim", "nfe": a.nfe, "batch": a.batch,
           "window": [c, n], "fs": float(ds.fs), "models": rows, "latent_speedup": round(speedup, 2),
           "target_speedup": 5.0, "target_met": speedup >= 5.0, "super_resolution": sr_row,
           "note": "2-core CPU shared with other jobs during the run; ratios were measured side by side"}
    RESULTS.mkdir(exist_ok=True)
    from dataloader.atomic import write_text_atomic

    write_text_atomic(RESULTS / "latent_speed.json", json.dumps(res, indent=1) + "\n")
    write_text_atomic(RESULTS / "latent_speed.md", _markdown(res))
    return 0


def _markdown(res: dict[str, Any]) -> str:
    m, r, s = res["machine"], res["models"], res["super_resolution"]
    lines = [f"# Latent diffusion and super-resolution sampling speed (CTG 4 Hz, {res['window'][0]} x "
             f"{res['window'][1]} windows, {res['sampler']} at {res['nfe']} NFE, batch {res['batch']})", "",
             f"Machine: {m.get('cpu', '')}, {res['threads']} threads, torch {m.get('torch', '')}. {res['note']}.", "",
             "| model | UNet input (C x L) | UNet params | s / batch (incl. decode) | decode s / batch | windows/s |",
             "|---|---|---|---|---|---|"]
    for name, v in r.items():
        lines.append(f"| {name} | {v['latent'][0]} x {v['latent'][1]} | {v['unet_params']:,} | {v['seconds_per_batch']} "
                     f"| {v['decode_seconds_per_batch']} | {v['windows_per_s']} |")
    lines += ["", f"Latent diffusion speed-up at equal NFE, decoding included: **{res['latent_speedup']}x** "
                  f"(target >= {res['target_speedup']}x: {'met' if res['target_met'] else 'NOT met'}).", "",
              "Super-resolution pipeline, seconds per window by stage "
              f"(coarse UNet on {s['coarse_latent']}, SR UNet on {s['sr_latent']} + condition):", "",
              "| stage | s / window |", "|---|---|"]
    for k, v in s["seconds_per_window"].items():
        lines.append(f"| {k.removesuffix('_s')} | {v} |")
    lines.append(f"| total | {s['total_seconds_per_window']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
