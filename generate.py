"""Generate labelled synthetic windows with a trained model and write them to HDF5.

    python generate.py --config configs/ctg/sampling-diffusion.yaml --samples 1000 --out synthetic.h5
    python generate.py --config ... --samples configs/ctg/demo-classes.csv --out syn.h5 --plot plots/

--samples N draws the labels from the training windows' label distribution (stored in the model file);
--samples FILE.csv asks for classes: label columns by name (class names or codes) and a last `count`
column, e.g. `pH,delivery,count` / `pH<7.05,caesarean,8`; label columns it leaves out are drawn like the
training windows that match the given ones. One file holds at most 1,000,000 windows and a class CSV at
most 100,000 rows (dataloader/class_csv.py: MAX_WINDOWS, MAX_CSV_ROWS); a run whose estimated output
(N x channels x length x 4 bytes, twice with --scaled) exceeds the free space of the --out folder is refused.

The output (HDF5, PyTables): /samples (N, C, L) float32 in physical units, /labels (N, n_labels) codes,
/samples_scaled with --scaled, and attributes (fs, channels, label spec, sampler, steps, guidance, seed,
model sha256, version, time). It is written in batches under a hidden name beside --out; rerunning an
interrupted command continues it; the finished file is renamed into place.
"""
from __future__ import annotations

import sys
from pathlib import Path
import argparse
from typing import Any, Optional, Sequence

from dataloader.atomic import check_out_dir, check_out_file
from dataloader.class_csv import MAX_CSV_ROWS, MAX_WINDOWS
from dataloader.cli import add_config_args, make_parser, run_main, set_threads
from dataloader.config import load_config
from dataloader.errors import UserError


def _parser():  # type: ignore[no-untyped-def]
    from diffusion.samplers import list_samplers

    doc = __doc__.split("\n\n")
    p = make_parser("generate.py", "\n\n".join(doc[:3]), epilog=doc[3] + "\n\nsamplers: " + ", ".join(list_samplers()))
    add_config_args(p, required=False)
    p.add_argument("--checkpoint", metavar="FILE", default=None,
                   help="model file (default: <train.out_dir>/model.safetensors)")
    p.add_argument("--model", metavar="NAME", default=None,
                   help="a shipped model, models/NAME/model.safetensors (its card: models/NAME/README.md); "
                        "without --config its own stored config is used, overrides applied")
    p.add_argument("--samples", required=True, metavar="N|FILE.csv",
                   help=f"number of windows (labels like the training data) or a class CSV with a count column; "
                        f"at most {MAX_WINDOWS:,} windows per file, {MAX_CSV_ROWS:,} CSV rows")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="output HDF5 file (its folder must exist)")
    p.add_argument("--sampler", default=None, metavar="NAME",
                   help="sampler (default: sample.sampler); one of: " + ", ".join(list_samplers()))
    p.add_argument("--steps", type=int, default=None, metavar="N", help="sampler steps (default: sample.steps)")
    p.add_argument("--guidance_scale", type=float, default=None, metavar="W",
                   help="classifier-free guidance w, 1 = none (default: sample.guidance_scale)")
    p.add_argument("--eta", type=float, default=None, help="sampler stochasticity (default: sample.eta)")
    p.add_argument("--seed", type=int, default=None, help="seed: window i depends on (seed, i) only "
                                                          "(default: sample.seed)")
    p.add_argument("--batch_size", type=int, default=None, metavar="B",
                   help="windows per network call; does not change the result (default: sample.batch_size)")
    p.add_argument("--scaled", action="store_true", help="also write /samples_scaled in [-1, 1]")
    p.add_argument("--plot", metavar="DIR", default=None,
                   help="also draw generated windows beside real test windows of the same class into "
                        "DIR/generated.png (needs data.prepared; its PNG Description lists the pairs)")
    p.add_argument("--plot_n", type=int, default=6, metavar="N",
                   help="generated windows in the --plot (1-100); with a class CSV at least one of every "
                        "requested class")
    p.add_argument("--export", choices=("wfdb", "edf", "csv"), default=None,
                   help="also export every window to <out without .h5>-<format>/ (see python -m tools.export)")
    p.add_argument("--bpm", type=float, default=None, metavar="BPM",
                   help="heart rate of every window, measured as neurokit2's R-peak rate. A model with a derived "
                        "label (source: heart_rate, method: rpeaks) is conditioned on the bin holding BPM (it must "
                        "lie in the label's edges, in a bin with training windows); any other model gets the "
                        "fallback: each window resampled in time to BPM. The output's heart_rate_control "
                        "attribute says which")
    p.add_argument("--baseline_bpm", type=float, default=None, metavar="BPM",
                   help="FIGO baseline of a heart-rate channel (CTG's FHR): a model with a method: baseline "
                        "heart-rate label is conditioned on its bin; any other model gets the fallback: the "
                        "channel shifted to that baseline")
    p.add_argument("--rate_channel", default=None, metavar="NAME",
                   help="the channel the fallback measures and corrects (default: the first)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--duration", default=None, metavar="TIME",
                   help="recordings of this length instead of single windows (90s, 30min, 2h, 1h30m, mm:ss; "
                        "at most 48 h), by continuation: each window's first part pinned to the previous one")
    p.add_argument("--schedule", default=None, metavar="FILE.csv",
                   help="with --duration: labels along the recording (columns start, then label columns)")
    p.add_argument("--overlap", type=float, default=None, metavar="F",
                   help="with --duration: fraction of each window pinned to the previous one (default 0.25)")
    p.add_argument("--resample", type=int, default=None, metavar="U",
                   help="with --duration: RePaint resampling passes per step while pinned (default 0)")
    return p


