"""Generation: which labels to generate, sampling in batches, and the appendable HDF5 output.

`plan_labels` turns `--samples N` (labels drawn like the training windows) or `--samples classes.csv`
into a plan of the N label rows (dataloader/class_csv.py: made batch by batch, never held whole; at most
MAX_WINDOWS per file); `generate_file` samples them batch by batch with the model's EMA
weights and appends each batch to the output (dataloader/synthetic.py), so an interrupted run continues
where it stopped when rerun with the same arguments. Window i's noise depends only on (seed, i), so the
file is the same whatever the batch size and wherever a run was interrupted.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from dataloader.class_csv import (MAX_WINDOWS, LabelPlan, RequestPlan, TrainingPlan, as_plan,
                                  read_class_csv)
from dataloader.config import Config
from dataloader.errors import UserError
from dataloader.scaling import to_physical, to_scaled
from dataloader.synthetic import SyntheticWriter

from .checkpoint import ModelMeta, package_version


@dataclass
class SampleArgs:
    """How to sample (the `sample` config section after command-line overrides)."""

    sampler: str                                # registry name (diffusion.samplers)
    steps: int                                  # sampler steps
    guidance_scale: float                       # classifier-free guidance w (1 = none)
    seed: int                                   # window i's noise depends on (seed, i) only
    batch_size: int                             # windows per network call (does not change results)
    eta: Optional[float] = None                 # stochasticity (ddim, ancestral samplers); None = default
    sigmas: str = "karras"                      # k-sampler noise levels
    quantize: bool = False                      # k-samplers: round sigmas to trained timesteps

    @classmethod
    def from_section(cls, section: Any, **given: Any) -> "SampleArgs":
        """From a `sample` config section (None: its defaults), each key of `given` that is not None in place
        of the section's (generate.py's options, the web app's preset)."""
        from .config import SampleConfig

        s = section or SampleConfig()
        values = {f.name: getattr(s, f.name) for f in fields(cls)}
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)

    def opts(self) -> dict[str, Any]:
        """Sampler options for `model.sample` (samplers without them ignore eta and sigmas)."""
        o: dict[str, Any] = {"sigmas": self.sigmas}
        if self.eta is not None:
            o["eta"] = self.eta
        return o


def parse_count(text: str, where: str = "--samples") -> Optional[int]:
    """`--samples` as a number of windows (1 .. MAX_WINDOWS), or None when it is not a number."""
    t = str(text).strip()
    if not (t.isascii() and t.isdigit()):
        return None
    if len(t) > 12 or int(t) > MAX_WINDOWS:  # len first: int() of a 10,000-digit string is refused by Python
        shown = t if len(t) <= 12 else t[:12] + "..."
        raise UserError(where, f"at most {MAX_WINDOWS:,} windows per file (got {shown}); split the run into "
                               "several files")
    if int(t) < 1:
        raise UserError(where, f"must be >= 1 or a class CSV (got {t})")
    return int(t)


def plan_labels(samples: str, meta: ModelMeta, seed: int) -> LabelPlan:
    """`--samples N` or `--samples FILE.csv` -> the plan of N label rows (made batch by batch)."""
    d = meta.data
    n_labels = len(d.label_names)
    counts = np.asarray(d.label_counts, np.int64).reshape(-1, n_labels + 1)
    n = parse_count(samples)
    if n is not None:
        return TrainingPlan(n, counts, n_labels, seed)
    text = str(samples).strip()
    if not text.lower().endswith(".csv") and not Path(text).is_file():
        raise UserError("--samples", f"expected a number of windows or a class CSV file (got {text!r})")
    columns, rows = read_class_csv(text, d.label_names, d.class_names)
    return RequestPlan(columns, rows, counts, n_labels, seed)


