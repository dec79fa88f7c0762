"""Generation: which labels to generate, sampling in batches, and the appendable HDF5 output.

`plan_labels` turns `--samples N` (labels drawn like the training windows) or `--samples classes.csv`
into the (N, n_labels) label rows; `generate_file` samples them batch by batch with the model's EMA
weights and appends each batch to the output (dataloader/synthetic.py), so an interrupted run continues
where it stopped when rerun with the same arguments. Window i's noise depends only on (seed, i), so the
file is the same whatever the batch size and wherever a run was interrupted.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from dataloader.class_csv import labels_from_requests, labels_like_training, read_class_csv
from dataloader.errors import UserError
from dataloader.scaling import to_physical
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

    def opts(self) -> dict[str, Any]:
        """Sampler options for `model.sample` (samplers without them ignore eta and sigmas)."""
        o: dict[str, Any] = {"sigmas": self.sigmas}
        if self.eta is not None:
            o["eta"] = self.eta
        return o


def plan_labels(samples: str, meta: ModelMeta, seed: int) -> np.ndarray:
    """`--samples N` or `--samples FILE.csv` -> (N, n_labels) int64 label codes."""
    d = meta.data
    n_labels = len(d.label_names)
    counts = np.asarray(d.label_counts, np.int64).reshape(-1, n_labels + 1)
    text = str(samples).strip()
    if text.isdigit():
        n = int(text)
        if n < 1:
            raise UserError("--samples", f"must be >= 1 or a class CSV (got {n})")
        return labels_like_training(n, counts, n_labels, seed)
    if not text.lower().endswith(".csv") and not Path(text).is_file():
        raise UserError("--samples", f"expected a number of windows or a class CSV file (got {text!r})")
    columns, rows = read_class_csv(text, d.label_names, d.class_names)
    return labels_from_requests(columns, rows, counts, n_labels, seed, where=text)


def run_key(meta: ModelMeta, args: SampleArgs, labels: np.ndarray, scaled: bool) -> str:
    """Identifies what a run writes: the same key means an unfinished file may be continued.

    The batch size is left out on purpose: it does not change the samples (except for the samplers listed in
    diffusion.samplers.BATCH_DEPENDENT, whose key keeps it).
    """
    from .samplers import BATCH_DEPENDENT

    a = asdict(args)
    if args.sampler not in BATCH_DEPENDENT:
        a.pop("batch_size")
    key = {"model": meta.sha256, "args": a, "scaled": scaled,
           "labels": hashlib.sha256(np.ascontiguousarray(labels, np.int64).tobytes()).hexdigest(),
           "n": int(len(labels))}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def generate_file(model: torch.nn.Module, meta: ModelMeta, labels: np.ndarray, args: SampleArgs,
                  out: str | os.PathLike, *, config_text: str, scaled: bool = False,
                  device: torch.device | str = "cpu",
                  on_batch: Optional[Callable[[int, int], None]] = None,
                  progress: bool = True) -> Path:
    """Sample every label row of `labels` (N, n_labels) into the HDF5 file `out`; returns its path.

    Continues an unfinished file of the same arguments. `on_batch(done, total)` is called after each batch
    is written (the tests interrupt a run there).
    """
    from tqdm.auto import tqdm

    d = meta.data
    lo, hi = d.ranges
    attrs = {"fs": float(d.fs), "channels": d.channels, "label_spec": d.label_spec(), "config": config_text,
             "model_config": meta.config_text, "sampler": args.sampler, "steps": int(args.steps),
             "guidance_scale": float(args.guidance_scale), "eta": -1.0 if args.eta is None else float(args.eta),
             "sigmas": args.sigmas, "seed": int(args.seed), "model_sha256": meta.sha256,
             "model_step": int(meta.step), "package_version": package_version()}
    writer = SyntheticWriter(out, attrs=attrs, run_key=run_key(meta, args, labels, scaled), labels=labels,
                             n_channels=len(d.channels), length=int(d.window_len), scaled=scaled)
    n = len(labels)
    with writer, tqdm(total=n, initial=writer.done, disable=not progress, desc="generate", unit="window") as bar:
        while writer.done < n:
            start = writer.done
            stop = min(n, start + args.batch_size)
            y = torch.as_tensor(labels[start:stop], dtype=torch.long, device=device)
            with torch.no_grad():
                x = model.sample(stop - start, y, sampler=args.sampler, steps=args.steps,
                                 guidance_scale=args.guidance_scale, seed=args.seed,
                                 batch_size=args.batch_size, start_index=start, quantize=args.quantize,
                                 **args.opts())
            x = x.float().clamp(-1, 1).cpu().numpy()
            writer.append(to_physical(x, lo, hi).astype(np.float32), x if scaled else None)
            bar.update(stop - start)
            if on_batch is not None:
                on_batch(writer.done, n)
        return writer.finish()
