"""Data pipeline speed: prepare_data wall time for the CTG configs, and WindowDataset throughput.

    python -m bench.dataset_throughput [--repeats 3] [--seconds 3]

Preparation runs as a subprocess, exactly as a user runs it, writing into a temporary folder (the
files under data/ are left alone). Throughput is measured on the prepared 4 Hz and 1 Hz files for
random batches of 64 windows, three ways: `get_batch` (one gather), a DataLoader (batch_size 64,
num_workers 0, which uses the dataset's `__getitems__`), and per-item `ds[i]` + default collate.
Target (task brief): >= 2000 windows/s for the 4 Hz config; all 452 CTG records prepared in < 60 s.
Writes bench/results/dataset_throughput.json and .md.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench.machine import machine_info
from dataloader.cli import make_parser, run_main

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CONFIGS = ["configs/ctg/sampling-diffusion.yaml", "configs/ctg/diffusion-identity.yaml"]
BATCH = 64
SEED = 0


def time_prepare(config: str, out: Path, workers: int) -> dict[str, Any]:
    """Wall time of `python -m tools.prepare_data` (interpreter start included) and the file's size."""
    cmd = [sys.executable, "-m", "tools.prepare_data", "--config", config, f"data.prepared={out}",
           "--workers", str(workers)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"prepare_data failed for {config}:\n{res.stderr}")
    summary = res.stdout.splitlines()
    return {"config": config, "workers": workers, "wall_s": round(wall, 2), "bytes": out.stat().st_size,
            "summary_head": summary[0] if summary else ""}


def throughput(path: Path, seconds: float) -> dict[str, Any]:
    import torch

    from dataloader.dataset import WindowDataset

    torch.set_num_threads(1)  # the data path is numpy; one thread keeps cores for the model
    t0 = time.perf_counter()
    ds = WindowDataset(path, "train")
    open_s = time.perf_counter() - t0
    rng = np.random.default_rng(SEED)
    out: dict[str, Any] = {"file": str(path.name), "open_s": round(open_s, 3), "windows": len(ds),
                           "shape": [len(ds.channels), ds.window_len]}

    def rate(fn) -> float:
        fn(rng.integers(0, len(ds), BATCH))                    # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn(rng.integers(0, len(ds), BATCH))
            n += BATCH
        return n / (time.perf_counter() - t0)

    out["get_batch_windows_per_s"] = round(rate(ds.get_batch))
    sampler = torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(SEED))
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, sampler=sampler, num_workers=0)
    it = iter(loader)
    next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            xb, _, _ = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        n += len(xb)
    out["dataloader_windows_per_s"] = round(n / (time.perf_counter() - t0))
    collate = torch.utils.data.default_collate
    out["per_item_windows_per_s"] = round(rate(lambda idx: collate([ds[int(i)] for i in idx])))
    return out


def _markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = ["# Dataset throughput and preparation time", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gib')} GiB; Python {m['python']}, "
             f"torch {m['torch']}, numpy {m['numpy']}, tables {res['versions']['tables']}, "
             f"scipy {res['versions']['scipy']}; commit {m['commit']}; {m['utc']}. Seed {res['seed']}.", "",
             "## prepare_data (all 452 CTU-UHB records; wall time of the command, interpreter start included)", "",
             "| config | workers | wall s | file MB | target |", "|---|---|---|---|---|"]
    for p in res["prepare"]:
        lines.append(f"| {p['config']} | {p['workers']} | {p['wall_s']} | {p['bytes'] / 1e6:.1f} | < 60 s"
                     + (", < 100 MB" if "sampling" in p["config"] else "") + " |")
    lines += ["", f"## WindowDataset, random batches of {BATCH} training windows (1 torch thread)", "",
              "| file | windows | (C, L) | open s | get_batch win/s | DataLoader win/s | per item win/s |",
              "|---|---|---|---|---|---|---|"]
    for t in res["throughput"]:
        lines.append(f"| {t['file']} | {t['windows']} | {tuple(t['shape'])} | {t['open_s']} | "
                     f"{t['get_batch_windows_per_s']} | {t['dataloader_windows_per_s']} | "
                     f"{t['per_item_windows_per_s']} |")
    lines += ["", "Target: >= 2000 windows/s for the 4 Hz file (ctg-4hz). DataLoader uses the dataset's "
                  "`__getitems__` (one gather per batch).", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m bench.dataset_throughput", __doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="measuring time per throughput figure")
    p.add_argument("--workers", type=int, nargs="*", default=[2, 1], help="prepare_data worker counts to time")
    a = p.parse_args(argv)
    import scipy
    import tables

    res: dict[str, Any] = {"machine": machine_info(), "seed": SEED, "batch": BATCH, "configs": CONFIGS,
                           "versions": {"tables": tables.__version__, "scipy": scipy.__version__},
                           "prepare": [], "throughput": []}
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        for cfg in CONFIGS:
            for w in a.workers:
                out = Path(tmp) / (Path(cfg).stem + ".h5")
                r = time_prepare(cfg, out, w)
                print(f"prepare {cfg} workers={w}: {r['wall_s']} s, {r['bytes'] / 1e6:.1f} MB", flush=True)
                res["prepare"].append(r)
            t = throughput(out, a.seconds)
            t["file"] = "ctg-4hz" if "sampling" in cfg else "ctg-1hz"
            print(f"throughput {t['file']}: {t}", flush=True)
            res["throughput"].append(t)
    RESULTS.mkdir(parents=True, exist_ok=True)
    from dataloader.atomic import write_text_atomic

    write_text_atomic(RESULTS / "dataset_throughput.json", json.dumps(res, indent=2) + "\n")
    write_text_atomic(RESULTS / "dataset_throughput.md", _markdown(res))
    print(f"wrote {RESULTS / 'dataset_throughput.md'}")
    return 0


if __name__ == "__main__":
    run_main(main)
