"""One recording: sample it, write the HDF5 file, draw the preview, and export it to a download format.

`render` turns a model and a request into signal and file through `diffusion.long_file.generate_long_file`,
the code of `generate.py --duration` (windows chained by continuation, diffusion/continuation.py), so a
request's file is that command's file for the same model, labels, length and seed. Everything else here is
format plumbing through the existing writers: dataloader/synthetic.py (HDF5), tools/export.py (WFDB, EDF, CSV),
evaluation/sample_grid.py (the preview in clinical style). Every file is written under a temporary name and renamed.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from dataloader.atomic import atomic_path

from .catalog import ModelEntry
from .settings import Preset, formats

RECORDING = "recording.h5"
PREVIEW = "preview.png"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: the same recording, the same bytes

# the progress callback of the job running on this thread (a forward hook on each served network calls it;
# one hook per network for the app's life, so that no job adds or removes hooks while another samples)
_LOCAL = threading.local()


@dataclass(frozen=True)
class Recording:
    """What to render: the model, labels (one code per label column), length, seed and preset."""

    entry: ModelEntry
    codes: tuple[int, ...]
    n_samples: int
    seed: int
    preset: Preset


def _count_evaluation(module: torch.nn.Module, args: Any, output: Any) -> None:
    tick = getattr(_LOCAL, "tick", None)
    if tick is not None:
        tick()


def install_counter(model: torch.nn.Module) -> None:
    """Call the running job's progress callback after every network evaluation of `model` (once per model)."""
    getattr(model, "net", model).register_forward_hook(_count_evaluation)


def sample_args(rec: Recording) -> Any:
    """The SampleArgs of a request: the preset's sampler and steps, the rest from the model's stored config."""
    from diffusion.generation import SampleArgs

    return SampleArgs.from_section(rec.entry.meta.config.get("sample"), sampler=rec.preset.sampler,
                                   steps=rec.preset.steps, seed=rec.seed, batch_size=1)


def render(rec: Recording, folder: Path, device: Any, progress: Callable[[float], None]) -> Path:
    """Sample `rec` into folder/recording.h5 and draw folder/preview.png; `progress(fraction)` as it goes.
    Returns the HDF5 path. The same request gives the same bytes."""
    from diffusion.continuation import plan_windows
    from diffusion.generation import used_config_text
    from diffusion.long_file import generate_long_file

    model = rec.entry.loaded(device, install_counter)
    meta, args = rec.entry.meta, sample_args(rec)
    # the presets' samplers evaluate the network once per step, in every window of the recording
    expected = max(1, args.steps) * plan_windows(model, rec.n_samples).n_windows
    done = [0]

    def tick() -> None:
        done[0] += 1
        progress(min(0.9, 0.9 * done[0] / expected))

    _LOCAL.tick = tick
    try:  # the file of `generate.py --duration` for this one label row (same sampling, attributes, checks)
        labels = np.asarray([rec.codes], np.int64).reshape(1, len(rec.codes))
        path = generate_long_file(model, meta, labels, args, folder / RECORDING, n_samples=rec.n_samples,
                                  config_text=used_config_text(meta.config, meta, args), progress=False)
    finally:
        _LOCAL.tick = None
    progress(0.95)
    _preview(rec, path, folder / PREVIEW)
    progress(1.0)
    return path


def _preview(rec: Recording, h5: Path, out: Path) -> Path:
    """The recording drawn in clinical style (CTG paper, ECG grid, from the units); at most one model window
    of it, so that the image of a long recording stays readable."""
    from dataloader.synthetic import read_synthetic
    from evaluation.sample_grid import save_compare_png

    samples, _, attrs = read_synthetic(h5)
    span = min(samples.shape[-1], rec.entry.meta.data.window_len)
    title = ", ".join(f"{s['name']} {s['classes'][c]}" for s, c in zip(attrs["label_spec"], rec.codes))
    return save_compare_png(out, samples[:, :, :span], float(attrs["fs"]), attrs["channels"],
                            synthetic_titles=[f"{rec.entry.name}: {title}" if title else rec.entry.name])


def export_file(folder: Path, fmt: str) -> Path:
    """The download of `fmt` for the recording in `folder`: the HDF5 file itself, or the `tools.export` output
    zipped (made on first request, then kept). `fmt` must be a name of `settings.formats()`."""
    from tools.export import export

    spec = formats()[fmt]
    h5 = folder / RECORDING
    if fmt == "hdf5":
        return h5
    out = folder / f"recording-{fmt}{spec.suffix}"
    if out.is_file():
        return out
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=folder))
    try:
        files = export(h5, fmt, tmp / fmt)
        with atomic_path(out, "format") as part, zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(files):
                info = zipfile.ZipInfo(f.name, _ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, f.read_bytes())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def remove_folder(folder: Optional[Path]) -> None:
    """Delete a job's folder (expiry, failure, shutdown)."""
    if folder is not None and os.path.isdir(folder):
        shutil.rmtree(folder, ignore_errors=True)
