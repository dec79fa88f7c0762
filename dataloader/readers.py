"""Read recordings: a folder of per-patient CSV files or of WFDB records -> (C, N) float64 in physical units.

The channel order is the config's order, never the source's: each channel is found by name
(`ChannelSpec.sources`, first match wins), so a record that stores V5 before MLII still gives MLII first.
Bad input raises `UserError` naming the file (and the row for CSV cells).

NaN in the returned array always means "no value here": a CSV NaN (allowed only where the channel's
`missing` is "nan"), a WFDB invalid sample, or an optional channel that the record does not have.
"""
from __future__ import annotations

import csv
import gzip
import io
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .config.data_schema import ChannelSpec, DataConfig
from .errors import UserError


@dataclass
class Recording:
    """One patient's recording as read, before cleaning."""

    patient: str                      # patient id: the CSV file stem or the WFDB record name
    x: np.ndarray                     # (C, N) float64, physical units, NaN = no value
    fs: float                         # sampling rate of `x` in Hz
    path: str                         # file the data came from (for messages)
    # WFDB annotations (sample index at `fs`, symbol), when annotation labels ask for them
    ann_samples: Optional[np.ndarray] = None
    ann_symbols: Optional[np.ndarray] = None


def _strip_suffix(name: str) -> Optional[str]:
    for suf in (".csv.gz", ".csv"):
        if name.endswith(suf):
            return name[: -len(suf)]
    return None


def list_recordings(cfg: DataConfig) -> list[tuple[str, str]]:
    """Every recording in `cfg.source` as (patient id, path), sorted by id.

    CSV: `<id>.csv` or `<id>.csv.gz`; the same id twice is an error. WFDB: every `<name>.hea`, or the
    names listed in `cfg.wfdb.records` (one per line).
    """
    folder = Path(cfg.source)
    if not folder.is_dir():
        raise UserError(cfg.source, "recordings folder not found (data.source)")
    found: dict[str, str] = {}
    if cfg.format == "csv":
        for p in sorted(folder.iterdir()):
            stem = _strip_suffix(p.name)
            if stem is None or not p.is_file() or not stem or p.name.startswith("."):
                continue  # hidden files are editor or temporary files, not recordings
            if stem in found:
                raise UserError(str(p), f"patient {stem!r} appears twice (also {found[stem]}); keep one file")
            found[stem] = str(p)
        kind = "no <id>.csv or <id>.csv.gz files"
    else:
        if cfg.wfdb.records:
            lst = Path(cfg.wfdb.records)
            if not lst.is_file():
                raise UserError(cfg.wfdb.records, "record list not found (data.wfdb.records)")
            names = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            for i, n in enumerate(names):
                if not (folder / f"{n}.hea").is_file():
                    raise UserError(f"{lst}:{i + 1}", f"record {n!r} has no {n}.hea in {folder}")
                if n in found:
                    raise UserError(f"{lst}:{i + 1}", f"record {n!r} is listed twice")
                found[n] = str(folder / n)
        else:
            for p in sorted(folder.glob("*.hea")):
                found[p.name[:-4]] = str(p.with_suffix(""))
        kind = "no WFDB records (.hea files)"
    if not found:
        raise UserError(cfg.source, f"recordings folder is empty: {kind}")
    return sorted(found.items())


# --- CSV ---------------------------------------------------------------------------------------

def _open_text(path: str):
    # utf-8-sig: a byte-order mark written by spreadsheet programs is not part of the first column name
    if path.endswith(".gz"):
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, newline="", encoding="utf-8-sig")


def _csv_columns(path: str, header: list[str], channels: list[ChannelSpec], ignore: Sequence[str] = ()) -> list[str]:
    """The CSV column for each channel, in channel order; missing, extra or repeated columns are errors.
    Columns in `ignore` (data.ignore_columns, e.g. a timestamp) are skipped, and each must be present."""
    seen = set()
    for h in header:
        if h in seen:
            raise UserError(f"{path}:1", f"column {h!r} appears twice in the header")
        seen.add(h)
    cols = []
    for ch in channels:
        col = next((s for s in ch.sources if s in seen), None)
        if col is None:
            raise UserError(f"{path}:1", f"missing column for channel {ch.name!r} "
                                         f"(expected one of {ch.sources}; header has {header})")
        cols.append(col)
    absent = [c for c in ignore if c not in seen]
    if absent:
        raise UserError(f"{path}:1", f"column {absent[0]!r} of data.ignore_columns is not in the header "
                                     f"(header has {header})")
    extra = [h for h in header if h not in cols and h not in ignore]
    if extra:
        hint = "; list columns to skip in data.ignore_columns"
        raise UserError(f"{path}:1", f"extra column {extra[0]!r} (expected exactly the columns "
                                     f"{cols + list(ignore)}{hint})")
    return cols


