"""Schema of the `data` section: where recordings are, their channels, cleaning, windows, labels, split.

Nothing here assumes CTG: channels, rates, units and ranges are data (docs/design.md section 2).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from ..errors import UserError
from .typed import limits


@dataclass
class ChannelSpec:
    """One channel of the recordings."""

    name: str                                   # name in outputs and plots (e.g. FHR, ii, MLII)
    unit: str = ""                              # physical unit (bpm, mV, nd, ...)
    # physical [lo, hi] used to clip and scale to [-1, 1]; "auto" = min/max over training patients
    range: Union[tuple[float, float], Literal["auto"]] = "auto"
    # names this channel may have in the source (CSV column or WFDB signal); first match wins;
    # default: [name]
    source: Optional[list[str]] = None
    # value that means "no signal": a number (CTG uses 0), "nan", or null (no sentinel)
    missing: Union[float, Literal["nan"], None] = None
    # plausible physical values; outside them a sample counts as missing (FHR < 50 or > 240 bpm)
    valid: Optional[tuple[float, float]] = None
    required: bool = True                       # a window must have this channel present

    def check(self, where: str) -> None:
        if isinstance(self.range, tuple) and not self.range[0] < self.range[1]:
            raise UserError(f"{where}.range", f"lo must be < hi (got {list(self.range)})")
        if self.valid is not None and not self.valid[0] < self.valid[1]:
            raise UserError(f"{where}.valid", f"lo must be < hi (got {list(self.valid)})")

    @property
    def sources(self) -> list[str]:
        return list(self.source) if self.source else [self.name]


@dataclass
class LabelSpec:
    """One label column and how to discretise it into integer class codes."""

    column: str                                 # column in the labels CSV (or the annotation kind)
    name: Optional[str] = None                  # name used in configs/outputs (default: column)
    kind: Literal["categorical", "bins"] = "categorical"  # listed values, or numeric bins by edges
    # categorical: a list of raw values (class name = the value as text) or a mapping
    # class name -> list of raw values; any value not listed is an error
    categories: Union[list[Union[str, float]], dict[str, list[Union[str, float]]], None] = None
    # categorical text: "exact" value match, or "prefix" (a value starting with a listed text matches;
    # LUDB rhythms carry extra lines such as "Sinus rhythm\nWandering atrial pacemaker")
    match: Literal["exact", "prefix"] = "exact"
    edges: Optional[list[float]] = None         # bins: ascending edges; k edges -> k+1 classes
    right: bool = False                         # bins: false = [a, b) intervals, true = (a, b] (which side an edge value falls)
    class_names: Optional[list[str]] = None     # bins: optional names (default: "<7.05", "[7.05,7.15)", ...)
    # a missing value gets its own class ("missing") or drops the patient
    on_missing: Literal["class", "drop"] = "drop"
    # where labels come from: the labels CSV (per patient), WFDB beat annotations (per window: the first
    # class in `categories` order that occurs in the window, so list severe classes first), or heart_rate:
    # the rate measured on each window at preparation time (dataloader/heart_rate.py), binned by `edges`
    source: Literal["csv", "annotation", "heart_rate"] = "csv"
    channel: Optional[str] = None               # heart_rate: the channel the rate is measured on (a channel name)
    # heart_rate: how it is measured: rpeaks (neurokit2 R-peak rate of an ECG lead) or baseline (FIGO
    # baseline of a heart-rate channel in bpm, e.g. CTG's FHR)
    method: Optional[Literal["rpeaks", "baseline"]] = None

    def check(self, where: str) -> None:
        if self.kind == "categorical" and not self.categories:
            raise UserError(f"{where}.categories", "categorical labels need their categories")
        if self.kind == "bins":
            if not self.edges:
                raise UserError(f"{where}.edges", "bins need at least one edge")
            if any(b <= a for a, b in zip(self.edges, self.edges[1:])):
                raise UserError(f"{where}.edges", f"edges must be strictly ascending (got {self.edges})")
            if self.class_names is not None and len(self.class_names) != len(self.edges) + 1:
                raise UserError(f"{where}.class_names",
                                f"{len(self.edges)} edges give {len(self.edges) + 1} classes "
                                f"(got {len(self.class_names)} names)")
        if self.source == "annotation" and self.kind != "categorical":
            raise UserError(f"{where}.kind", "annotation labels are categorical")
        self._check_heart_rate(where)

    def _check_heart_rate(self, where: str) -> None:
        if self.source != "heart_rate":
            for k in ("channel", "method"):
                if getattr(self, k) is not None:
                    raise UserError(f"{where}.{k}", "only for source: heart_rate")
            return
        if self.kind != "bins":
            raise UserError(f"{where}.kind", "heart-rate labels are bins (kind: bins with edges in bpm)")
        for k in ("channel", "method"):
            if getattr(self, k) is None:
                raise UserError(f"{where}.{k}", "source: heart_rate needs the channel and the method "
                                                "(rpeaks or baseline)")

    @property
    def key(self) -> str:
        return self.name or self.column


@dataclass
class SplitSpec:
    """Patient-level split. No patient is ever on two sides."""

    train: float = field(default=0.8, metadata=limits(ge=0, le=1))
    val: float = field(default=0.1, metadata=limits(ge=0, le=1))
    test: float = field(default=0.1, metadata=limits(ge=0, le=1))
    seed: int = 0                               # the same seed gives the same manifest
    stratify: Optional[str] = None              # label name to stratify on (keeps class shares per split)

    def check(self, where: str) -> None:
        s = self.train + self.val + self.test
        if abs(s - 1.0) > 1e-6:
            raise UserError(where, f"train + val + test must sum to 1 (got {s:g})")
        if self.train <= 0:
            raise UserError(f"{where}.train", "must be > 0")


@dataclass
class WfdbSpec:
    """WFDB reading options."""

    physical: bool = True                       # use the header's gain (p_signal); false = digital units
    digital_scale: float = field(default=1.0, metadata=limits(gt=0))  # physical = digital * scale (physical: false)
    annotation: str = "atr"                     # annotation file extension for `source: annotation` labels
    records: Optional[str] = None               # file listing record names (default: every .hea in the folder)


@dataclass
class DataConfig:
    """Where the recordings are, what they hold and how to cut them into training windows."""

    source: str                                 # folder of recordings (per-patient CSV or WFDB records)
    prepared: str                               # prepared HDF5 file that preparation writes and training reads
    channels: list[ChannelSpec] = field(metadata=limits(min_len=1))  # one entry per channel, in order
    format: Literal["csv", "wfdb"] = "csv"      # per-patient CSV files or WFDB records
    fs: Optional[float] = field(default=None, metadata=limits(gt=0))  # source rate in Hz (CSV: required)
    target_fs: Optional[float] = field(default=None, metadata=limits(gt=0))  # resample to this rate
    # CSV columns that are not channels and are skipped (e.g. a timestamp: [date]); every other column must
    # be a channel's source. Each listed column must be in every file's header (a typo is an error)
    ignore_columns: list[str] = field(default_factory=list)
    labels: Optional[str] = None                # labels CSV keyed by patient id (null: no CSV labels)
    id_column: str = "id"                       # patient id column of the labels CSV
    label_columns: list[LabelSpec] = field(default_factory=list)  # labels to condition on (may be empty)
    window: Optional[int] = field(default=None, metadata=limits(gt=0))       # window length (samples)
    window_s: Optional[float] = field(default=None, metadata=limits(gt=0))   # ... or in seconds
    window_multiple: int = field(default=1, metadata=limits(ge=1))  # round windows down to this multiple
    stride_s: float = field(default=60.0, metadata=limits(gt=0))   # window hop in seconds
    max_gap_s: float = field(default=10.0, metadata=limits(ge=0))  # interpolate gaps up to this long
    storage: Literal["float32", "int16"] = "float32"  # dtype of stored segments (int16 = scaled * 32767)
    split: SplitSpec = field(default_factory=SplitSpec)  # patient-level train/val/test split
    wfdb: WfdbSpec = field(default_factory=WfdbSpec)     # WFDB reading options (format: wfdb)
    balance_by: Optional[str] = None            # label name whose classes the training sampler balances
    workers: int = field(default=2, metadata=limits(ge=1))  # processes reading recordings in preparation

    def check(self, where: str) -> None:
        if (self.window is None) == (self.window_s is None):
            raise UserError(f"{where}.window", "give exactly one of window (samples) or window_s (seconds)")
        if self.format == "csv" and self.fs is None:
            raise UserError(f"{where}.fs", "CSV recordings need their sampling rate fs")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise UserError(f"{where}.channels", f"channel names must be unique (got {names})")
        keys = [lab.key for lab in self.label_columns]
        if len(set(keys)) != len(keys):
            raise UserError(f"{where}.label_columns", f"label names must be unique (got {keys})")
        if any(lab.source == "csv" for lab in self.label_columns) and not self.labels:
            raise UserError(f"{where}.labels", "label columns from a CSV need the labels file")
        names_missing = [lab.channel for lab in self.label_columns
                         if lab.source == "heart_rate" and lab.channel not in names]
        if names_missing:
            raise UserError(f"{where}.label_columns", f"heart-rate channel {names_missing[0]!r} is not one of "
                                                      f"the channels {names}")
        for k in (self.split.stratify, self.balance_by):
            if k is not None and k not in keys:
                raise UserError(where, f"label {k!r} is not one of the label columns {keys}")
        if len(set(self.ignore_columns)) != len(self.ignore_columns):
            raise UserError(f"{where}.ignore_columns", f"a column is listed twice (got {self.ignore_columns})")
        if self.ignore_columns and self.format != "csv":
            raise UserError(f"{where}.ignore_columns", "applies to CSV recordings only (format: csv)")
        sources = {s for c in self.channels for s in c.sources}
        both = [c for c in self.ignore_columns if c in sources]
        if both:
            raise UserError(f"{where}.ignore_columns", f"column {both[0]!r} is also a channel's source; "
                                                       "a column is either read or ignored")
        if not any(c.required for c in self.channels):
            raise UserError(f"{where}.channels", "at least one channel must be required")