def _sample_args(cfg, a):  # type: ignore[no-untyped-def]
    from diffusion.generation import SampleArgs
    from diffusion.samplers import list_samplers

    args = SampleArgs.from_section(cfg.get("sample"), sampler=a.sampler or None, steps=a.steps,
                                   guidance_scale=a.guidance_scale, seed=a.seed, batch_size=a.batch_size,
                                   eta=a.eta)
    if args.sampler not in list_samplers():
        raise UserError("--sampler", f"unknown sampler {args.sampler!r} (expected one of: {', '.join(list_samplers())})")
    for name, v, lo in (("--steps", args.steps, 1), ("--batch_size", args.batch_size, 1), ("--seed", args.seed, 0)):
        if v < lo:
            raise UserError(name, f"must be >= {lo} (got {v})")
    if args.guidance_scale < 0 or (args.eta is not None and args.eta < 0):
        raise UserError("--guidance_scale" if args.guidance_scale < 0 else "--eta", "must be >= 0")
    return args


def _check_outputs(a: argparse.Namespace) -> Path:
    """Every output path is usable before any work: --out a .h5 name in an existing folder (not a folder
    itself), --plot a folder (or a new name in an existing one), the --export folder not a file."""
    out = check_out_file(a.out, "--out")
    if out.suffix not in (".h5", ".hdf5"):
        raise UserError("--out", f"expected a .h5 file name (got {a.out!r})")
    if not 1 <= a.plot_n <= 100:  # evaluation.sample_grid.MAX_PLOT_N (not imported here: it loads matplotlib)
        raise UserError("--plot_n", f"must be 1 to 100 (got {a.plot_n})")
    if a.plot is not None:
        check_out_dir(a.plot, "--plot")
        if Path(a.plot).exists() and not Path(a.plot).is_dir():
            raise UserError("--plot", f"{a.plot!r} is a file (expected a folder for generated.png)")
    if a.export:
        folder = out.with_name(f"{out.stem}-{a.export}")
        if folder.exists() and not folder.is_dir():
            raise UserError("--export", f"{str(folder)!r} is a file (the export writes a folder of that name)")
    return out