def _first_long_row(path: str, n: int) -> str:
    """`path:row` of the first row with more than `n` cells (only called after pandas said there is one)."""
    with _open_text(path) as f:
        reader = csv.reader(f)
        for row in reader:
            if len(row) > n:
                return f"{path}:{reader.line_num}"
    return path


def _numbers(s: Any, path: str, col: str) -> np.ndarray:
    """One CSV column (a pandas Series of N cells) -> (N,) float64; a cell that is not a number is a
    UserError naming its row."""
    import pandas as pd

    if s.dtype.kind in "iuf":
        return s.to_numpy(dtype=np.float64)
    num, v = None, None
    if s.dtype.kind == "O":  # text cells: find the first that is not a number (empty/NA cells are NaN: fine)
        try:
            num = pd.to_numeric(s, errors="coerce")
            v = num.to_numpy(dtype=np.float64)
        except (OverflowError, ValueError, TypeError):  # a 400-digit integer: no float holds it
            v = None
    bad = np.flatnonzero(num.isna().to_numpy() & s.notna().to_numpy()) if num is not None else []
    if v is not None and not len(bad):
        return v
    if not len(bad):  # booleans, or an integer too large for a float: the first such cell
        bad = np.flatnonzero(s.notna().to_numpy() & ~pd.Series([_is_float(c) for c in s]).to_numpy())
    r = int(bad[0]) if len(bad) else 0
    raise UserError(f"{path}:{r + 2}", f"column {col!r}: {str(s.iloc[r])[:60]!r} is not a number")


def _is_float(cell: Any) -> bool:
    try:
        float(cell)
    except (OverflowError, ValueError, TypeError):
        return False
    return not isinstance(cell, (bool, np.bool_))


