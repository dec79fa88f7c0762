"""Generation speed of each shipped model: windows per second at the model's own sampler and steps, batch 64.
Writes bench/results/shipped_speed_<commit>_<machine>.json and .md.

    python -m bench.shipped_speed [--models NAME ...] [--windows 256] [--repeats 3] [--threads N]
        [--models_dir DIR] [--out DIR]

Per model (every model under models/ unless --models names some): the file is checked against its card and
loaded once, as `generate.py --model NAME` does (tools.ship.shipped_model; the load is timed apart).
Generation runs through the code generate.py runs (diffusion.generation.generate_file, or a baseline's
generator, writing an HDF5 file in a temporary folder that is deleted): labels drawn like the training windows
(`--samples N`), seed 0, the sampler, steps, guidance and sigmas of the model's stored `sample` section,
batch 64. One batch is generated untimed first (kernels are picked on a shape's first call), then --windows
windows --repeats times, each into a fresh file; the median wall time gives windows/s. The device is
accelerate's (a GPU when there is one). Machine, versions and the load average at start and end are recorded
(bench/machine.py).
"""
from __future__ import annotations

import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from dataloader.atomic import write_text_atomic
from dataloader.cli import make_parser, run_main, set_threads
from dataloader.errors import UserError

from .machine import machine_info, machine_slug, wall_times

HERE = Path(__file__).parent
BATCH = 64   # windows per network call, the figure the issue asks for
SEED = 0


def _parser():  # type: ignore[no-untyped-def]
    p = make_parser("python -m bench.shipped_speed", __doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="shipped model names (default: every model in --models_dir)")
    p.add_argument("--windows", type=int, default=256, metavar="N", help="windows generated per timed repeat")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per model (the median is reported)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: OMP_NUM_THREADS, else every core this process may use)")
    p.add_argument("--models_dir", default=None, metavar="DIR",
                   help="folder of shipped models (default: the repository's models/, or $PHYSIODIFF_MODELS)")
    p.add_argument("--out", default=str(HERE / "results"), metavar="DIR", help="folder for the .json and .md")
    return p


def check_args(a: Any) -> tuple[list[tuple[str, Path]], Path]:
    """(name, checked model file) of every model to time, and the output folder; UserError naming the option
    for a bad count, a name that is not shipped (or whose file does not match its card) or no model at all."""
    from tools.ship import MODELS_DIR, shipped_model, shipped_names

    for name, v in (("--windows", a.windows), ("--repeats", a.repeats)):
        if v < 1:
            raise UserError(name, f"must be >= 1 (got {v})")
    if a.threads is not None and a.threads < 1:
        raise UserError("--threads", f"must be >= 1 (got {a.threads})")
    out = Path(a.out)
    if not out.is_dir():
        raise UserError("--out", f"{out} is not a folder")
    folder = Path(a.models_dir) if a.models_dir else MODELS_DIR
    names = a.models if a.models is not None else shipped_names(folder)
    if not names:
        raise UserError("--models", f"no shipped models in {folder} (python -m tools.ship makes them)")
    return [(n, shipped_model(n, "--models", folder)) for n in dict.fromkeys(names)], out


def _load(name: str, path: Path, device: Any) -> tuple[Any, Any, Any]:
    """(model, metadata, sampling arguments at batch 64) of one shipped file, as generate.py --model loads it."""
    from diffusion.checkpoint import read_model_meta
    from diffusion.generation import SampleArgs

    meta = read_model_meta(path, f"--models {name}")
    if meta.config.get("sr") is not None:
        raise UserError(f"--models {name}", "a model with a super-resolution stage (two files); this bench times "
                                            "single-file models")
    if meta.config.model.type == "diffusion":
        from diffusion.checkpoint import load_model_file

        model, meta = load_model_file(path, None, device)
        return model, meta, SampleArgs.from_section(meta.config.get("sample"), seed=SEED, batch_size=BATCH)
    from baselines.generation import baseline_sample_args, load_baseline_file

    model, meta = load_baseline_file(path, None, device)
    return model, meta, baseline_sample_args(meta, SEED, BATCH)