def _plot(a: argparse.Namespace, path: Path, labels: object, real: object, seed: int) -> Path:
    """--plot: DIR/generated.png, --plot_n windows beside real test windows of the same class; with a class
    CSV, every request."""
    from evaluation.sample_grid import MAX_PLOT_N, plot_generated

    cum = getattr(labels, "cum", None)  # a class CSV's requests: windows cum[r - 1] .. cum[r] - 1
    starts = None if cum is None else [0, *[int(c) for c in cum[:-1]]]
    if starts is not None and len(starts) > MAX_PLOT_N:
        print(f"note: the plot shows {MAX_PLOT_N} of the {len(starts)} requested classes", file=sys.stderr)
    return plot_generated(path, real[0], Path(a.plot) / "generated.png", n=a.plot_n, seed=seed, starts=starts,
                          columns=getattr(labels, "columns", None), spare=real[1:])  # real ones match the CSV's


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_intermixed_args(argv)  # overrides may come before or after options
    cfg, ckpt, meta = _config_and_model(a)
    args = _sample_args(cfg, a)
    out = _check_outputs(a)
    from diffusion.checkpoint import check_against_config, read_model_meta
    from diffusion.generation import check_free_space, output_bytes, used_config_text

    meta = meta or read_model_meta(ckpt)  # read once: it hashes the whole file
    file_meta = meta  # the --checkpoint file's (with sr, load_sr_pipeline's meta is the SR model's)
    check_against_config(meta.data, cfg, ckpt)
    sr_file = None
    if cfg.get("sr") is not None:  # coarse model + latent super-resolution (diffusion/superres.py)
        from diffusion.superres import check_sr_file

        sr_file = check_sr_file(cfg, meta)
    if a.duration is not None and (a.bpm is not None or a.baseline_bpm is not None):
        raise UserError("--bpm" if a.bpm is not None else "--baseline_bpm",
                        "sets the rate of single windows; with --duration it is not supported yet")
    labels, args, rate = _plan_labels(a, meta, args)
    long = _long_request(a, cfg, meta)
    check_free_space(len(labels), meta, out, a.scaled, None if long is None else long["n_samples"])
    real = None
    if a.plot is not None:
        from dataloader.dataset import WindowDataset

        # test patients first; val, then train patients only for a requested class the test split lacks
        real = [WindowDataset(cfg.data.prepared, split) for split in ("test", "val", "train")]  # UserError early
    if a.dry_run:
        print(cfg.yaml(), end="")
        size = output_bytes(len(labels), meta, a.scaled, None if long is None else long["n_samples"]) / 1e6
        what = "windows" if long is None else f"recordings of {long['n_samples']:,} samples"
        print(f"# would write {len(labels):,} {what} (about {size:,.1f} MB uncompressed) to {out} with {args}")
        return 0

    from accelerate import PartialState

    set_threads(a.threads)
    device = PartialState().device
    model, meta = _load_model(ckpt, meta, sr_file, cfg, device)
    used = used_config_text(cfg, file_meta, args, meta if sr_file else None)
    path = _write(a, model, meta, labels, args, out, used, device, long, rate)
    _after(a, path, labels, real, args.seed, rate)
    return 0


def _after(a: argparse.Namespace, path: Path, labels: Any, real: Any, seed: int, rate: Any) -> None:
    """What follows a finished file: the heart-rate fallback's note, --plot and --export."""
    if rate is not None and rate.post is not None and rate.post.unmeasured:
        print(f"note: {rate.post.unmeasured} windows had no measurable rate and were left as generated",
              file=sys.stderr)
    if real is not None:
        print(f"plot: {_plot(a, path, labels, real, seed)}")
    if a.export:
        from tools.export import export

        folder = path.with_name(f"{path.stem}-{a.export}")
        files = export(path, a.export, folder)
        print(f"exported {len(files)} files to {folder}")


def _write(a: argparse.Namespace, model: Any, meta: Any, labels: Any, args: Any, out: Path, used: str,
           device: Any, long: Optional[dict[str, Any]], rate: Any = None) -> Path:
    """Sample and write the file: windows (generate_file; `rate`: the heart-rate fallback's post-processing and
    attributes) or, with --duration, recordings (generate_long_file). A terminal gets a tqdm bar; a pipe or log
    file gets a line every 10% or 30 s."""
    from evaluation.progress import LineProgress

    unit = "window" if long is None else "recording"
    lines = None if sys.stderr.isatty() else LineProgress("generate", len(labels), unit)
    if long is not None:
        from diffusion.long_file import generate_long_file

        path = generate_long_file(model, meta, labels, args, out, config_text=used, scaled=a.scaled,
                                  on_batch=lines, progress=lines is None, **long)
    else:
        from diffusion.generation import generate_file

        path = generate_file(model, meta, labels, args, out, config_text=used, scaled=a.scaled, device=device,
                             on_batch=lines, progress=lines is None, post=rate.post if rate else None,
                             extra_attrs=rate.attrs if rate else None)
    print(f"wrote {len(labels)} {unit}s to {path}")
    return path


