"""Cost as work grows: training per window against window length, generation against window count, and
data-parallel training on 2 processes against 1 (physiodiff issue 14, point 4).

    nice python -m bench.speed_scaling [--quick] [--parts window generate ddp] [--out DIR]

The full plan takes about 20 minutes on 2 idle cores (an estimate from bench/speed_side_by_side's step and
evaluation times) and peaks at about 5-6 GiB (16384-sample windows); --quick rehearses every path in 1-2 minutes.

Every point runs the project's own command line in a fresh child process, so what is measured is the real
path and nothing of one point stays in memory for the next:
- window: `python train.py --config configs/ctg/diffusion-identity.yaml data.window=W` for W in --windows,
  at one batch size for all lengths. Windows/s is the training log's own figure (log.csv `windows_per_s`: the
  training loop between optimizer steps, validation and checkpoints left out), median over --epochs epochs of
  --epoch-steps steps after one warm-up epoch (the first step picks oneDNN's kernels).
- generate: `python generate.py --samples N --out FILE.h5` for N in --counts with a model trained for one step
  (the weights do not change the cost), at --gen-steps sampler steps (5, not the config's 20, so that 1024
  windows take minutes; the time per window grows in proportion to the steps); batches stream to the HDF5
  file, so peak RSS should stay flat as N grows. Seconds per window are the whole process's wall time over N,
  and the marginal cost between consecutive counts (start-up and model loading cancel out).
- ddp: `torchrun --standalone --nproc_per_node P train.py` for P = 1 and 2 at the same global batch (--ddp-batch
  split over the processes; DDP over gloo on CPU), 1 torch thread per process, interleaved 1, 2, 1, 2, ...
  for --pairs pairs. Scaling efficiency = (windows/s with 2) / (2 x windows/s with 1), per pair, then median.
Peak RSS is the child's own (os.wait4: the largest process of the child's tree, torchrun's workers included).
The load average is read before and after each point. The data are synthetic CTU-UHB-shaped recordings (FHR,
UC at 4 Hz; speed does not depend on the values) written once and prepared by the real pipeline for each
window length (tools.prepare_data's `prepare`), not synthetic tensors.
Writes bench/results/speed_scaling_<commit>_<machine>.json and .md (`-quick` added in quick mode).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from bench.machine import machine_info
from bench.speed_side_by_side import head_label, machine_slug, makefile_tunables, write_ctg_source
from bench.speed_scaling_report import markdown, summarise
from dataloader.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/ctg/diffusion-identity.yaml"
PARTS = ("window", "generate", "ddp")
PATIENTS = 14                            # synthetic recordings (as bench/speed_side_by_side.py): ~11 train patients
# full: about 20 minutes (15-25) on 2 idle cores, peak RSS about 5-6 GiB (base model, 16384-sample windows at
# batch 4); the 1024-window generation (~7 min) and the 16384-sample training (~2.5 min) dominate
FULL: dict[str, Any] = {
    "size": "base", "windows": [2048, 4096, 8192, 16384], "train_batch": 4, "epoch_steps": 2, "epochs": 3,
    "counts": [16, 64, 256, 1024], "gen_window": 2048, "gen_steps": 5, "gen_batch": 64,
    "ddp_window": 2048, "ddp_batch": 16, "pairs": 2, "threads": 2, "timeout": 1800}
# quick: a 1-2 minute rehearsal of every path (tiny model, short windows, few windows)
QUICK: dict[str, Any] = {
    "size": "tiny", "windows": [256, 512], "train_batch": 4, "epoch_steps": 1, "epochs": 1,
    "counts": [4, 16], "gen_window": 256, "gen_steps": 2, "gen_batch": 4,
    "ddp_window": 256, "ddp_batch": 4, "pairs": 1, "threads": 2, "timeout": 300}
# option -> (plan key, help); the defaults of both modes are written into the help
OPTIONS = {
    "--size": ("size", "model.size of every point"),
    "--windows": ("windows", "window lengths (samples at 1 Hz) of the training sweep"),
    "--train-batch": ("train_batch", "windows per training step at every length of the sweep"),
    "--epoch-steps": ("epoch_steps", "optimizer steps per epoch (one log.csv rate each) in the window and ddp parts"),
    "--epochs": ("epochs", "timed epochs after the warm-up epoch, window and ddp parts (their median is taken)"),
    "--counts": ("counts", "window counts of the generation sweep"),
    "--gen-window": ("gen_window", "window length of the generation model"),
    "--gen-steps": ("gen_steps", "sampler steps of generation (sampler: the config's sample.sampler)"),
    "--gen-batch": ("gen_batch", "windows per network call in generation (generate.py --batch_size)"),
    "--ddp-window": ("ddp_window", "window length of the data-parallel comparison"),
    "--ddp-batch": ("ddp_batch", "global batch of the data-parallel comparison (even: split over 2 processes)"),
    "--pairs": ("pairs", "interleaved (1 process, 2 processes) pairs"),
    "--threads": ("threads", "torch threads of the window and generate points (ddp: always 1 per process)"),
    "--timeout": ("timeout", "seconds one point may take before it is killed and the bench fails"),
}


def build_parser() -> argparse.ArgumentParser:
    """The command line: every plan value can be set; unset ones come from FULL or, with --quick, QUICK."""
    from dataloader.cli import make_parser

    p = make_parser("python -m bench.speed_scaling", __doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--quick", action="store_true", help="the quick plan: a 1-2 minute rehearsal at tiny size "
                                                        "(results are named -quick; not figures to quote)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), metavar="PART",
                   help=f"which sweeps to run, of {', '.join(PARTS)} (default: all)")
    for opt, (key, text) in OPTIONS.items():
        full, quick = FULL[key], QUICK[key]
        kind = str if key == "size" else int
        shown = " ".join(map(str, full)) if isinstance(full, list) else full
        shown_q = " ".join(map(str, quick)) if isinstance(quick, list) else quick
        p.add_argument(opt, type=kind, nargs="+" if isinstance(full, list) else None, default=None,
                       metavar="N" if kind is int else "NAME",
                       help=f"{text} (default: {shown}; --quick: {shown_q})")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                   help="folder of the JSON and markdown results")
    return p


def make_plan(a: argparse.Namespace) -> dict[str, Any]:
    """The plan the arguments ask for, checked: positive counts, an even ddp batch, window lengths the model
    takes (diffusion.model.required_multiple of the config at that size). Raises UserError naming the option."""
    from dataloader.config import load_config
    from diffusion.model import required_multiple

    plan = dict(QUICK if a.quick else FULL)
    for opt, (key, _) in OPTIONS.items():
        value = getattr(a, opt[2:].replace("-", "_"))
        if value is not None:
            plan[key] = value
        for v in (plan[key] if isinstance(plan[key], list) else [plan[key]]):
            if key != "size" and v < 1:
                raise UserError(opt, f"must be >= 1 (got {v})")
    if plan["ddp_batch"] % 2:
        raise UserError("--ddp-batch", f"must be even: the global batch is split over 2 processes (got "
                                       f"{plan['ddp_batch']})")
    model = load_config(ROOT / CONFIG, [f"model.size={plan['size']}"]).model  # a bad --size fails here
    m = required_multiple(model)
    for opt, key in (("--windows", "windows"), ("--gen-window", "gen_window"), ("--ddp-window", "ddp_window")):
        for w in (plan[key] if isinstance(plan[key], list) else [plan[key]]):
            if w % m:
                raise UserError(opt, f"window length {w} does not fit model.size={plan['size']}: it needs a "
                                     f"multiple of {m}")
    plan["parts"] = list(dict.fromkeys(a.parts))
    return plan


def run_measured(cmd: Sequence[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run `cmd` (cwd: the repository) in its own session; its wall time, peak RSS (os.wait4: the largest
    process of its tree), the load average before and after. A failure or a timeout ends the bench."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        load0, t0 = os.getloadavg(), time.perf_counter()
        p = subprocess.Popen(list(cmd), cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                os.killpg(p.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        except BaseException:  # interrupted bench: take the point's whole tree down with it
            kill()
            p.wait()
            raise
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode:
        sys.stderr.write(stderr[-3000:])
        why = f"timed out after {timeout:g} s" if fired.is_set() else f"exit {p.returncode}"
        raise SystemExit(f"error: {' '.join(cmd[:6])} ...: {why} (its stderr above)")
    lines = stdout.strip().splitlines()
    return {"cmd": list(cmd), "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "loadavg_before": list(load0),
            "loadavg_after": list(os.getloadavg()),
            # train.py's line naming its world size ("training N parameters on P process(es) x ..."), else the first
            "started": next((ln for ln in lines if "process(es)" in ln), lines[0] if lines else ""),
            "stdout_last": lines[-1] if lines else ""}


def data_overrides(data: Path, window: int) -> list[str]:
    """Config overrides of the synthetic data prepared at `window` samples."""
    return [f"data.source={data / 'signals'}", f"data.labels={data / 'labels.csv'}",
            f"data.prepared={data / f'ctg-1hz-w{window}.h5'}", f"data.window={window}"]


def prepare_all(data: Path, plan: dict[str, Any]) -> None:
    """Write the synthetic recordings once, long enough for the longest window and the largest batch, and
    prepare them at every window length the plan uses (the real pipeline, in this process: not measured)."""
    from dataloader.config import load_config
    from dataloader.prepare import prepare

    windows = sorted(set(plan["windows"] * ("window" in plan["parts"])
                         + [plan["gen_window"]] * ("generate" in plan["parts"])
                         + [plan["ddp_window"]] * ("ddp" in plan["parts"])))
    # windows every minute: each of the ~11 training patients needs batch / 8 + 1 of them (stratified split)
    per_patient = max(plan["train_batch"], plan["ddp_batch"]) // 8 + 2
    write_ctg_source(data, PATIENTS, math.ceil(max(windows) / 60) + per_patient + 1)
    for w in windows:
        prepare(load_config(ROOT / CONFIG, data_overrides(data, w)), workers=1)


def train_overrides(plan: dict[str, Any], out: Path, batch: int, threads: int, steps: Optional[int] = None
                    ) -> list[str]:
    """train.py overrides of a measured run: warm-up epoch + timed epochs, one validation batch, no plots."""
    e = plan["epoch_steps"]
    return [f"model.size={plan['size']}", f"train.out_dir={out}", f"train.batch_size={batch}",
            f"train.epoch_steps={e}", f"train.max_steps={steps or e * (1 + plan['epochs'])}",
            f"train.threads={threads}", "train.val_batches=1", "train.plot_every=0", "train.keep_checkpoints=1",
            "train.seed=0"]


def log_rates(out: Path) -> list[float]:
    """windows/s of each epoch in out/log.csv after the first (the warm-up)."""
    from training.train_log import read_log

    return [float(r["windows_per_s"]) for r in read_log(out / "log.csv")[1:]]


def env_for(threads: int, tunables: str) -> dict[str, str]:
    """The environment of every point: the Makefile's allocator setting, `threads` OpenMP / MKL threads."""
    return dict(os.environ, GLIBC_TUNABLES=tunables, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                PYTHONPATH=str(ROOT))


