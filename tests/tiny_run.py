"""A tiny prepared data set and config for training/generation tests (CPU, seconds).

`make_tiny_project(root)` writes 10 patients x 2 channels (sine waves + noise, 1 Hz, 300 samples) as
per-patient CSV files, a labels CSV (a categorical and a binned label), a config with a tiny UNet, and
prepares the data through the real pipeline (dataloader.prepare.prepare). Windows are 32 samples.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dataloader.config import Config, load_config

CONFIG = """\
data:
  source: {root}/signals
  prepared: {root}/prepared.h5
  format: csv
  fs: 1
  labels: {root}/labels.csv
  id_column: id
  channels:
    - {{name: A, unit: mV, range: [-2, 2]}}
    - {{name: B, unit: nd, range: [0, 10]}}
  label_columns:
    - {{column: grp, categories: [a, b]}}
    - {{column: score, kind: bins, edges: [5], class_names: [low, high]}}
  window: 32
  stride_s: 8
  split: {{train: 0.6, val: 0.2, test: 0.2, seed: 0}}
  workers: 1
model:
  size: tiny
  diffusion: {{num_steps: 100}}
train:
  out_dir: {root}/run
  max_steps: 8
  batch_size: 8
  epoch_steps: 4
  val_batches: 2
  plot_samples: 2
  plot_steps: 3
  threads: 1
  ema_decay: 0.9
sample:
  sampler: ddim
  steps: 4
  batch_size: 4
"""


def make_tiny_project(root: Path, n_patients: int = 10, length: int = 300) -> Path:
    """Write signals, labels and config under `root`, prepare the data; returns the config path."""
    from dataloader.prepare import prepare

    root = Path(root)
    (root / "signals").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = ["id,grp,score"]
    for p in range(n_patients):
        t = np.arange(length)
        a = np.sin(2 * np.pi * t / (8 + p)) + 0.1 * rng.standard_normal(length)
        b = 5 + 3 * np.cos(2 * np.pi * t / 20) + 0.2 * rng.standard_normal(length)
        np.savetxt(root / "signals" / f"p{p:02d}.csv", np.stack([a, b], 1), delimiter=",", header="A,B",
                   comments="", fmt="%.4f")
        rows.append(f"p{p:02d},{'ab'[p % 2]},{(p * 3) % 10}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    cfg_path = root / "tiny.yaml"
    cfg_path.write_text(CONFIG.format(root=root))
    prepare(load_config(cfg_path), workers=1)
    return cfg_path


def tiny_config(cfg_path: Path, *overrides: str) -> Config:
    """The tiny config with `key=value` overrides."""
    return load_config(cfg_path, list(overrides))


def reset_accelerate() -> None:
    """Forget accelerate's process-wide singletons, so a test can build a fresh Accelerator."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


def run_train(cfg: Config, resume: str | None = None, stop_after: int | None = None,
              plot: bool = False) -> object:
    """train() with a fresh Accelerator (CPU, one process)."""
    from diffusion.train_loop import train

    reset_accelerate()
    plot_fn = None
    if plot:
        from evaluation.sample_grid import save_compare_png as plot_fn
    return train(cfg, resume=resume, stop_after=stop_after, plot_fn=plot_fn, progress=False)


def argv(*args: str | Path) -> Sequence[str]:
    return [str(a) for a in args]
