"""What every training loop reads from the prepared file: the train / val splits, their description (`DataSpec`)
and the seeded, resumable batch order (data_order.py); and the epoch length.

`training_data` accepts the prepared file already opened (a `PreparedFile` or a `WindowDataset`), so that a
caller that checked the data before training (diffusion/stages.py's preflight) does not read the file again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from dataloader.class_csv import count_label_rows, label_text
from dataloader.config import Config
from dataloader.dataset import WindowDataset
from dataloader.errors import UserError
from dataloader.prepared import PreparedFile
from dataloader.subset import patient_subset

from .data_order import WindowOrder
from .model_file import DataSpec


def check_data(ds: WindowDataset, cfg: Config) -> None:
    """Refuse a prepared file whose channels differ from the config's."""
    names = [c.name for c in cfg.data.channels]
    have = [str(c["name"]) for c in ds.channels]
    if names != have:
        raise UserError(cfg.data.prepared, f"prepared channels {have} differ from the config's {names}; "
                                           "prepare the data again with this config")


def channel_desc(ds: WindowDataset) -> list[dict[str, Any]]:
    """The channels as every trained file records them: name, unit, range."""
    return [{"name": c["name"], "unit": c.get("unit", ""), "range": list(c["range"])} for c in ds.channels]


def data_spec(ds: WindowDataset, manifest_sha256: str) -> DataSpec:
    """The data description stored in every model file: channels, rate, window length, labels."""
    return DataSpec(channels=channel_desc(ds),
                    fs=float(ds.fs), window_len=int(ds.window_len), label_names=list(ds.label_names),
                    class_names=[list(c) for c in ds.class_names],
                    label_counts=count_label_rows(ds.labels).tolist(), manifest_sha256=manifest_sha256)


def epoch_steps_for(cfg: Config, n_train: int, world: int) -> int:
    """Optimizer steps per epoch: train.epoch_steps, else one pass over the data (at most 2000 and a tenth
    of max_steps)."""
    tc = cfg.train
    if tc.epoch_steps:
        return tc.epoch_steps
    one_pass = max(1, n_train // (tc.batch_size * tc.grad_accum * world))
    return max(1, min(one_pass, 2000, math.ceil(tc.max_steps / 10)))


def spread(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n) (fewer when n < k), the same ones every epoch."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64)) if n else np.zeros(0, np.int64)


def val_generator(seed: int, first_index: int, device: Any) -> torch.Generator:
    """The fixed generator of the validation batch that starts at window `first_index`: the same noise every
    epoch, so validation losses compare across epochs."""
    return torch.Generator(device=device).manual_seed(seed * 7919 + 1_000_003 + int(first_index))


def plot_batch(val: WindowDataset, val_idx: np.ndarray, train: WindowDataset, k: int
               ) -> tuple[WindowDataset, torch.Tensor, torch.Tensor]:
    """(dataset, x (k, C, L), labels (k, n)) of the epoch plots: k of the fixed validation windows (spread over
    patients and classes, the same every epoch), or of the training windows when there is no validation."""
    ds, pool = (val, val_idx) if len(val_idx) else (train, np.arange(len(train)))
    x, y, _ = ds.get_batch(pool[spread(len(pool), k)])
    return ds, x, y


def label_titles(y: torch.Tensor, spec: DataSpec) -> list[str]:
    """Plot titles of label rows y (B, n_labels)."""
    return [label_text(row, spec.label_names, spec.class_names) for row in y.tolist()]


@dataclass
class TrainingData:
    """What every training loop (diffusion, first stage, baselines) reads: data, its description, its order."""

    train: WindowDataset                        # train-split windows (all train patients, or train.patients)
    val: WindowDataset                          # validation-patient windows
    spec: DataSpec                              # channels, rate, window length, labels, manifest hash
    order: WindowOrder                          # batch order: a pure function of (seed, micro-batch number)


def open_splits(cfg: Config, opened: Optional[PreparedFile | WindowDataset] = None,
                patients: Optional[list[str]] = None) -> tuple[WindowDataset, WindowDataset]:
    """The train split (only `patients`' windows when given) and the val split of `cfg.data.prepared` (or of
    `opened`, the same file already read), checked against the config's channels."""
    source = opened.file if isinstance(opened, WindowDataset) else (opened or cfg.data.prepared)
    train_ds = patient_subset(WindowDataset(source, "train"), patients)
    val_ds = WindowDataset(train_ds.file, "val")
    check_data(train_ds, cfg)
    return train_ds, val_ds


def training_data(cfg: Config, rank: int = 0, world: int = 1,
                  opened: Optional[PreparedFile | WindowDataset] = None) -> TrainingData:
    """Open the prepared file's train (restricted to `train.patients` when set) and val splits (`opened`: the
    file already read), check them against the config, and build the data order of process `rank` of `world`
    (balanced by `data.balance_by`)."""
    tc = cfg.train
    train_ds, val_ds = open_splits(cfg, opened, getattr(tc, "patients", None))
    if len(val_ds) == 0 and tc.lr_schedule == "plateau":
        raise UserError("train.lr_schedule", "plateau needs validation windows, and the val split has none")
    spec = data_spec(train_ds, str(getattr(train_ds.file, "manifest_sha256", "")))
    weights = None
    if cfg.data.balance_by:
        from dataloader.sampler import BalancedSampler

        weights = BalancedSampler(train_ds, cfg.data.balance_by).p
    order = WindowOrder(len(train_ds), tc.batch_size, tc.seed, rank, world, weights)
    return TrainingData(train_ds, val_ds, spec, order)