def sweep_windows(plan: dict[str, Any], data: Path, tmp: Path, env: dict[str, str], say: Any) -> list[dict]:
    """One train.py run per window length, the same batch at every length."""
    rows = []
    for w in plan["windows"]:
        out = tmp / f"train-w{w}"
        cmd = [sys.executable, "train.py", "--config", CONFIG, "--no-progress", *data_overrides(data, w),
               *train_overrides(plan, out, plan["train_batch"], plan["threads"])]
        r = run_measured(cmd, env, plan["timeout"])
        r.update(window=w, batch=plan["train_batch"], epoch_rates=log_rates(out))
        shutil.rmtree(out)  # its checkpoints: ~200 MB at base size
        rows.append(r)
        say(f"window {w}: {statistics.median(r['epoch_rates']):.3f} windows/s, peak RSS {r['peak_rss_mib']:.0f} MiB")
    return rows


def sweep_counts(plan: dict[str, Any], data: Path, tmp: Path, env: dict[str, str], say: Any) -> list[dict]:
    """A one-step model (--train-batch windows), then one generate.py run per window count (the HDF5 writer
    streaming batches)."""
    w, model_dir = plan["gen_window"], tmp / "gen-model"
    ov = [*data_overrides(data, w), f"model.size={plan['size']}", f"train.out_dir={model_dir}"]
    run_measured([sys.executable, "train.py", "--config", CONFIG, "--no-progress", *data_overrides(data, w),
                  *train_overrides(plan, model_dir, plan["train_batch"], plan["threads"], steps=1)],
                 env, plan["timeout"])
    rows = []
    for n in plan["counts"]:
        out = tmp / f"gen-{n}.h5"
        cmd = [sys.executable, "generate.py", "--config", CONFIG, *ov, "--samples", str(n), "--out", str(out),
               "--steps", str(plan["gen_steps"]), "--batch_size", str(plan["gen_batch"]),
               "--threads", str(plan["threads"])]
        r = run_measured(cmd, env, plan["timeout"])
        r.update(count=n, window=w, output_mib=out.stat().st_size / 2**20)
        out.unlink()
        rows.append(r)
        say(f"generate {n}: {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB")
    return rows


