"""The `eval` config section: what eval.py and `python -m evaluation.fcn.train` compare, and how.

The metric names are the metric registry's (`evaluation/metrics/__init__.py`), so they cannot drift from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from dataloader.config.typed import limits
from dataloader.errors import UserError

from .metrics import METRICS


@dataclass
class FCNConfig:
    """The FCN feature extractor (one per label column; Wang et al. 2017), trained once per prepared file."""

    dir: str = "runs/fcn"                       # folder of trained FCN files (<prepared stem>-<label>.safetensors)
    # block means of this many samples before the FCN (cheaper on long windows; 4 Hz CTG -> 0.25 Hz at 16)
    downsample: int = field(default=1, metadata=limits(ge=1))
    # train on at most this many windows of the train patients (a seeded subset; windows overlap heavily)
    max_train_windows: Optional[int] = field(default=None, metadata=limits(ge=2))
    max_val_windows: Optional[int] = field(default=1000, metadata=limits(ge=1))  # validation windows for early stopping
    epochs: int = field(default=50, metadata=limits(ge=1))  # passes over the training windows (at most)
    max_steps: Optional[int] = field(default=None, metadata=limits(ge=1))  # optimiser steps in total (null: no cap)
    batch_size: int = field(default=64, metadata=limits(ge=2))  # windows per step
    lr: float = field(default=1e-3, metadata=limits(gt=0))  # Adam learning rate (Wang et al. 2017)
    patience: int = field(default=5, metadata=limits(ge=1))  # epochs without validation improvement before stopping
    # weigh classes by N / (K * count) in the loss, so rare classes are learned (also for TSTR's FCN)
    balanced: bool = True
    seed: int = 0                               # window subset, initialisation and batch order


@dataclass
class GRUScoreConfig:
    """A TimeGAN post-hoc GRU score (discriminative or predictive)."""

    iterations: int = field(default=2000, metadata=limits(ge=1))  # Adam steps per run
    runs: int = field(default=5, metadata=limits(ge=1))  # independent runs (mean and std are reported)
    batch: int = field(default=128, metadata=limits(ge=1))  # windows per step (per set for the discriminator)
    max_steps: int = field(default=256, metadata=limits(ge=2))  # longer windows are read as block means


@dataclass
class TSTRConfig:
    """Train-synthetic-test-real: an FCN trained on each synthetic file (a step budget keeps it affordable)."""

    max_steps: Optional[int] = field(default=300, metadata=limits(ge=1))  # optimiser steps (null: early stopping only)
    epochs: int = field(default=20, metadata=limits(ge=1))  # passes over the synthetic windows (at most)
    patience: int = field(default=3, metadata=limits(ge=1))  # epochs without validation improvement
    val_frac: float = field(default=0.2, metadata=limits(gt=0, lt=1))  # share of the synthetic windows for validation


@dataclass
class PhysioConfig:
    """Which physiological features to compare and on which channels."""

    # ctg: FHR baseline, STV, LTV, accelerations, decelerations, contractions; ecg: HR, RMSSD, SDNN (neurokit2);
    # auto: ctg when a channel is in bpm, ecg when every channel is in mV, else none
    kind: Literal["auto", "ctg", "ecg", "none"] = "auto"
    fhr: Optional[str] = None                   # ctg: FHR channel name (default: the first channel in bpm)
    uc: Optional[str] = None                    # ctg: UC channel name (default: a channel named UC, else none)
    lead: Optional[str] = None                  # ecg: lead name (default: ii if present, else the first)


@dataclass
class ConditioningConfig:
    """The `conditioning` metric: per label column, the physiology of each generated class against every real
    class (Wasserstein-1 per feature)."""

    # physiological feature names (those of eval.physio.kind); null: ctg baseline_bpm, variability_bpm; ecg
    # hr_bpm, rmssd_ms
    features: Optional[list[str]] = None
    # fewest measured windows of a class, on each side, for it to be compared (fewer: reported as skipped)
    min_windows: int = field(default=10, metadata=limits(ge=1))


@dataclass
class EvalConfig:
    """What eval.py compares synthetic files with (real windows of held-out patients) and which metrics run."""

    prepared: Optional[str] = None              # prepared HDF5 of the real data (default: data.prepared)
    # split of the real reference: test or val (patients the generator never saw), or train for a data set with
    # no held-out patients (one series, e.g. ETTh2 or Sines, all in train): the report then says that the
    # reference is the generator's own training data, and the floor row uses other train windows than the
    # reference (disjoint subsets)
    reference: Literal["test", "val", "train"] = "test"
    # label columns (names) for the FCNs and label metrics; null = every label column of the prepared file
    labels: Optional[list[str]] = None
    # metrics to run, in report order (names: docs/evaluation.md)
    metrics: list[str] = field(default_factory=lambda: list(METRICS),
                               metadata=limits(one_of="evaluation.metrics:METRICS", what="metric"))
    # real reference windows (a seeded subset of the reference split; all when it has fewer)
    n_real: int = field(default=2000, metadata=limits(ge=2))
    # train-patient windows standing in for "synthetic" in the real-vs-real floor row
    n_floor: int = field(default=2000, metadata=limits(ge=2))
    n_synthetic: Optional[int] = field(default=None, metadata=limits(ge=1))  # first N windows of each file (null: all)
    seed: int = 0                               # subsets, score runs and t-SNE
    workers: int = field(default=2, metadata=limits(ge=1))  # processes for the GRU scores and DTW
    dtw_window: Optional[float] = field(default=0.1, metadata=limits(ge=0))  # Sakoe-Chiba band (fraction of length)
    dtw_max_len: int = field(default=256, metadata=limits(ge=2))  # DTW reads longer windows as block means
    cache_dir: str = "runs/eval-cache"         # real-vs-real floors, keyed by the prepared file's sha256 and settings
    grid_windows: int = field(default=4, metadata=limits(ge=1))  # windows per real-vs-synthetic grid figure
    fcn: FCNConfig = field(default_factory=FCNConfig)  # FCN feature extractor
    # discriminative score (TimeGAN; 2000 iterations, batch 128, 5 runs)
    discriminative: GRUScoreConfig = field(default_factory=GRUScoreConfig)
    # predictive score (TimeGAN used 5000 iterations)
    predictive: GRUScoreConfig = field(default_factory=lambda: GRUScoreConfig(iterations=5000))
    tstr: TSTRConfig = field(default_factory=TSTRConfig)  # train-synthetic-test-real classifier budget
    physio: PhysioConfig = field(default_factory=PhysioConfig)  # physiological features
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)  # per-class physiology

    def check(self, where: str) -> None:
        if len(set(self.metrics)) != len(self.metrics):
            raise UserError(f"{where}.metrics", "a metric is listed twice")

