"""The generated-samples HDF5 file (PyTables), docs/design.md section 5: written in batches, appendable, atomic.

Nodes:
    /samples          (N, C, L) float32, physical units (bpm, mV, ...)
    /samples_scaled   (N, C, L) float32 in [-1, 1] (only when asked for)
    /labels           (N, n_labels) int64 class codes (names in the `label_spec` attribute)
Attributes (scalars and JSON text only, never pickles): format, fs, channels (JSON: name, unit, range),
label_spec (JSON: name, classes), window_len, n_samples, config (resolved YAML text: the model file's model
section and the sampling settings used), sampler, steps, guidance_scale, seed, model_sha256, package_version,
created_utc, run_key. /samples (and /samples_scaled) carry their own `channels` (JSON list of names),
`units` (JSON list) and `fs` (Hz), readable by any HDF5 reader (h5py: `json.loads(ds.attrs["units"])`).
Every string attribute of the finished file is a variable-length UTF-8 string (h5py returns `str`).

Appendable: the file grows under a fixed hidden name beside the target (`.tmp-<name>.partial`). A run that
is interrupted leaves it there; rerunning with the same arguments (same `run_key`: model, config,
sampler, steps, guidance, seed, planned labels) continues after the samples already written, and the
finished file is renamed into place. A partial file of other arguments is discarded. No real patient id
is ever written: the attributes hold only the model's data description and the generation arguments.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .atomic import check_out_file
from .class_csv import LabelPlan, as_plan
from .errors import UserError
from .h5_text import text_attrs
from .h5safe import open_h5
from .lock import exclusive
from .repro import stamp_time

FORMAT = "physiodiff-synthetic-1"
_JSON_ATTRS = ("channels", "label_spec")


def partial_path(out: str | os.PathLike) -> Path:
    """The hidden name an unfinished output grows under (beside `out`)."""
    p = Path(out)
    return p.with_name(f".tmp-{p.name}.partial")


def _node_attrs(attrs: dict[str, Any], scaled: bool) -> dict[str, Any]:
    """Attributes of /samples and /samples_scaled themselves, so a reader of that node alone (h5py, MATLAB)
    has what it needs: `channels` and `units` as JSON text lists (plain strings, never pickles; `finish`
    makes them variable-length UTF-8, which h5py returns as str), `fs` (Hz) as a float; /samples_scaled
    also has `range` (each channel's physical [lo, hi], mapped to [-1, 1]) and its units are "1"
    (dimensionless)."""
    chans = attrs.get("channels") or []
    chans = [c if isinstance(c, dict) else {"name": str(c)} for c in chans]
    out: dict[str, Any] = {"channels": json.dumps([str(c.get("name", i)) for i, c in enumerate(chans)])}
    if scaled:
        out["units"] = json.dumps(["1"] * len(chans))
        out["range"] = json.dumps([c.get("range") for c in chans])
    else:
        out["units"] = json.dumps([str(c.get("unit", "")) for c in chans])
    if attrs.get("fs") is not None:
        out["fs"] = float(attrs["fs"])
    return out


class SyntheticWriter:
    """Append batches of generated windows; `finish()` renames the file into place.

    `attrs` must hold fs, channels, label_spec, config, sampler, steps, guidance_scale, seed, model_sha256,
    package_version (see module docstring); `run_key` identifies the arguments, `labels` is the plan of
    every label row (dataloader.class_csv.LabelPlan, or an (N, n_labels) array): each append writes its
    batch's rows, and a continued run checks the rows already written against it, in chunks.
    """

    _CHECK_ROWS = 65536  # label rows compared per step when continuing (memory stays flat for any N)

    def __init__(self, out: str | os.PathLike, *, attrs: dict[str, Any], run_key: str,
                 labels: "LabelPlan | np.ndarray", n_channels: int, length: int, scaled: bool = False) -> None:
        import tables

        self.out = check_out_file(out, "--out")
        self.path = partial_path(self.out)
        # one writer per output for the writer's whole life: a second run on the same --out is refused
        # before it can touch this one's unfinished file (released by close(), also after finish())
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(exclusive(self.out, "--out"))
        self.plan = as_plan(labels)
        self.n_total = self.plan.n
        self.scaled = scaled
        self._tables = tables
        try:
            self.h5 = self._open_existing(run_key)
            if self.h5 is None:
                self.h5 = self._create(attrs, run_key, n_channels, length)
        except BaseException:
            self._lock.close()
            raise

    # -- opening ----------------------------------------------------------------------------------
    def _open_existing(self, run_key: str) -> Any:
        tables = self._tables
        if not self.path.exists():
            return None
        try:
            h5 = open_h5(self.path, "a", str(self.path))  # refuses (UserError) a planted unsafe file
        except UserError:
            raise
        except Exception:  # an interrupted HDF5 write can leave an unreadable file: start over
            self._discard("it could not be opened")
            return None
        try:
            ok = str(getattr(h5.root._v_attrs, "run_key", "")) == run_key
            done = len(h5.root.samples)
            if ok and self.scaled:
                done = min(done, len(h5.root.samples_scaled))
            ok = ok and self._labels_match(h5.root.labels, done)
        except Exception:
            ok = False
        if not ok:
            h5.close()
            self._discard("it was written with other arguments")
            return None
        nodes = ("samples",) + (("samples_scaled",) if self.scaled else ()) + (("labels",) if self._grows() else ())
        for node in nodes:
            arr = getattr(h5.root, node)
            if len(arr) > done:  # a batch was cut short between nodes: keep only complete rows
                arr.truncate(done)
        print(f"continuing {self.out}: {done} of {self.n_total} samples already written", file=sys.stderr)
        return h5

    def _grows(self) -> bool:
        # /labels of a run without label columns is a (N, 0) array written whole: PyTables cannot extend
        # an array with no column
        return self.plan.n_labels > 0

    def _labels_match(self, labels: Any, done: int) -> bool:
        """The label rows 0 .. done - 1 in the file are the plan's (checked in chunks)."""
        if self._grows() != isinstance(labels, self._tables.EArray) or len(labels) < done:
            return False  # e.g. a partial file of an older version, whose /labels was written whole
        if labels.shape[1:] != (self.plan.n_labels,):
            return False
        return all(np.array_equal(labels[i: min(done, i + self._CHECK_ROWS)],
                                  self.plan.rows(i, min(done, i + self._CHECK_ROWS)))
                   for i in range(0, done, self._CHECK_ROWS))

    def _discard(self, why: str) -> None:
        print(f"note: discarding unfinished {self.path} ({why})", file=sys.stderr)
        self.path.unlink(missing_ok=True)

    def discard(self, why: str) -> None:
        """Close and remove the unfinished file (a batch that cannot be written makes it useless: the same
        arguments would reach the same batch again)."""
        h5 = getattr(self, "h5", None)
        if h5 is not None and h5.isopen:
            h5.close()
        self._discard(why)

    def _create(self, attrs: dict[str, Any], run_key: str, n_channels: int, length: int) -> Any:
        tables = self._tables
        h5 = open_h5(self.path, "w", str(self.path), title="physiodiff synthetic samples")
        try:
            filt = tables.Filters(complevel=1, complib="zlib", shuffle=True)
            n = max(1, self.n_total)
            for node in ("samples",) + (("samples_scaled",) if self.scaled else ()):
                h5.create_earray("/", node, tables.Float32Atom(), (0, n_channels, length), filters=filt, track_times=False,
                                 expectedrows=n, chunkshape=(1, n_channels, length))
            # label rows are appended batch by batch with their samples (a plan makes them on demand, so
            # memory does not grow with N); a continued run checks the rows it finds against the plan
            if self._grows():
                h5.create_earray("/", "labels", tables.Int64Atom(), (0, self.plan.n_labels), track_times=False,
                                 expectedrows=n)
            else:
                h5.create_array("/", "labels", np.zeros((self.n_total, 0), np.int64), track_times=False)
            a = h5.root._v_attrs
            for k, v in attrs.items():
                setattr(a, k, json.dumps(v) if k in _JSON_ATTRS else v)
            for node in ("samples",) + (("samples_scaled",) if self.scaled else ()):
                na = getattr(h5.root, node).attrs
                for k, v in _node_attrs(attrs, scaled=node == "samples_scaled").items():
                    setattr(na, k, v)
            a.format = FORMAT
            a.run_key = run_key
            a.n_samples = self.n_total
            a.window_len = length
            h5.flush()
        except BaseException:
            h5.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            raise
        return h5

    # -- writing ----------------------------------------------------------------------------------
    @property
    def done(self) -> int:
        """Samples already in the file (a continued run starts here)."""
        return len(self.h5.root.samples)

    def append(self, samples: np.ndarray, samples_scaled: Optional[np.ndarray] = None) -> None:
        """Append a batch: `samples` (B, C, L) physical units; `samples_scaled` (B, C, L) in [-1, 1].

        Their labels are rows done .. done + B of the plan given at construction.
        """
        b = len(samples)
        start = self.done
        if start + b > self.n_total:
            raise ValueError(f"{start + b} samples exceed the planned {self.n_total}")
        if self._grows():  # /labels first: a batch cut short after it is truncated away on continuing
            labels = self.h5.root.labels
            if len(labels) > start:
                labels.truncate(start)
            labels.append(self.plan.rows(start, start + b))
        if self.scaled:
            if samples_scaled is None:
                raise ValueError("this file keeps samples_scaled: pass them")
            self.h5.root.samples_scaled.append(np.asarray(samples_scaled, np.float32))
        # /samples last: its length is what `done` reads, so a cut-short batch is never counted
        self.h5.root.samples.append(np.asarray(samples, np.float32))
        self.h5.flush()

    def finish(self) -> Path:
        """Stamp the time, close and rename the complete file into place; returns the final path."""
        if self.done != self.n_total:
            raise ValueError(f"only {self.done} of {self.n_total} samples written")
        when = stamp_time()  # no wall-clock time unless SOURCE_DATE_EPOCH: same input and seed, same bytes
        if when is not None:
            self.h5.root._v_attrs.created_utc = when
        nodes = ["/", "/samples"] + (["/samples_scaled"] if self.scaled else [])
        self.h5.close()
        text_attrs(self.path, nodes)  # h5py readers get str, not bytes (dataloader/h5_text.py)
        os.replace(self.path, self.out)
        self.close()
        return self.out

    def close(self) -> None:
        """Close without finishing (the partial file stays for a later run to continue); releases --out."""
        h5 = getattr(self, "h5", None)
        if h5 is not None and h5.isopen:
            h5.close()
        self._lock.close()

    def __enter__(self) -> "SyntheticWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_synthetic(path: str | os.PathLike, scaled: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a generated file: `(samples (N, C, L) float32, labels (N, n_labels) int64, attrs)`.

    `samples` are physical units, or the [-1, 1] copy with `scaled=True` (the file must have it).
    JSON attributes (channels, label_spec) come back parsed. Bad files (unsafe, malformed, shapes that
    disagree with the attributes, values that are not finite or far outside the channels' ranges) raise
    `UserError`: a file that would be scored silently wrong is refused instead.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(str(path), "synthetic samples file not found")
    try:
        h5 = open_h5(p, "r", str(path))
    except UserError:
        raise
    except Exception:
        raise UserError(str(path), "not a readable HDF5 file (truncated or another format?)") from None
    with h5, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = h5.root._v_attrs
        if str(getattr(a, "format", "")) != FORMAT:
            raise UserError(str(path), f"not a physiodiff synthetic file (expected format {FORMAT})")
        node = "samples_scaled" if scaled else "samples"
        if node not in h5.root:
            raise UserError(str(path), f"has no /{node} (generate with --scaled to keep it)")
        samples = _numeric_node(h5, node, 3, str(path))
        labels = _numeric_node(h5, "labels", 2, str(path))
        attrs = read_attrs(a, str(path))
    _check_synthetic(samples, labels, attrs, scaled, str(path))
    return samples.astype(np.float32), labels[:len(samples)].astype(np.int64), attrs


def _numeric_node(h5: Any, name: str, ndim: int, where: str) -> np.ndarray:
    """/name as a numeric array of rank `ndim`, or UserError."""
    if name not in h5.root:
        raise UserError(where, f"has no /{name}")
    try:
        arr = np.asarray(getattr(h5.root, name)[:])
    except Exception as e:  # a node of another kind (group, table, string array) or unreadable data
        raise UserError(where, f"/{name} cannot be read as an array ({type(e).__name__})") from None
    if arr.ndim != ndim or arr.dtype.kind not in "iuf":
        raise UserError(where, f"/{name} has shape {arr.shape} and dtype {arr.dtype}; expected a numeric "
                               f"array of rank {ndim}")
    return arr


def read_attrs(a: Any, where: str) -> dict[str, Any]:
    """The root attributes `a` (PyTables AttributeSet) as plain values; the JSON ones parsed (UserError if not JSON)."""
    attrs: dict[str, Any] = {}
    for k in a._v_attrnamesuser:
        v = a[k]
        if isinstance(v, np.generic):
            v = v.item()
        if k in _JSON_ATTRS:
            try:
                v = json.loads(v)
            except (TypeError, ValueError):
                raise UserError(where, f"attribute {k!r} is not JSON text") from None
        attrs[k] = v
    return attrs


def _check_synthetic(samples: np.ndarray, labels: np.ndarray, attrs: dict[str, Any], scaled: bool,
                     where: str) -> None:
    """Refuse samples (N, C, L) and labels (N', n_labels) that disagree with the attributes, and values
    no generator of these channels can produce: non-finite, or more than one range width outside a
    channel's range (generated samples lie inside it; a little slack admits other generators' files)."""
    channels, spec = attrs.get("channels"), attrs.get("label_spec")
    ok = isinstance(channels, list) and all(isinstance(c, dict) and isinstance(c.get("range"), list)
                                            and len(c["range"]) == 2 for c in channels)
    if not ok or not isinstance(spec, list):
        raise UserError(where, "attributes 'channels' and 'label_spec' must be JSON lists (channels with a "
                               "[lo, hi] range)")
    if samples.shape[1] != len(channels):
        raise UserError(where, f"samples have {samples.shape[1]} channels, the 'channels' attribute names "
                               f"{len(channels)}")
    if len(labels) < len(samples) or labels.shape[1] != len(spec):
        raise UserError(where, f"/labels has shape {labels.shape}; expected ({len(samples)}, {len(spec)})")
    try:
        lo, hi = np.array([c["range"] for c in channels], dtype=np.float64).T
    except (TypeError, ValueError):
        raise UserError(where, "a channel range is not a pair of numbers") from None
    if scaled:
        lo, hi = np.full_like(lo, -1.0), np.full_like(hi, 1.0)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (hi > lo).all()):
        raise UserError(where, "a channel range is not finite with lo < hi")
    for c in range(samples.shape[1]):
        x = samples[:, c]
        if not np.isfinite(x).all():
            i = int(np.argwhere(~np.isfinite(x))[0, 0])
            raise UserError(where, f"window {i} holds non-finite values in channel {channels[c].get('name', c)!r}")
        w = hi[c] - lo[c]
        bad = (x < lo[c] - w) | (x > hi[c] + w)
        if bad.any():
            i = int(np.argwhere(bad)[0, 0])
            raise UserError(where, f"window {i} of channel {channels[c].get('name', c)!r} holds "
                                   f"{float(x[i][bad[i]][0]):g}, far outside its range [{lo[c]:g}, {hi[c]:g}]")