def output_bytes(n: int, meta: ModelMeta, scaled: bool, length: Optional[int] = None) -> int:
    """Uncompressed size of a generated file: N x C x L float32 (twice with --scaled) plus int64 labels;
    L is the model's window, or `length` samples for recordings of another length (--duration)."""
    d = meta.data
    n_time = int(d.window_len) if length is None else int(length)
    per = len(d.channels) * n_time * 4 * (2 if scaled else 1) + 8 * len(d.label_names)
    return int(n) * per


def check_free_space(n: int, meta: ModelMeta, out: str | os.PathLike, scaled: bool,
                     length: Optional[int] = None) -> None:
    """Refuse (UserError) a run whose estimated output does not fit in the free space of `out`'s folder.

    The estimate is uncompressed (zlib rarely halves float noise), so a refusal is never a false alarm
    by much, and a run that passes does not fill the disk hours in."""
    folder = Path(out).parent if str(Path(out).parent) else Path(".")
    need = output_bytes(n, meta, scaled, length)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise UserError("--out", f"{n:,} {'windows' if length is None else 'recordings'} need about {need / 2**30:.2f} GiB ({need:,} bytes), but "
                                 f"{folder} has {free / 2**30:.2f} GiB ({free:,} bytes) free")


# config sections that define the network: a generated file describes them as the model file stored them
MODEL_SECTIONS = ("model", "baseline")


def used_config_text(cfg: Config, meta: ModelMeta, args: SampleArgs, sr_meta: Optional[ModelMeta] = None) -> str:
    """The `config` attribute of a generated file: the user's resolved config, with the model-defining
    sections (MODEL_SECTIONS) taken from the model file's stored config (the generation config's may say
    another size: the file's is what built the network), with super-resolution (`sr_meta`, the SR model
    file's) its `sr.model` likewise, and `sample` set to the settings actually used (config after the
    command-line overrides)."""
    import dataclasses

    from diffusion.config import SampleConfig

    stored = {k: meta.config.get(k) for k in MODEL_SECTIONS if meta.config.get(k) is not None}
    if sr_meta is not None and cfg.get("sr") is not None and sr_meta.config.get("sr") is not None:
        stored["sr"] = dataclasses.replace(cfg.sr, model=sr_meta.config.sr.model)
    sample = SampleConfig(sampler=args.sampler, steps=int(args.steps), guidance_scale=float(args.guidance_scale),
                          eta=args.eta, sigmas=args.sigmas, quantize=bool(args.quantize),  # type: ignore[arg-type]
                          batch_size=int(args.batch_size), seed=int(args.seed))
    text = cfg.replace(**stored, sample=sample).yaml()
    head, _, body = text.partition("\n")
    note = "# " + ", ".join(k if k != "sr" else "sr.model" for k in stored) + ": the model files' stored config; " \
           "sample: the settings used"
    return head + "\n" + note + "\n" + body


def run_key(meta: ModelMeta, args: SampleArgs, labels: LabelPlan, scaled: bool,
            extra: Optional[dict[str, Any]] = None) -> str:
    """Identifies what a run writes: the same key means an unfinished file may be continued.

    The labels enter as their plan's definition (requests, n, seed, label_counts), never as the rows.
    The batch size is left out on purpose: it does not change the samples (except for the samplers listed in
    diffusion.samplers.BATCH_DEPENDENT, whose key keeps it). `extra`: further attributes that change what is
    written (the heart-rate fallback's target), keyed only when given.
    """
    from .samplers import BATCH_DEPENDENT

    a = asdict(args)
    if args.sampler not in BATCH_DEPENDENT:
        a.pop("batch_size")
    plan = hashlib.sha256(json.dumps(labels.definition(), sort_keys=True).encode()).hexdigest()
    key = {"model": meta.sha256, "args": a, "scaled": scaled, "labels": plan, "n": int(labels.n)}
    if extra:
        key["extra"] = extra
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def file_attrs(meta: ModelMeta, args: SampleArgs, config_text: str) -> dict[str, Any]:
    """The root attributes of a generated file (dataloader/synthetic.py): the model's data description and the
    sampling arguments; `config_text` is `used_config_text`'s."""
    d = meta.data
    return {"fs": float(d.fs), "channels": d.channels, "label_spec": d.label_spec(), "config": config_text,
            "model_config": meta.config_text, "sampler": args.sampler, "steps": int(args.steps),
            "guidance_scale": float(args.guidance_scale), "eta": -1.0 if args.eta is None else float(args.eta),
            "sigmas": args.sigmas, "seed": int(args.seed), "model_sha256": meta.sha256,
            "model_step": int(meta.step), "package_version": package_version()}