def read_csv(path: str, channels: list[ChannelSpec], ignore: Sequence[str] = ()) -> np.ndarray:
    """One CSV file (header row, one column per channel, one row per sample) -> (C, N) float64.
    Columns named in `ignore` are not read (their cells may hold anything, e.g. timestamps).

    Rows are reported 1-based as in a text editor: the header is row 1, the first sample row 2.
    """
    import pandas as pd

    try:
        with _open_text(path) as f:
            first = f.readline()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as e:
        raise UserError(path, f"cannot read file ({e})") from None
    if not first.strip():
        raise UserError(path, "empty file (expected a header row with the channel names)")
    try:
        header = [h.strip() for h in next(csv.reader(io.StringIO(first)), [])]
    except csv.Error as e:
        raise UserError(f"{path}:1", f"malformed header row ({e})") from None
    cols = _csv_columns(path, header, channels, ignore)
    try:
        with warnings.catch_warnings():
            # index_col=False: a row with one cell more than the header must not turn the first column into
            # an index (pandas' default, which shifts every column by one); pandas warns instead: an error here
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(path, skipinitialspace=True, engine="c", encoding="utf-8-sig", index_col=False)
    except pd.errors.ParserWarning:
        raise UserError(_first_long_row(path, len(header)), f"more cells than the header's {len(header)}") from None
    except pd.errors.ParserError as e:
        m = re.search(r"line (\d+)", str(e))
        where = f"{path}:{m.group(1)}" if m else path
        raise UserError(where, f"malformed CSV row ({str(e).strip().splitlines()[-1]})") from None
    except (OSError, EOFError, UnicodeDecodeError, ValueError, zlib.error) as e:
        raise UserError(path, f"cannot read CSV ({e})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if list(df.columns) != header:  # e.g. a quoted header cell that spans lines: the two parsers disagree
        raise UserError(f"{path}:1", f"malformed header row (read as {list(df.columns)!r:.200})")
    if len(df) == 0:
        raise UserError(path, "no sample rows after the header")
    x = np.empty((len(channels), len(df)), dtype=np.float64)
    for i, (ch, col) in enumerate(zip(channels, cols)):
        v = _numbers(df[col], path, col)
        nan = np.isnan(v)
        if nan.any() and ch.missing != "nan":
            r = int(np.flatnonzero(nan)[0])
            raise UserError(f"{path}:{r + 2}", f"column {col!r}: empty or NaN value (expected a number; "
                                               f"set the channel's missing: nan if NaN means no signal)")
        inf = np.isinf(v)
        if inf.any():
            r = int(np.flatnonzero(inf)[0])
            raise UserError(f"{path}:{r + 2}", f"column {col!r}: infinite value (expected a finite number)")
        x[i] = v
    return x


# --- WFDB --------------------------------------------------------------------------------------

def read_wfdb(path: str, cfg: DataConfig, want_annotations: bool = False) -> Recording:
    """One WFDB record (`path` without extension) -> Recording with the config's channels.

    Physical units come from the header's gain (`wfdb.physical: true`) or are the digital samples times
    `wfdb.digital_scale` (LUDB: the header gains normalise every lead, digital units are about 1 uV).
    """
    import wfdb

    hea = f"{path}.hea"
    try:
        head = wfdb.rdheader(path)
    except Exception as e:  # wfdb raises many types for a broken header; all are bad input here
        raise UserError(hea, f"cannot read WFDB header ({type(e).__name__}: {e})") from None
    names = [str(n).strip() for n in (head.sig_name or [])]
    picks: list[Optional[int]] = []
    for ch in cfg.channels:
        idx = next((names.index(s) for s in ch.sources if s in names), None)
        if idx is None and ch.required:
            raise UserError(hea, f"no signal for required channel {ch.name!r} "
                                 f"(looked for {ch.sources}; record has {names})")
        picks.append(idx)
    wanted = sorted({i for i in picks if i is not None})
    try:
        rec = wfdb.rdrecord(path, channels=wanted, physical=cfg.wfdb.physical)
    except Exception as e:
        raise UserError(f"{path}.dat", f"cannot read WFDB signals ({type(e).__name__}: {e})") from None
    sig = rec.p_signal if cfg.wfdb.physical else rec.d_signal.astype(np.float64) * cfg.wfdb.digital_scale
    n = sig.shape[0]
    if n == 0:
        raise UserError(hea, "record has no samples")
    x = np.full((len(cfg.channels), n), np.nan)
    for c, idx in enumerate(picks):
        if idx is not None:
            # wfdb's p_signal already has NaN for the format's "invalid sample" value: a missing sample
            x[c] = sig[:, wanted.index(idx)]
    if np.isinf(x).any():
        raise UserError(f"{path}.dat", "infinite sample value")
    out = Recording(patient=Path(path).name, x=x, fs=float(rec.fs), path=hea)
    if want_annotations:
        ext = cfg.wfdb.annotation
        try:
            ann = wfdb.rdann(path, ext)
        except FileNotFoundError:
            raise UserError(f"{path}.{ext}", "annotation file not found (needed by annotation labels)") from None
        except Exception as e:
            raise UserError(f"{path}.{ext}", f"cannot read annotations ({type(e).__name__}: {e})") from None
        out.ann_samples = np.asarray(ann.sample, dtype=np.int64)
        out.ann_symbols = np.asarray(ann.symbol, dtype=object)
    return out


def read_recording(cfg: DataConfig, patient: str, path: str, want_annotations: bool = False) -> Recording:
    """Read one recording of either format into physical units (C, N)."""
    if cfg.format == "csv":
        assert cfg.fs is not None  # DataConfig.check requires fs for CSV
        x = read_csv(path, cfg.channels, cfg.ignore_columns)
        return Recording(patient=patient, x=x, fs=float(cfg.fs), path=path)
    rec = read_wfdb(path, cfg, want_annotations)
    rec.patient = patient
    if cfg.fs is not None and abs(rec.fs - cfg.fs) > 1e-9:
        raise UserError(rec.path, f"sampling rate {rec.fs:g} Hz differs from data.fs = {cfg.fs:g} Hz")
    return rec