def sweep_ddp(plan: dict[str, Any], data: Path, tmp: Path, tunables: str, say: Any) -> list[dict]:
    """torchrun with 1 and 2 processes at the same global batch, 1 thread each, interleaved 1, 2, 1, 2, ..."""
    w, rows = plan["ddp_window"], []
    for pair in range(plan["pairs"]):
        for procs in (1, 2):
            out = tmp / f"ddp-{pair}-{procs}"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
                   "train.py", "--config", CONFIG, "--no-progress", *data_overrides(data, w),
                   *train_overrides(plan, out, plan["ddp_batch"] // procs, 1)]
            r = run_measured(cmd, env_for(1, tunables), plan["timeout"])
            if f"on {procs} process(es)" not in r["started"]:
                raise SystemExit(f"error: torchrun --nproc_per_node {procs}: train.py reported "
                                 f"{r['started']!r}")
            r.update(pair=pair, processes=procs, window=w, global_batch=plan["ddp_batch"],
                     epoch_rates=log_rates(out))
            shutil.rmtree(out)
            rows.append(r)
            say(f"ddp pair {pair}, {procs} process(es): {statistics.median(r['epoch_rates']):.3f} windows/s")
    return rows


def versions() -> dict[str, str]:
    """Versions of the libraries the measured paths lean on, beside machine_info's torch / numpy / Python."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("accelerate", "tables", "h5py", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = ""
    return out


def measure(plan: dict[str, Any], say: Any = print) -> dict[str, Any]:
    """Prepare the data, then every part the plan names; the result dict the report renders."""
    tunables = makefile_tunables()
    env = env_for(plan["threads"], tunables)
    res: dict[str, Any] = {"benchmark": "speed_scaling", "machine": machine_info(), "versions": versions(),
                           "plan": plan, "config": CONFIG, "glibc_tunables": tunables, "nice": os.nice(0),
                           "data": "synthetic CTU-UHB-shaped recordings (FHR, UC at 4 Hz), prepared by the real "
                                   "pipeline at 1 Hz for each window length"}
    with tempfile.TemporaryDirectory(prefix="speed-scaling-") as t:
        tmp = Path(t)
        prepare_all(tmp / "data", plan)
        say("data prepared")
        if "window" in plan["parts"]:
            res["window"] = sweep_windows(plan, tmp / "data", tmp, env, say)
        if "generate" in plan["parts"]:
            res["generate"] = sweep_counts(plan, tmp / "data", tmp, env, say)
        if "ddp" in plan["parts"]:
            res["ddp"] = sweep_ddp(plan, tmp / "data", tmp, tunables, say)
    res["summary"] = summarise(res)
    return res


def main(argv: Optional[Sequence[str]] = None) -> int:
    from dataloader.atomic import write_text_atomic

    args = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(args)
    plan = make_plan(a)
    if not a.out.is_dir():
        raise UserError("--out", f"{a.out} is not a folder")
    # a terminated bench still removes its temporary data (SystemExit runs the finally clauses; run_measured
    # kills the point it waits for)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = measure(plan, say=lambda s: print(s, flush=True))
    res.update(quick=a.quick, command=" ".join(["python -m bench.speed_scaling", *args]))
    name = f"speed_scaling_{head_label()}_{machine_slug(res['machine']['cpu'])}" + ("-quick" if a.quick else "")
    md = markdown(res)
    write_text_atomic(a.out / f"{name}.json", json.dumps(res, indent=1) + "\n")
    write_text_atomic(a.out / f"{name}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    from dataloader.cli import run_main

    run_main(main)
