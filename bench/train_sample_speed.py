"""Training and sampling speed of the diffusion model on this CPU, and the overhead of everything around the network.

    python -m bench.train_sample_speed [--quick]

For each CTG config (1 Hz identity: the UNet sees 2 x 2048; 4 Hz sampling first stage, factor 8: 2 x 1024) and
the tiny and base sizes, with 2 torch threads, all in one run (a time alone means little on a shared machine,
ratios measured side by side do):
- training: windows/s of the real training step (`diffusion.train_loop.train`, timed between optimizer steps by
  its `on_step` hook: data, first stage, noise, label dropout, forward, backward, clipping, AdamW, EMA) and its
  ratio to a bare step of the same network (forward + MSE + backward + AdamW on latent-shaped input). Target
  <= 1.25x. Also the bare step's FLOP rate (torch.utils.flop_counter) as a fraction of a measured fp32 matmul peak.
- sampling: windows/s of `model.sample` per sampler at 10, 20, 50 and 1000 network evaluations (NFE), and the
  ratio of its time to NFE x one forward of the network at the same batch. Target <= 1.1x. 1000 NFE is run
  for ddim on the tiny size only; the other 1000-NFE rows are extrapolated from the same sampler's 50-NFE time
  per NFE (marked "extrapolated from 50 NFE"). Each time is the median of 3 runs (2 at 50 NFE, 1 at 1000).
Writes bench/results/train_sample_speed.json and .md.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bench.machine import machine_info, matmul_gflops, median_time
from dataloader.cli import make_parser, run_main

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CONFIGS = {"identity-1hz": "configs/ctg/diffusion-identity.yaml", "sampling-4hz": "configs/ctg/sampling-diffusion.yaml"}
SEED = 0
THREADS = 2
# (batch for training, batch for sampling, timed training steps) per size: base is ~100x tiny's FLOPs
SIZES = {"tiny": (16, 16, 20), "base": (4, 4, 6)}
# sampler -> network evaluations per step (first order 1; Heun 2 per step, minus one at the end)
SAMPLERS = {"ddim": 1, "dpm_solver": 1, "k_dpmpp_2m": 1, "k_heun": 2}
NFES = (10, 20, 50, 1000)


def matmul_peak() -> float:
    """fp32 GFLOP/s of a 4096 x 4096 matmul with the current threads (docs/design.md section 9 reference)."""
    return matmul_gflops(3)


def _config(path: str, size: str, out_dir: Path, batch: int, steps: int) -> Any:
    from dataloader.config import load_config

    return load_config(ROOT / path, [f"model.size={size}", f"train.out_dir={out_dir}", f"train.max_steps={steps}",
                                     f"train.epoch_steps={steps}", f"train.batch_size={batch}", "train.val_batches=1",
                                     f"train.threads={THREADS}", "train.plot_every=0", f"train.seed={SEED}"])


def bench_train(path: str, size: str, batch: int, steps: int) -> dict[str, Any]:
    """Full training step (the real loop) vs bare network step, measured back to back."""
    from accelerate.state import AcceleratorState, GradientState, PartialState
    from torch.utils.flop_counter import FlopCounterMode

    from diffusion.train_loop import train

    from dataloader.dataset import WindowDataset
    from diffusion.model import build_diffusion
    from diffusion.train_loop import train

    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(path, size, Path(tmp) / "run", batch, steps + 2)
        ds = WindowDataset(ROOT / cfg.data.prepared, "train")
        torch.manual_seed(SEED)
        model = build_diffusion(cfg.model, len(ds.channels), ds.window_len, ds.label_classes)
        net = model.net
        c, n = model.latent_shape
        x, y = torch.randn(batch, c, n), ds.get_batch(np.arange(batch))[1]
        t = torch.randint(0, 1000, (batch,)).float()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, foreach=True)  # as the training loop

        def bare() -> None:
            loss = (net(x, t, y) - x).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        # bare steps right before and right after the real loop, so that both see the same machine load
        before = median_time(bare, steps)
        stamps: list[float] = []
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        PartialState._reset_state()
        train(cfg, progress=False, on_step=lambda s: stamps.append(time.perf_counter()))
        torch.set_num_threads(THREADS)
        after = median_time(bare, steps)
    full = float(statistics.median(np.diff(stamps[1:])))  # step 1 carries the warm-up
    bare_s = (before + after) / 2
    with FlopCounterMode(display=False) as fc:
        (net(x, t, y) - x).square().mean().backward()
    flops = fc.get_total_flops()
    return {"config": Path(path).name, "size": size, "params": sum(p.numel() for p in net.parameters()),
            "latent": [c, n], "batch": batch, "timed_steps": len(stamps) - 2, "full_step_s": round(full, 4),
            "bare_step_s": round(bare_s, 4), "bare_before_after_s": [round(before, 4), round(after, 4)],
            "overhead_ratio": round(full / bare_s, 3),
            "train_windows_per_s": round(batch / full, 2), "fwd_bwd_gflop": round(flops / 1e9, 2),
            "bare_gflop_per_s": round(flops / bare_s / 1e9, 1)}


def bench_sample(path: str, size: str, batch: int, quick: bool) -> list[dict[str, Any]]:
    """model.sample per sampler and NFE vs NFE x one network forward at the same batch."""
    from dataloader.config import load_config
    from dataloader.dataset import WindowDataset
    from diffusion.model import build_diffusion

    torch.set_num_threads(THREADS)
    cfg = load_config(ROOT / path, [f"model.size={size}"])
    ds = WindowDataset(ROOT / cfg.data.prepared, "train")
    torch.manual_seed(SEED)
    model = build_diffusion(cfg.model, len(ds.channels), ds.window_len, ds.label_classes).eval()
    c, n = model.latent_shape
    y = ds.get_batch(np.arange(batch))[1]
    x, t = torch.randn(batch, c, n), torch.full((batch,), 500.0)

    def forward_s() -> float:
        with torch.no_grad():
            return median_time(lambda: model.net(x, t, y), 3)

    rows = []
    for name, per_step in SAMPLERS.items():
        for nfe in NFES:
            if quick and nfe > 20:
                continue
            steps = nfe if per_step == 1 else (nfe + 1) // 2
            row: dict[str, Any] = {"config": Path(path).name, "size": size, "sampler": name, "steps": steps,
                                   "batch": batch}
            measured = nfe <= 50 or (size == "tiny" and name == "ddim")  # 1000 NFE: one sampler, tiny only
            if not measured:
                ref = next((r for r in reversed(rows) if r["sampler"] == name and r["nfe"] == 50), None)
                if ref is None:
                    continue
                per_nfe = ref["sample_s"] / ref["nfe"]
                row.update(nfe=nfe, sample_s=round(per_nfe * nfe, 2), how="extrapolated from 50 NFE",
                           forward_s=ref["forward_s"],
                           windows_per_s=round(batch / (per_nfe * nfe), 3),
                           overhead_ratio=ref["overhead_ratio"])
                rows.append(row)
                continue
            # repeats (fewer for long runs), each next to a timed forward, so that both see the same machine load;
            # medians of both
            fwds, times = [], []
            for _ in range(3 if nfe <= 20 else 2 if nfe <= 50 else 1):
                fwds.append(forward_s())
                t0 = time.perf_counter()
                _, info = model.sample(batch, y, sampler=name, steps=steps, seed=SEED, batch_size=batch,
                                       return_info=True)
                times.append(time.perf_counter() - t0)
            fwd, dt = statistics.median(fwds), statistics.median(times)
            row["forward_s"] = round(fwd, 5)
            row["repeats"] = len(times)
            used = int(sum(info["nfe"]))
            row.update(nfe=used, sample_s=round(dt, 3), how="measured", windows_per_s=round(batch / dt, 3),
                       overhead_ratio=round(dt / (used * fwd), 3))
            rows.append(row)
            print(f"  {row['config']} {size} {name} nfe {used}: {dt:.2f} s, ratio {row['overhead_ratio']}", flush=True)
    return rows


def _markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [f"# Training and sampling speed ({m['utc']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {res['threads']} threads, "
             f"GLIBC_TUNABLES=`{m['glibc_tunables'] or '(unset)'}`, commit {m['commit']}, seed {res['seed']}. "
             f"fp32 matmul peak measured in this run: {res['matmul_peak_gflop_per_s']:.0f} GFLOP/s.", "",
             "## Training (full step = the real loop between optimizer steps; bare = net forward + MSE + backward + AdamW)",
             "", "| config | size | params | latent | batch | windows/s | full step s | bare step s | ratio | "
                 "bare GFLOP/s | of peak |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["train"]:
        lines.append(f"| {r['config']} | {r['size']} | {r['params']:,} | {r['latent'][0]}x{r['latent'][1]} | {r['batch']} "
                     f"| {r['train_windows_per_s']} | {r['full_step_s']} | {r['bare_step_s']} | {r['overhead_ratio']} "
                     f"| {r['bare_gflop_per_s']} | {r['bare_gflop_per_s'] / res['matmul_peak_gflop_per_s']:.0%} |")
    lines += ["", "## Sampling (ratio = sampling time / (NFE x one network forward at the same batch))", "",
              "| config | size | sampler | steps | NFE | batch | windows/s | time s | ratio | how |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["sample"]:
        lines.append(f"| {r['config']} | {r['size']} | {r['sampler']} | {r['steps']} | {r['nfe']} | {r['batch']} | "
                     f"{r['windows_per_s']} | {r['sample_s']} | {r['overhead_ratio']} | {r['how']} |")
    lines += ["", "Targets: training ratio <= 1.25, sampling ratio <= 1.1. " + res["notes"], ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m bench.train_sample_speed", __doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny size and <= 20 NFE only (a smoke run; not written)")
    a = p.parse_args(argv)
    torch.set_num_threads(THREADS)
    res: dict[str, Any] = {"machine": machine_info(), "threads": THREADS, "seed": SEED, "configs": CONFIGS,
                           "matmul_peak_gflop_per_s": round(matmul_peak(), 1), "train": [], "sample": [],
                           "notes": "1000 NFE is measured for ddim on the tiny size only; the other 1000-NFE rows are "
                                    "extrapolated from the same sampler's 50-NFE time per NFE (their ratio is the "
                                    "50-NFE ratio). Times are medians of 3 runs (2 at 50 NFE, 1 at 1000 NFE), each "
                                    "next to a timed network forward; the machine is shared, so single rows can "
                                    "still carry load spikes."}
    for size, (tb, sb, steps) in SIZES.items():
        if a.quick and size != "tiny":
            continue
        for name, path in CONFIGS.items():
            print(f"train {name} {size}", flush=True)
            res["train"].append(bench_train(path, size, tb, steps))
            print(f"  {res['train'][-1]}", flush=True)
            print(f"sample {name} {size}", flush=True)
            res["sample"] += bench_sample(path, size, sb, a.quick)
    if a.quick:
        print(_markdown(res))
        return 0
    RESULTS.mkdir(exist_ok=True)
    from dataloader.atomic import write_text_atomic

    write_text_atomic(RESULTS / "train_sample_speed.json", json.dumps(res, indent=1) + "\n")
    write_text_atomic(RESULTS / "train_sample_speed.md", _markdown(res))
    print(_markdown(res))
    return 0


if __name__ == "__main__":
    run_main(main)
