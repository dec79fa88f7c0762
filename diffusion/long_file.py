"""`generate.py --duration`: recordings of any length (diffusion/continuation.py) into the synthetic HDF5 file.

The file is the one of dataloader/synthetic.py with /samples (N, C, T): one recording of T samples per
label row, T = round(duration x fs). Its attributes say what it is: `window_len` is T (the length of every
row, as for windows), `duration_s` the length in seconds, `model_window_len` the window the model was trained
on, and `continuation` how the windows were joined (`overlap`, `resample`, the schedule as JSON text). One
recording is written per append, so an interrupted run continues at the next recording.

Recording r of a file is `sample_long(..., seed=recording_seed(seed, r))`: its windows' noise is then that of
(recording_seed(seed, r), k), so the recordings differ from each other and each depends only on (seed, r).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from dataloader.class_csv import LabelPlan, as_plan
from dataloader.errors import UserError
from dataloader.scaling import to_physical
from dataloader.schedule_csv import Schedule
from dataloader.synthetic import SyntheticWriter

from .checkpoint import ModelMeta
from .continuation import plan_windows, sample_long
from .generation import SampleArgs, file_attrs, run_key
from .samplers import sample_seed

RECORDING_STREAM = 3      # sample_seed stream of the per-recording seeds


def recording_seed(seed: int, index: int) -> int:
    """The seed `sample_long` gets for recording `index` of a file generated with `seed` (63 bits)."""
    return sample_seed(seed, index, RECORDING_STREAM) % (2**63 - 1)


def n_samples_of(duration_s: float, fs: float, where: str = "--duration") -> int:
    """Samples of a `duration_s` recording at `fs` Hz (rounded; at least one)."""
    n = int(round(float(duration_s) * float(fs)))
    if n < 1:
        raise UserError(where, f"{duration_s:g} s is less than one sample at {fs:g} Hz")
    return n


def generate_long_file(model: torch.nn.Module, meta: ModelMeta, labels: LabelPlan | np.ndarray, args: SampleArgs,
                       out: str | os.PathLike, *, n_samples: int, config_text: str, overlap: float = 0.25,
                       resample: int = 0, schedule: Optional[Schedule] = None, scaled: bool = False,
                       on_batch: Optional[Callable[[int, int], None]] = None, progress: bool = True) -> Path:
    """One recording of `n_samples` samples per label row of `labels` into the HDF5 file `out`; returns
    its path. `schedule` changes labels along each recording (its columns override the row's). Continues
    an unfinished file of the same arguments; `on_batch(done, total)` after each recording."""
    from tqdm.auto import tqdm

    plan = as_plan(labels)
    d = meta.data
    lo, hi = d.ranges
    windows = plan_windows(model, n_samples, overlap)
    cont = {"method": "replacement with resampling (RePaint) in the first stage's latent",
            "overlap": float(overlap), "resample": int(resample), "pinned_latent": windows.pinned,
            "windows": windows.n_windows, "schedule": None if schedule is None else schedule.definition()}
    attrs = dict(file_attrs(meta, args, config_text), duration_s=n_samples / float(d.fs),
                 model_window_len=int(d.window_len), continuation=json.dumps(cont, sort_keys=True))
    key = run_key(meta, args, plan, scaled, {"n_samples": int(n_samples), **cont})
    writer = SyntheticWriter(out, attrs=attrs, run_key=key, labels=plan, n_channels=len(d.channels),
                             length=int(n_samples), scaled=scaled)
    times = [windows.new_start(k) / float(d.fs) for k in range(windows.n_windows)]
    n = plan.n
    with writer, tqdm(total=n, initial=writer.done, disable=not progress, desc="generate", unit="recording") as bar:
        while writer.done < n:
            r = writer.done
            base = plan.rows(r, r + 1)[0]
            rows = base if schedule is None else schedule.window_labels(base, times)
            try:
                x = sample_long(model, n_samples, rows, args.sampler, args.steps, args.guidance_scale,
                                recording_seed(args.seed, r), overlap=overlap, resample=resample,
                                quantize=args.quantize, **args.opts())
            except UserError:
                writer.discard("a recording came out non-finite")
                raise
            x = x.float().clamp(-1, 1).cpu().numpy()[None]
            writer.append(to_physical(x, lo, hi).astype(np.float32), x if scaled else None)
            bar.update(1)
            if on_batch is not None:
                on_batch(writer.done, n)
        return writer.finish()