def measure(name: str, path: Path, windows: int, repeats: int, device: Any, tmp: Path) -> dict[str, Any]:
    """Load time and wall times of generating `windows` windows `repeats` times with one shipped model."""
    from diffusion.generation import generate_file, plan_labels, used_config_text

    t0 = time.perf_counter()
    model, meta, args = _load(name, path, device)
    load_s = time.perf_counter() - t0
    if meta.config.model.type == "diffusion":
        plans = {n: plan_labels(str(n), meta, SEED) for n in {windows, min(windows, BATCH)}}
    else:
        from baselines.generation import plan_baseline_labels

        plans = {n: plan_baseline_labels(str(n), meta, SEED)[0] for n in {windows, min(windows, BATCH)}}
    used = used_config_text(meta.config, meta, args)
    files = itertools.count()

    def run(n: int) -> None:
        out = tmp / f"{name}-{next(files)}.h5"
        generate_file(model, meta, plans[n], args, out, config_text=used, device=device, progress=False)
        out.unlink()

    run(min(windows, BATCH))  # untimed: the first call of each shape picks its kernels
    times = wall_times(lambda: run(windows), repeats, warm_up=False)
    med = statistics.median(times)
    d, c = meta.data, meta.config.model
    return {"name": name, "sha256": meta.sha256, "model_type": c.type, "size": getattr(c, "size", None),
            "sampler": args.sampler, "steps": args.steps, "guidance_scale": args.guidance_scale, "eta": args.eta,
            "sigmas": args.sigmas, "batch_size": args.batch_size,
            "window": {"channels": len(d.channels), "length": int(d.window_len), "fs_hz": float(d.fs)},
            "load_s": round(load_s, 3), "seconds": [round(t, 4) for t in times], "median_s": round(med, 4),
            "windows_per_s": round(windows / med, 2),
            "signal_s_per_s": round(windows * d.window_len / float(d.fs) / med, 1)}


def markdown(r: dict[str, Any]) -> str:
    """The results as bench/results/shipped_speed_*.md."""
    m = r["machine"]
    load0, load1 = r["loadavg_start"][0], r["loadavg_end"][0]
    lines = [
        "# Generation speed of the shipped models (bench/shipped_speed.py)", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; GPU: {m['gpu'] or 'none'}; device "
        f"{r['device']}; Python {m['python']}, torch {m['torch']} ({r['threads']} threads); commit {m['commit']}; "
        f"{m['utc']}. Load average (1 min) at start {load0}, at end {load1}"
        + (" (the machine was shared: times are longer than on an idle one)." if load0 >= 1.0 else "."), "",
        f"What ran, per model: `generate.py --model NAME --samples {r['windows']} --batch_size {r['batch_size']}` "
        f"through its generation code in one process (labels drawn like the training windows, seed {r['seed']}, "
        "the model's own sampler and steps), writing an HDF5 file in a temporary folder; one untimed batch first, "
        f"then the median of {r['repeats']} repeats. Loading is timed apart (the card check runs before any "
        "timing).", "",
        "| model | type / size | sampler | steps | guidance | window (C x L @ Hz) | load s | median s | windows/s "
        "| signal s / s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["models"]:
        w = x["window"]
        lines.append(f"| {x['name']} | {x['model_type']} / {x['size'] or '-'} | {x['sampler']} | {x['steps']} | "
                     f"{x['guidance_scale']:g} | {w['channels']} x {w['length']} @ {w['fs_hz']:g} | {x['load_s']:.2f} "
                     f"| {x['median_s']:.3f} | {x['windows_per_s']:,.1f} | {x['signal_s_per_s']:,.0f} |")
    lines += ["", "Signal s / s: seconds of recording generated per second of wall time (windows/s x window "
                  "seconds).", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    models, out = check_args(a)
    threads = set_threads(a.threads)
    from accelerate import PartialState

    device = PartialState().device
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="shipped-speed-") as tmp:
        rows = [measure(n, p, a.windows, a.repeats, device, Path(tmp)) for n, p in models]
    info = machine_info()
    res: dict[str, Any] = {"machine": info, "device": str(device), "threads": threads, "windows": a.windows,
                           "repeats": a.repeats, "batch_size": BATCH, "seed": SEED,
                           "loadavg_start": [round(v, 2) for v in load0],
                           "loadavg_end": [round(v, 2) for v in os.getloadavg()], "models": rows}
    hw = info["gpu"] if device.type == "cuda" and info["gpu"] else info["cpu"]
    stem = out / f"shipped_speed_{info['commit'] or 'nocommit'}_{machine_slug(hw)}"
    write_text_atomic(stem.with_suffix(".json"), json.dumps(res, indent=1) + "\n")
    write_text_atomic(stem.with_suffix(".md"), markdown(res))
    for x in rows:
        print(f"{x['name']}: {x['windows_per_s']:,.1f} windows/s ({x['sampler']}, {x['steps']} steps, batch {BATCH})")
    print(f"wrote {stem.with_suffix('.json')} and .md")
    return 0


if __name__ == "__main__":
    run_main(main)
