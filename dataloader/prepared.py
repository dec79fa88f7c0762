"""The prepared HDF5 file (PyTables): cleaned segments stored once, windows cut at read time.

Layout (docs/design.md section 2.4):
    /segments/data      (C, T) float32 scaled to [-1, 1], or int16 = round(scaled * 32767)
    /segments/index     (S, 4) int64: patient number (row of /patients), start in /segments/data, length,
                        start in the patient's recording (at the stored rate; traces a window to its source)
    /mask               (C, T) bool, True = not measured (interpolated or filled)
    /windows/<split>    (W, 2 + n_labels) int64: segment, offset in segment, label code per label column
    /patients           (P,) utf-8 patient ids
    /meta/manifest      JSON {"train": [ids], "val": [...], "test": [...]} (canonical, see split.py)
    /meta/config        the resolved config text (YAML)
    root attributes     format, format_version, fs, channels (JSON: name, unit, range), window_len, stride,
                        storage, manifest_sha256, label_spec (JSON), source, created_by (JSON: package,
                        version, utc; the config itself is /meta/config)
The manifest and config are nodes, not attributes, because HDF5 attributes are limited to 64 KiB and
both grow with the data. Labels are stored per window because annotation labels differ per window.
Compression is zlib (readable by any HDF5 tool without plugins).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import atomic_path
from .errors import UserError
from .h5safe import open_h5
from .scaling import INT16_SCALE, to_physical
from .split import SPLITS, canonical_json

FORMAT = "physiodiff-prepared"
FORMAT_VERSION = 1
PACKAGE_VERSION = "0.1.0"


@dataclass
class PreparedData:
    """Everything a prepared file holds, in memory (what `write_prepared` writes)."""

    fs: float                               # sampling rate of the stored data (Hz)
    channels: list[dict[str, Any]]          # per channel: name, unit, range [lo, hi] (physical)
    window_len: int                         # window length L in samples
    stride: int                             # window hop in samples
    data: np.ndarray                        # (C, T) float32 scaled or int16 codes
    mask: np.ndarray                        # (C, T) bool
    seg_index: np.ndarray                   # (S, 4) int64 (patient number, start, length, source start)
    windows: dict[str, np.ndarray]          # split -> (W, 2 + n_labels) int64
    patients: list[str]                     # (P,) patient ids; /segments/index refers to their rows
    manifest: dict[str, list[str]]          # split -> patient ids
    manifest_sha256: str                    # sha256 of canonical_json(manifest)
    label_spec: list[dict[str, Any]]        # LabelCoder.to_dict() per label column
    source: str                             # data.source of the config
    config_text: str                        # resolved config YAML
    created_utc: str                        # ISO time of creation (SOURCE_DATE_EPOCH), or "": left out

    @property
    def storage(self) -> str:
        return "int16" if self.data.dtype == np.int16 else "float32"


def _filters():
    import tables

    return tables.Filters(complevel=4, complib="zlib", shuffle=True)


def _put(f: Any, where: str, name: str, arr: np.ndarray) -> Any:
    """An array node; empty arrays become extendable arrays (HDF5 refuses zero-sized fixed ones)."""
    import tables

    if arr.size == 0:
        return f.create_earray(where, name, atom=tables.Atom.from_dtype(arr.dtype), shape=(0,) + arr.shape[1:],
                              track_times=False)
    # track_times=False: HDF5 stamps every dataset with its creation time otherwise (same input, same bytes)
    return f.create_carray(where, name, obj=arr, filters=_filters(), track_times=False)


def write_h5(path: str | Path, d: PreparedData) -> None:
    """Write `d` to `path` directly (callers wanting atomicity use `write_prepared` or `atomic_path`)."""
    with open_h5(path, "w", "data.prepared", title="physiodiff prepared data") as f:
        f.create_group("/", "segments")
        _put(f, "/segments", "data", np.ascontiguousarray(d.data))
        idx = _put(f, "/segments", "index", d.seg_index.astype(np.int64).reshape(-1, 4))
        idx.attrs.columns = json.dumps(["patient", "start", "length", "source_start"])
        _put(f, "/", "mask", np.ascontiguousarray(d.mask, dtype=bool))
        f.create_group("/", "windows")
        names = [lab["name"] for lab in d.label_spec]
        for s in SPLITS:
            w = d.windows.get(s, np.zeros((0, 2 + len(names)), np.int64)).astype(np.int64)
            node = _put(f, "/windows", s, w.reshape(-1, 2 + len(names)))
            node.attrs.columns = json.dumps(["segment", "offset"] + names)
        f.create_array("/", "patients", obj=np.array([p.encode("utf-8") for p in d.patients]), track_times=False)
        f.create_group("/", "meta")
        f.create_array("/meta", "manifest", obj=np.frombuffer(canonical_json(d.manifest).encode(), np.uint8),
                       track_times=False)
        f.create_array("/meta", "config", obj=np.frombuffer((d.config_text or "\n").encode(), np.uint8),
                       track_times=False)
        a = f.root._v_attrs
        a.format = FORMAT
        a.format_version = FORMAT_VERSION
        a.fs = float(d.fs)
        a.channels = json.dumps(d.channels)
        a.window_len = int(d.window_len)
        a.stride = int(d.stride)
        a.storage = d.storage
        a.manifest_sha256 = d.manifest_sha256
        a.label_spec = json.dumps(d.label_spec)
        a.source = d.source
        made = {"package": "physiodiff", "version": PACKAGE_VERSION}
        a.created_by = json.dumps({**made, "utc": d.created_utc} if d.created_utc else made)


def write_prepared(path: str | Path, d: PreparedData) -> None:
    """Write the prepared file atomically (temporary name in the same folder, then rename)."""
    with atomic_path(path, "data.prepared") as tmp:
        write_h5(tmp, d)


class PreparedFile:
    """A prepared file loaded into memory (arrays are small: the 4 Hz CTG file is ~30 MB).

    After construction the HDF5 file is closed, so the object is cheap to share with forked
    DataLoader workers and never holds a file handle.
    """

    def __init__(self, path: str | Path) -> None:
        import tables

        self.path = str(path)
        if not Path(path).is_file():
            raise UserError(self.path, "prepared file not found (run python -m tools.prepare_data --config ...)")
        try:
            is_h5 = tables.is_hdf5_file(self.path)
        except (OSError, ValueError, tables.HDF5ExtError):
            is_h5 = False
        if not is_h5:
            raise UserError(self.path, "not an HDF5 file (expected a prepared data file)")
        try:
            with open_h5(self.path, "r", self.path) as f:  # refuses pickled attributes and object arrays
                self._load(f)
        except (tables.NoSuchNodeError, KeyError, AttributeError, ValueError, TypeError, UnicodeDecodeError) as e:
            raise UserError(self.path, f"not a valid prepared data file ({type(e).__name__}: {e})") from None
        self._check()

    # --- loading ---------------------------------------------------------------------------
    def _load(self, f: Any) -> None:
        a = f.root._v_attrs
        if getattr(a, "format", None) != FORMAT:
            raise UserError(self.path, f"not a prepared data file (no attribute format = {FORMAT!r})")
        if int(a.format_version) > FORMAT_VERSION:
            raise UserError(self.path, f"prepared format version {a.format_version} is newer than this code "
                                       f"({FORMAT_VERSION})")
        self.fs = float(a.fs)
        self.channels: list[dict[str, Any]] = json.loads(a.channels)
        self.window_len = int(a.window_len)
        self.stride = int(a.stride)
        self.storage = str(a.storage)
        self.manifest_sha256 = str(a.manifest_sha256)
        self.label_spec: list[dict[str, Any]] = json.loads(a.label_spec)
        self.source = str(a.source)
        self.created_by: dict[str, Any] = json.loads(a.created_by)
        self.data: np.ndarray = f.root.segments.data[:]
        self.mask: np.ndarray = f.root.mask[:]
        idx = f.root.segments.index[:]
        if idx.ndim != 2 or idx.shape[1] != 4:
            raise UserError(self.path, f"/segments/index has shape {idx.shape}, expected (S, 4); "
                                       "prepare the data again with this version")
        self.seg_index: np.ndarray = idx.astype(np.int64)
        self.patient_ids: list[str] = [p.decode("utf-8") for p in f.root.patients[:]]
        self.manifest: dict[str, list[str]] = json.loads(bytes(f.root.meta.manifest[:]).decode("utf-8"))
        self.config_text = bytes(f.root.meta.config[:]).decode("utf-8")
        n_lab = len(self.label_spec)
        self._windows = {}
        for s in SPLITS:
            w = getattr(f.root.windows, s)[:]
            if w.ndim != 2 or w.shape[1] != 2 + n_lab:
                raise UserError(self.path, f"/windows/{s} has shape {w.shape}, expected (W, {2 + n_lab})")
            self._windows[s] = w.astype(np.int64)

    def _check(self) -> None:
        C = len(self.channels)
        bad = None
        if self.data.ndim != 2 or self.data.shape[0] != C:
            bad = f"/segments/data has shape {self.data.shape}, expected ({C}, T)"
        elif self.mask.shape != self.data.shape:
            bad = f"/mask has shape {self.mask.shape}, expected {self.data.shape}"
        elif len(self.seg_index) and (self.seg_index[:, 1] + self.seg_index[:, 2]).max() > self.data.shape[1]:
            bad = "/segments/index points past the end of /segments/data"
        elif len(self.seg_index) and self.seg_index[:, 0].max() >= len(self.patient_ids):
            bad = "/segments/index names a patient beyond /patients"
        if bad is None:
            for s, w in self._windows.items():
                if len(w) and (w[:, 0].max() >= len(self.seg_index) or w[:, 0].min() < 0
                               or (w[:, 1] + self.window_len > self.seg_index[w[:, 0], 2]).any()):
                    bad = f"/windows/{s} has windows outside their segments"
                    break
        if bad:
            raise UserError(self.path, f"corrupt prepared file: {bad}")
        lo = np.array([c["range"][0] for c in self.channels], dtype=np.float64)
        hi = np.array([c["range"][1] for c in self.channels], dtype=np.float64)
        self.lo, self.hi = lo, hi
        # per split: absolute start of every window in /segments/data and its patient number
        self._starts = {s: self.seg_index[w[:, 0], 1] + w[:, 1] for s, w in self._windows.items()}
        self._pat = {s: self.seg_index[w[:, 0], 0] for s, w in self._windows.items()}
        self._labels = {s: np.ascontiguousarray(w[:, 2:]) for s, w in self._windows.items()}
        # a (C, T - L + 1, L) view: row t is the window starting at t; fancy indexing copies only the picks
        L = self.window_len
        self._view = (np.lib.stride_tricks.sliding_window_view(self.data, L, axis=1)
                      if self.data.shape[1] >= L else None)

    # --- metadata --------------------------------------------------------------------------
    @property
    def channel_names(self) -> list[str]:
        return [c["name"] for c in self.channels]

    @property
    def label_names(self) -> list[str]:
        return [lab["name"] for lab in self.label_spec]

    @property
    def class_names(self) -> list[list[str]]:
        return [list(lab["classes"]) for lab in self.label_spec]

    @property
    def label_classes(self) -> list[int]:
        """Number of classes per label column (the "missing" class included)."""
        return [len(lab["classes"]) for lab in self.label_spec]

    @property
    def splits(self) -> dict[str, int]:
        """Window count per split."""
        return {s: len(w) for s, w in self._windows.items()}

    def n_windows(self, split: str) -> int:
        return len(self._split(split))

    def patients(self, split: str) -> list[str]:
        """Patient ids of a split (from the manifest)."""
        self._split(split)
        return list(self.manifest.get(split, []))

    def labels(self, split: str) -> np.ndarray:
        """(W, n_labels) int64 label codes of every window of a split."""
        self._split(split)
        return self._labels[split]

    def window_patients(self, split: str) -> np.ndarray:
        """(W,) int64 patient number (row of `patient_ids`) of every window of a split."""
        self._split(split)
        return self._pat[split]

    def _split(self, split: str) -> np.ndarray:
        if split not in self._windows:
            raise UserError(self.path, f"unknown split {split!r} (expected one of {list(SPLITS)})")
        return self._windows[split]

    # --- windows ---------------------------------------------------------------------------
    def _scaled(self, raw: np.ndarray) -> np.ndarray:
        if raw.dtype == np.int16:
            return raw.astype(np.float32) * np.float32(1.0 / INT16_SCALE)
        return np.array(raw, dtype=np.float32)

    def window(self, split: str, i: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Window i of a split -> (x float32 (C, L) in [-1, 1], y int64 (n_labels,), patient id)."""
        w = self._split(split)
        if not -len(w) <= i < len(w):
            raise IndexError(f"window {i} out of range for split {split!r} ({len(w)} windows)")
        s = int(self._starts[split][i])
        x = self._scaled(self.data[:, s:s + self.window_len])
        return x, self._labels[split][i].copy(), self.patient_ids[int(self._pat[split][i])]

    def batch(self, split: str, idx: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Many windows at once -> (x float32 (B, C, L), y int64 (B, n_labels), patient ids)."""
        self._split(split)
        idx = np.asarray(idx, dtype=np.int64)
        starts = self._starts[split][idx]
        if len(idx) == 0 or self._view is None:
            x = np.zeros((0, len(self.channels), self.window_len), np.float32)
        else:
            x = self._scaled(self._view[:, starts].transpose(1, 0, 2))
        pats = [self.patient_ids[int(p)] for p in self._pat[split][idx]]
        return x, self._labels[split][idx], pats

    def window_mask(self, split: str, i: int) -> np.ndarray:
        """(C, L) bool mask of window i (True = interpolated or filled, not measured)."""
        self._split(split)
        s = int(self._starts[split][i])
        return self.mask[:, s:s + self.window_len].copy()

    def window_position(self, split: str, i: int) -> tuple[int, int]:
        """(segment number, start of window i in its patient's recording, in samples at `fs`)."""
        w = self._split(split)
        seg = int(w[i, 0])
        return seg, int(self.seg_index[seg, 3] + w[i, 1])

    def to_physical(self, x_scaled: np.ndarray) -> np.ndarray:
        """[-1, 1] (..., C, L) -> physical units (..., C, L) float64 with the file's channel ranges."""
        return to_physical(np.asarray(x_scaled), self.lo, self.hi)

    def segment(self, k: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Stored segment k -> (x float32 (C, n) scaled, mask (C, n), patient id)."""
        p, s, n, _ = (int(v) for v in self.seg_index[k])
        return self._scaled(self.data[:, s:s + n]), self.mask[:, s:s + n].copy(), self.patient_ids[p]

    def summary(self) -> dict[str, Any]:
        """The attributes as plain data (what tools.inspect prints)."""
        return {"path": self.path, "fs": self.fs, "channels": self.channels, "window_len": self.window_len,
                "window_s": self.window_len / self.fs, "stride": self.stride, "storage": self.storage,
                "windows": self.splits, "patients": {s: len(v) for s, v in self.manifest.items()},
                "segments": len(self.seg_index), "labels": self.label_spec,
                "manifest_sha256": self.manifest_sha256, "source": self.source, "created_by": self.created_by}


def open_prepared(path_or_file: "str | Path | PreparedFile") -> PreparedFile:
    """A PreparedFile from a path, or the object itself."""
    return path_or_file if isinstance(path_or_file, PreparedFile) else PreparedFile(path_or_file)

