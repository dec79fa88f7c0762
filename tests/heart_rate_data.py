"""Synthetic signals with a known heart rate, and a tiny ECG project with a derived heart-rate label.

`ecg_train(beats, fs, n)`: an ECG-like pulse train (narrow Q-R-S Gaussians and a broad T wave, in mV) with
R-peaks at the given times; `pulse_ecg(bpm, fs, seconds)` at a constant rate. `fhr_trace(baseline, fs, ...)`:
an FHR trace (bpm) with variability, two accelerations and a dropout. `make_ecg_project(root)`: 5 patients of
one ECG channel at 100 Hz, each recording made of 512-sample blocks at 60, 72, 90, 120 and 150 bpm (one window
per block), one flat patient whose rate cannot be measured, and a config with a `source: heart_rate` label
(5-bpm bins from 40 to 180), prepared through the real pipeline.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK_BPM = (60.0, 72.0, 90.0, 120.0, 150.0)
BLOCK = 512        # samples per block and per window (5.12 s at 100 Hz)
FS = 100.0
EDGES = list(range(40, 185, 5))

CONFIG = """\
data:
  source: {root}/signals
  prepared: {root}/prepared.h5
  format: csv
  fs: 100
  labels: null
  channels:
    - {{name: ecg, unit: mV, range: [-2, 2]}}
  label_columns:
    - {{column: hr, source: heart_rate, channel: ecg, method: rpeaks, kind: bins, edges: {edges}, on_missing: drop}}
  window: 512
  stride_s: 5.12
  split: {{train: 0.6, val: 0.2, test: 0.2, seed: 0}}
  workers: 1
model:
  size: tiny
  diffusion: {{num_steps: 100}}
train:
  out_dir: {root}/run
  max_steps: 4
  batch_size: 8
  epoch_steps: 4
  val_batches: 1
  plot_samples: 2
  plot_steps: 3
  threads: 1
  ema_decay: 0.9
sample:
  sampler: ddim
  steps: 3
  batch_size: 4
"""


def ecg_train(beats: np.ndarray, fs: float, n: int, seed: int = 0) -> np.ndarray:
    """(n,) mV: a beat shape at each R-peak time in `beats` (s), plus 0.02 mV noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    x = np.zeros(n)
    for b in beats:
        x += (1.2 * np.exp(-0.5 * ((t - b) / 0.012) ** 2) - 0.15 * np.exp(-0.5 * ((t - b - 0.03) / 0.01) ** 2)
              + 0.25 * np.exp(-0.5 * ((t - b - 0.25) / 0.05) ** 2))
    return x + 0.02 * rng.standard_normal(n)


def pulse_ecg(bpm: float, fs: float, seconds: float, seed: int = 0) -> np.ndarray:
    """(round(seconds fs),) an ECG-like pulse train at `bpm`, first R-peak at 0.3 s."""
    return ecg_train(np.arange(0.3, seconds + 1.0, 60.0 / bpm), fs, int(round(seconds * fs)), seed)


def fhr_trace(baseline: float, fs: float, minutes: float = 20.0, seed: int = 0) -> np.ndarray:
    """(minutes x 60 x fs,) bpm: baseline + 3-bpm variability + noise, two 40-s accelerations of +25 bpm and
    a 20-s dropout (0 = signal loss, as CTG stores it)."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * fs)
    t = np.arange(n) / fs
    x = baseline + 3.0 * np.sin(2 * np.pi * t / 20.0) + rng.standard_normal(n)
    for start in (300.0, 800.0):
        x += 25.0 * np.exp(-0.5 * ((t - start - 20.0) / 12.0) ** 2)
    x[(t >= 500) & (t < 520)] = 0.0
    return x


def _blocks(seed: int) -> np.ndarray:
    """One patient: a block of BLOCK samples per rate in BLOCK_BPM (R-peaks from 0.2 s into each block)."""
    beats = []
    for k, bpm in enumerate(BLOCK_BPM):
        start = k * BLOCK / FS
        beats += [b for b in np.arange(start + 0.2, start + BLOCK / FS - 0.15, 60.0 / bpm)]
    return ecg_train(np.asarray(beats), FS, BLOCK * len(BLOCK_BPM), seed)


def make_ecg_project(root: Path, n_patients: int = 5) -> Path:
    """Signals and config under `root`, prepared; returns the config path (patient q99 is flat)."""
    from dataloader.config import load_config
    from dataloader.prepare import prepare

    root = Path(root)
    (root / "signals").mkdir(parents=True, exist_ok=True)
    for p in range(n_patients):
        _save(root / "signals" / f"q{p:02d}.csv", _blocks(p))
    _save(root / "signals" / "q99.csv", np.zeros(BLOCK * len(BLOCK_BPM)))
    cfg_path = root / "ecg.yaml"
    cfg_path.write_text(CONFIG.format(root=root, edges=EDGES))
    prepare(load_config(cfg_path), workers=1)
    return cfg_path


def _save(path: Path, x: np.ndarray) -> None:
    np.savetxt(path, x[:, None], delimiter=",", header="ecg", comments="", fmt="%.4f")