def _long_request(a: argparse.Namespace, cfg: Any, meta: Any) -> Optional[dict[str, Any]]:
    """--duration (with --schedule, --overlap, --resample) -> generate_long_file's keyword arguments, or None
    for single windows. Checked before any work: a diffusion model without super-resolution, a length that
    parse_duration accepts, a schedule that fits the model's labels and the recording."""
    if a.duration is None:
        for name in ("schedule", "overlap", "resample"):
            if getattr(a, name) is not None:
                raise UserError(f"--{name}", "only with --duration")
        return None
    from dataloader.duration import parse_duration
    from diffusion.long_file import n_samples_of

    seconds = parse_duration(a.duration, "--duration")
    if meta.config.model.type != "diffusion" or cfg.get("sr") is not None:
        raise UserError("--duration", "recordings longer than a window need a diffusion model without "
                                      "super-resolution (continuation samples with the model's denoiser)")
    if a.plot is not None:
        raise UserError("--plot", "draws single windows; with --duration plot the recordings with bench/seams.py")
    overlap = 0.25 if a.overlap is None else a.overlap
    if not 0.0 < overlap < 1.0:
        raise UserError("--overlap", f"must be between 0 and 1, exclusive (got {overlap})")
    resample = 0 if a.resample is None else a.resample
    if resample < 0:
        raise UserError("--resample", f"must be >= 0 (got {resample})")
    schedule = None
    if a.schedule is not None:
        from dataloader.schedule_csv import read_schedule_csv

        schedule = read_schedule_csv(a.schedule, meta.data.label_names, meta.data.class_names)
        schedule.check_within(seconds, a.schedule)
    return {"n_samples": n_samples_of(seconds, meta.data.fs), "overlap": float(overlap),
            "resample": int(resample), "schedule": schedule}


def _config_and_model(a: argparse.Namespace) -> tuple[Any, str, Any]:
    """(the config, the model file, its metadata when read here, else None): --model NAME (a shipped model;
    its stored config unless --config), or --config with --checkpoint or <train.out_dir>/model.safetensors."""
    if a.model is not None:
        from diffusion.checkpoint import read_model_meta
        from dataloader.config import config_from_text
        from tools.ship import shipped_model

        if a.checkpoint is not None:
            raise UserError("--model", "give a shipped --model or a --checkpoint file, not both")
        ckpt = str(shipped_model(a.model))
        if a.config is not None:
            return load_config(a.config, a.overrides), ckpt, None
        meta = read_model_meta(ckpt)
        return config_from_text(meta.config_text, f"model {a.model}", a.overrides), ckpt, meta
    if a.config is None:
        raise UserError("--config", "required (or --model NAME for a shipped model)")
    cfg = load_config(a.config, a.overrides)
    return cfg, _model_path(cfg, a), None


def _model_path(cfg: Any, a: argparse.Namespace) -> str:
    """--checkpoint, or the config's train.out_dir/model.safetensors."""
    if a.checkpoint is not None:
        return str(a.checkpoint)
    if cfg.get("train") is None:
        raise UserError("--checkpoint", "give the model file (the config has no train.out_dir)")
    return str(Path(cfg.train.out_dir) / "model.safetensors")


def _plan_labels(a: argparse.Namespace, meta: Any, args: Any) -> tuple[Any, Any, Any]:
    """(labels (N, n) of the windows to write, the sampling arguments, the heart-rate control or None)."""
    from diffusion.rate_control import plan_rate_control

    labels, args = _plan_model_labels(a, meta, args)
    rate = plan_rate_control(a, meta, args.seed, labels)
    if rate is not None:
        print(rate.note, file=sys.stderr)
        labels = rate.labels
    return labels, args, rate


def _plan_model_labels(a: argparse.Namespace, meta: Any, args: Any) -> tuple[Any, Any]:
    """(labels (N, n) of the windows to write, the sampling arguments): a GAN / VAE baseline has no sampler
    and an unconditional one takes no classes (baselines/generation.py)."""
    from diffusion.generation import plan_labels

    if meta.config.model.type == "diffusion":
        return plan_labels(a.samples, meta, args.seed), args
    from baselines.generation import baseline_sample_args, plan_baseline_labels

    labels, note = plan_baseline_labels(a.samples, meta, args.seed)
    if any(v is not None for v in (a.sampler, a.steps, a.guidance_scale, a.eta)):
        print(f"note: {meta.config.model.type} has no sampler: --sampler, --steps, --guidance_scale and --eta "
              "are ignored", file=sys.stderr)
    if note:
        print(note, file=sys.stderr)
    return labels, baseline_sample_args(meta, args.seed, args.batch_size)


def _load_model(ckpt: str, meta: Any, sr_file: Any, cfg: Any, device: Any) -> tuple[Any, Any]:
    """(model, its metadata) on `device`: a baseline, the coarse + super-resolution pipeline (both stages per
    batch) or a diffusion model."""
    if meta.config.model.type != "diffusion":
        from baselines.generation import load_baseline_file

        return load_baseline_file(ckpt, cfg, device)
    if sr_file is not None:
        from diffusion.superres import load_sr_pipeline

        return load_sr_pipeline(ckpt, sr_file, cfg, device)
    from diffusion.checkpoint import load_model_file

    return load_model_file(ckpt, cfg, device)


if __name__ == "__main__":
    run_main(main)
