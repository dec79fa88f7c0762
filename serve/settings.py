"""The app's settings, its quality presets and its download formats: each defined once, here.

The presets name a sampler and its steps (every one a sampler with one network evaluation per step, so that
counting evaluations gives the progress). The formats are the HDF5 file `generate.py` writes plus every format
of `tools.export` (`FORMATS` there), so a format added to the export is offered by the app without a change
here; exports that write a folder are served as a zip.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class Preset:
    """A quality preset: the sampler and its number of steps."""

    sampler: str
    steps: int
    description: str


PRESETS: dict[str, Preset] = {
    "draft": Preset("dpm_solver", 10, "DPM-Solver++ 2M, 10 steps: quick look"),
    "standard": Preset("dpm_solver", 20, "DPM-Solver++ 2M, 20 steps: the configs' default"),
    "fine": Preset("dpm_solver", 50, "DPM-Solver++ 2M, 50 steps: slowest, smallest sampling error"),
}
DEFAULT_PRESET = "standard"


@dataclass(frozen=True)
class Format:
    """A download format: the file name suffix and media type of what the app serves."""

    suffix: str
    media_type: str
    description: str


def formats() -> dict[str, Format]:
    """Download formats by name: "hdf5" (the generated file itself) and each `tools.export.FORMATS` entry."""
    from tools.export import FORMATS

    out = {"hdf5": Format(".h5", "application/x-hdf5", "HDF5 (physiodiff synthetic file, any HDF5 reader)")}
    described = {"wfdb": "WFDB record (.hea + .dat), zipped", "csv": "CSV (time + one column per channel), zipped",
                 "edf": "EDF+ (labels and synthetic origin as annotations), zipped"}
    for name in FORMATS:
        out[name] = Format(".zip", "application/zip", described.get(name, f"{name} export, zipped"))
    return out


def default_workers() -> int:
    """One job at a time per core this process may use."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass
class Settings:
    """What `python -m serve` was told (serve/__main__.py documents each option)."""

    models: list[Path]
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = field(default_factory=default_workers)
    queue: int = 16                    # jobs waiting beyond the running ones; more -> HTTP 429
    max_seconds: float = 2 * 3600.0    # the longest recording a request may ask for
    expire_minutes: float = 60.0       # finished jobs' files are deleted this long after they finish
    work_dir: Optional[Path] = None    # the app makes its own folder inside (default: the system temp folder)
    threads: Optional[int] = None      # torch threads (default: cores // workers, at least 1)

    def torch_threads(self) -> int:
        """Threads per torch call: the cores shared by the workers that may run at once."""
        if self.threads is not None:
            return max(1, self.threads)
        return max(1, len(os.sched_getaffinity(0)) // max(1, self.workers))
