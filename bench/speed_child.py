"""One measurement of bench/speed_side_by_side.py, in its own process, of the code in another tree.

    python -m bench.speed_child --root TREE --config CFG --set key=value ... --steps N --batches 16 64

Run from the bench's own tree (so that this measurement code is the same for both sides); the project's
packages (dataloader, diffusion, training) are imported from `--root`, the tree being measured. Nothing from the
project may be imported at the top of this file: the first import decides which tree a package comes from.
Prints one JSON line:
- `train_windows_per_s`: the real training loop (`diffusion.train_loop.train`, timed by its `on_step` hook
  between optimizer steps; the first step, which picks oneDNN's kernels, is left out);
- `bare_step_s`: forward + loss + backward + optimizer step of the same model and the optimizer the loop built
  (the tree's own choices: read from the Accelerator handed to `train`), median of the repeats;
- `optimizer_s`: `optimizer.step()` alone on the same gradients, median;
- `eval_s[batch]`: one network evaluation as sampling makes it (`model.denoiser` under no_grad, eval mode);
- FLOPs of the bare step's forward + backward and of one evaluation (torch.utils.flop_counter), and a
  4096 x 4096 fp32 matmul's GFLOP/s measured in this process (the "peak" the fractions are taken of);
- `peak_rss_train_mib` (after training) and `peak_rss_mib` (after the evaluations, the largest batch last).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from bench.machine import matmul_gflops, wall_times


def _rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _flops(fn: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def train_and_bare(cfg: Any, steps: int, repeats: int) -> dict[str, Any]:
    """The real loop for `steps` steps, then the bare step and the optimizer alone on the trained model."""
    import torch
    from accelerate import Accelerator

    from dataloader.dataset import WindowDataset
    from diffusion.train_loop import train

    acc = Accelerator(gradient_accumulation_steps=1)
    stamps: list[float] = []
    train(cfg, progress=False, on_step=lambda s: stamps.append(time.perf_counter()), accelerator=acc)
    rss_train = _rss_mib()
    loss_module = acc._models[0]
    opt = getattr(acc._optimizers[0], "optimizer", acc._optimizers[0])
    ds = WindowDataset(Path(cfg.data.prepared), "train")
    x, y, _ = ds.get_batch(list(range(int(cfg.train.batch_size))))
    gen = torch.Generator().manual_seed(0)

    def fwd_bwd() -> None:
        loss_module(x, y, gen).backward()

    def bare() -> None:
        fwd_bwd()
        opt.step()
        opt.zero_grad(set_to_none=True)

    bare_s = wall_times(bare, repeats, warm_up=False)  # the loop ran these shapes and this optimizer already
    fwd_bwd()
    opt_s = wall_times(opt.step, max(3, repeats), warm_up=False)
    opt.zero_grad(set_to_none=True)
    flops = _flops(fwd_bwd)
    opt.zero_grad(set_to_none=True)
    steps_s = [b - a for a, b in zip(stamps[1:], stamps[2:])]
    return {"model": loss_module.model, "ds": ds, "batch": len(x), "train_steps_s": steps_s,
            "train_windows_per_s": len(x) / statistics.median(steps_s), "bare_step_s": bare_s,
            "optimizer_s": opt_s, "train_gflop": flops / 1e9, "peak_rss_train_mib": rss_train,
            "params": sum(p.numel() for p in opt.param_groups[0]["params"]),
            "param_tensors": sum(len(g["params"]) for g in opt.param_groups), "optimizer": repr_opt(opt)}


def repr_opt(opt: Any) -> str:
    """The optimizer class and its multi-tensor options (foreach / fused), for the record."""
    d = opt.defaults
    return f"{type(opt).__name__}(foreach={d.get('foreach')}, fused={d.get('fused')})"


def evals(model: Any, ds: Any, batches: Sequence[int], repeats: int) -> dict[str, Any]:
    """Seconds and FLOPs of one network evaluation per batch size (as sampling calls it)."""
    import torch

    model.eval()
    c, n = model.latent_shape
    out: dict[str, Any] = {"eval_s": {}, "eval_gflop": {}}
    for b in batches:
        _, y, _ = ds.get_batch([i % len(ds) for i in range(b)])
        z, sigma = torch.randn(b, c, n), torch.ones(b)

        def call() -> None:
            with torch.no_grad():
                model.denoiser(z, sigma, y)

        out["eval_gflop"][str(b)] = _flops(call) / 1e9
        out["eval_s"][str(b)] = wall_times(call, repeats, warm_up=False)  # the FLOP count was the warm-up
    return out


def measure(root: Path, config: str, overrides: Sequence[str], steps: int, batches: Sequence[int],
            repeats: int, threads: int) -> dict[str, Any]:
    """Everything above for the tree at `root` (its packages must not be imported yet)."""
    sys.path.insert(0, str(root))
    import torch

    torch.set_num_threads(threads)
    import diffusion
    from dataloader.config import load_config

    mm = matmul_gflops(3)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(root / config, [*overrides, f"train.out_dir={Path(tmp) / 'run'}",
                                          f"train.max_steps={steps}", f"train.epoch_steps={steps}",
                                          f"train.threads={threads}"])
        res = train_and_bare(cfg, steps, repeats)
    res.update(evals(res.pop("model"), res.pop("ds"), batches, repeats))
    res.update(matmul_gflops_per_s=(mm + matmul_gflops(3)) / 2, peak_rss_mib=_rss_mib(),
               imported_from=str(Path(diffusion.__file__).resolve().parents[1]), threads=torch.get_num_threads())
    return res


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True, help="the tree to measure")
    p.add_argument("--config", required=True, help="config path relative to the tree")
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    p.add_argument("--steps", type=int, default=6, help="optimizer steps of the real loop")
    p.add_argument("--batches", nargs="*", type=int, default=[16, 64], help="batch sizes of the evaluations")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (after a warm-up)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    res = measure(a.root.resolve(), a.config, a.set, a.steps, a.batches, a.repeats, a.threads)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