def _sample_batch(model: torch.nn.Module, y: torch.Tensor, start: int, args: SampleArgs) -> np.ndarray:
    """Windows start .. start + len(y) - 1 in [-1, 1], (B, C, L) float32; non-finite output is a UserError
    (clamping would turn inf into a plausible-looking +-1 and NaN would be written as data)."""
    with torch.no_grad():
        x = model.sample(len(y), y, sampler=args.sampler, steps=args.steps, guidance_scale=args.guidance_scale,
                         seed=args.seed, batch_size=args.batch_size, start_index=start, quantize=args.quantize,
                         **args.opts())
    x = x.float()
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).flatten(1).any(dim=1).nonzero()[0, 0]) + start
        raise UserError("model output", f"window {bad} came out non-finite (NaN or inf) with sampler "
                                        f"{args.sampler}, {args.steps} steps, guidance {args.guidance_scale:g}: "
                                        "the model is unusable with these settings; nothing was written")
    return x.clamp(-1, 1).cpu().numpy()


def generate_file(model: torch.nn.Module, meta: ModelMeta, labels: LabelPlan | np.ndarray, args: SampleArgs,
                  out: str | os.PathLike, *, config_text: str, scaled: bool = False,
                  device: torch.device | str = "cpu",
                  on_batch: Optional[Callable[[int, int], None]] = None,
                  progress: bool = True, post: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                  extra_attrs: Optional[dict[str, Any]] = None) -> Path:
    """Sample every label row of `labels` (a plan, or an (N, n_labels) array) into the HDF5 file `out`;
    returns its path.

    Continues an unfinished file of the same arguments. `on_batch(done, total)` is called after each batch
    is written (the tests interrupt a run there). A batch that comes out non-finite discards the unfinished
    file (rerunning the same arguments would give the same batch) and raises `UserError`. `post` maps each
    batch (B, C, L) in physical units before it is written (the heart-rate fallback, diffusion/rate_control.py;
    its output is clipped to the channel ranges); `extra_attrs` are more root attributes (JSON text or scalars).
    """
    from tqdm.auto import tqdm

    plan = as_plan(labels)
    d = meta.data
    lo, hi = d.ranges
    attrs = {**file_attrs(meta, args, config_text), **(extra_attrs or {})}
    key = run_key(meta, args, plan, scaled, extra_attrs)
    writer = SyntheticWriter(out, attrs=attrs, run_key=key, labels=plan,
                             n_channels=len(d.channels), length=int(d.window_len), scaled=scaled)
    n = plan.n
    with writer, tqdm(total=n, initial=writer.done, disable=not progress, desc="generate", unit="window") as bar:
        while writer.done < n:
            start = writer.done
            stop = min(n, start + args.batch_size)
            try:
                x = _sample_batch(model, torch.as_tensor(plan.rows(start, stop), device=device), start, args)
            except UserError:
                writer.discard("a batch came out non-finite")
                raise
            phys = to_physical(x, lo, hi).astype(np.float32)
            if post is not None:
                phys = post(phys)
                x = to_scaled(phys, np.asarray(lo), np.asarray(hi)).astype(np.float32)
            writer.append(phys, x if scaled else None)
            bar.update(stop - start)
            if on_batch is not None:
                on_batch(writer.done, n)
        return writer.finish()
