"""Prepare recordings for training: read, clean, window, label, split, scale, write one HDF5 file (the library
function behind `python -m tools.prepare_data`).

`prepare(cfg)` writes `data.prepared` (see dataloader/prepared.py), `<prepared stem>.report.csv` (one row per
recording: samples, segments, windows, missing fractions, status) and `<prepared stem>.yaml` (the resolved
config), all atomically: a failure leaves none of them behind. The folder of `data.prepared` is created if
needed. Recordings that yield no window are reported and skipped; if none yields a window it is an error.
"""
from __future__ import annotations

import contextlib
import csv
import io
import multiprocessing as mp
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dataloader.atomic import atomic_path
from dataloader.clean import clean_recording
from dataloader.config.data_schema import DataConfig
from dataloader.errors import UserError
from dataloader.lock import exclusive
from dataloader.repro import stamp_time
from dataloader.heart_rate import window_rates
from dataloader.labels import LabelCoder, annotation_codes, build_coders, rate_codes, read_labels_csv
from dataloader.prepared import PreparedData, write_h5
from dataloader.readers import list_recordings, read_recording
from dataloader.scaling import fit_ranges, quantize_int16, to_scaled
from dataloader.split import SPLITS, manifest_sha256, split_patients
from dataloader.windows import report_row, stride_samples, window_index, window_length

_CFG: Optional[DataConfig] = None  # the data config inside a worker process (set by _init)


def _init(cfg: DataConfig) -> None:
    global _CFG
    _CFG = cfg
    # one thread per worker: the pool already uses every core it is given
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = "1"


def _process(task: tuple[str, str, float, int, bool, int, tuple[tuple[int, str], ...]]) -> dict[str, Any]:
    """Read and clean one recording (runs in a worker), and measure the heart rate of its windows for the
    derived labels (`hr`: (channel index, method) per heart-rate label column). UserError comes back as data:
    it does not pickle."""
    pid, path, out_fs, min_len, want_ann, stride, hr = task
    cfg = _CFG
    assert cfg is not None
    try:
        rec = read_recording(cfg, pid, path, want_ann)
        target = cfg.target_fs
        if target is None and abs(rec.fs - out_fs) > 1e-9:
            raise UserError(rec.path, f"sampling rate {rec.fs:g} Hz differs from the first record's "
                                      f"{out_fs:g} Hz; set data.target_fs to resample")
        cl = clean_recording(rec.x, rec.fs, cfg.channels, cfg.max_gap_s, target)
    except UserError as e:
        return {"error": (e.where, e.what)}
    # segments shorter than one window hold no window: not stored
    longest = int(cl.segments[:, 1].max()) if len(cl.segments) else 0
    cl.segments = cl.segments[cl.segments[:, 1] >= min_len]
    parts = [slice(int(s), int(s + n)) for s, n in cl.segments]
    x = np.concatenate([cl.x[:, p] for p in parts], axis=1) if parts else np.zeros((len(cfg.channels), 0))
    m = np.concatenate([cl.mask[:, p] for p in parts], axis=1) if parts else np.zeros(x.shape, bool)
    out: dict[str, Any] = {"patient": pid, "path": path, "n_src": rec.x.shape[1], "n": cl.x.shape[1],
                           "segments": cl.segments, "x": x, "mask": m, "missing_frac": cl.missing_frac,
                           "longest": longest}
    if hr:
        out["rates"] = _window_rates(cl.x, cl.segments, min_len, stride, hr, cl.fs)
    if want_ann and rec.ann_samples is not None:
        out["ann"] = (np.rint(rec.ann_samples * (cl.fs / rec.fs)).astype(np.int64), rec.ann_symbols)
    return out


def _window_rates(x: np.ndarray, segs: np.ndarray, L: int, stride: int, hr: tuple[tuple[int, str], ...],
                  fs: float) -> np.ndarray:
    """Measured rates (W, len(hr)) float64 (NaN = not measurable) of the recording's windows, in the order of
    `window_index` (the same call `_windows_and_labels` makes); x (C, T) physical, segs (S, 2)."""
    win = window_index(segs, L, stride)
    starts = segs[win[:, 0], 0] + win[:, 1] if len(win) else np.zeros(0, np.int64)
    return np.stack([window_rates(method, x[ch], starts, L, fs) for ch, method in hr], axis=1).reshape(
        len(starts), len(hr))


def _heart_rate_tasks(cfg: DataConfig) -> tuple[tuple[int, str], ...]:
    """(channel index, method) of every heart-rate label column, in label order."""
    names = [c.name for c in cfg.channels]
    return tuple((names.index(lab.channel), str(lab.method)) for lab in cfg.label_columns
                 if lab.source == "heart_rate")


def _read_all(cfg: DataConfig, recs: list[tuple[str, str]], out_fs: float, min_len: int, want_ann: bool,
              workers: int, stride: int) -> list[dict[str, Any]]:
    from tqdm import tqdm

    hr = _heart_rate_tasks(cfg)
    tasks = [(pid, path, out_fs, min_len, want_ann, stride, hr) for pid, path in recs]
    bar = tqdm(total=len(tasks), desc="recordings", unit="rec", disable=None, leave=False)
    results = []
    n = min(workers, len(tasks))
    if n <= 1:
        _init(cfg)
        it: Any = map(_process, tasks)
        pool = None
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        pool = ctx.Pool(n, initializer=_init, initargs=(cfg,))
        it = pool.imap(_process, tasks, chunksize=max(1, min(8, len(tasks) // (4 * n))))
    try:
        for r in it:
            if "error" in r:
                raise UserError(*r["error"])
            results.append(r)
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return results


def _output_fs(cfg: DataConfig, recs: list[tuple[str, str]]) -> float:
    if cfg.target_fs is not None:
        return float(cfg.target_fs)
    if cfg.fs is not None:
        return float(cfg.fs)
    import wfdb  # WFDB without data.fs: the first record's rate; every other record must match

    try:
        return float(wfdb.rdheader(recs[0][1]).fs)
    except Exception as e:
        raise UserError(f"{recs[0][1]}.hea", f"cannot read WFDB header ({type(e).__name__}: {e})") from None


def _patient_codes(coders: list[LabelCoder], table: dict[str, list[Optional[int]]], pid: str) -> list[Optional[int]]:
    """Codes of the CSV label columns for one patient (None = missing and dropped); per-window columns
    (annotation, heart_rate) -> 0 until `_window_codes` fills them."""
    csv_codes = iter(table.get(pid, [c.missing_code for c in coders if c.source == "csv"]))
    return [next(csv_codes) if c.source == "csv" else 0 for c in coders]


def _windows_and_labels(r: dict[str, Any], coders: list[LabelCoder], table: dict[str, list[Optional[int]]],
                        L: int, stride: int) -> tuple[np.ndarray, np.ndarray, str]:
    """One recording's windows (W, 2) (segment, offset), their label codes (W, n_labels) and a status
    ("ok", or why the recording yields no window)."""
    segs = r["segments"]
    codes = _patient_codes(coders, table, r["patient"])
    win = window_index(segs, L, stride)
    wcodes = np.tile(np.array([-1 if c is None else c for c in codes], np.int64), (len(win), 1))
    if not len(segs):
        return win, wcodes, f"skipped: no segment of {L} samples (longest clean run {r['longest']})"
    if None in codes:
        lab = coders[codes.index(None)].name
        return win, wcodes, (f"skipped: missing label {lab!r} (on_missing: drop)"
                             + ("" if r["patient"] in table else "; no row in the labels file"))
    if any(c.source != "csv" for c in coders):
        _window_codes(r, coders, segs[win[:, 0], 0] + win[:, 1], L, wcodes)
        keep = (wcodes >= 0).all(axis=1)           # -1: no beat / no measurable rate under on_missing: drop
        win, wcodes = win[keep], wcodes[keep]
        if not len(win):
            return win, wcodes, "skipped: no window with an annotated class or a measurable rate (on_missing: drop)"
    return win, wcodes, "ok"


def _window_codes(r: dict[str, Any], coders: list[LabelCoder], starts: np.ndarray, L: int,
                  wcodes: np.ndarray) -> None:
    """Fill the per-window label columns of wcodes (W, n_labels) in place: annotation classes from the beat
    annotations, heart-rate bins from the rates the worker measured (r["rates"] (W, n_heart_rate))."""
    j = 0
    for k, c in enumerate(coders):
        if c.source == "annotation":
            wcodes[:, k] = annotation_codes(c, r["ann"][0], r["ann"][1], starts, L)
        elif c.source == "heart_rate":
            wcodes[:, k] = rate_codes(c, r["rates"][:, j])
            j += 1


def _assemble(kept: list[dict[str, Any]], side: dict[str, str], ranges: list[tuple[float, float]],
              storage: str, n_labels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Concatenate the kept recordings' segments -> (data (C, T), mask (C, T), seg_index (S, 4),
    windows per split (W, 2 + n_labels)) with segment numbers that index seg_index."""
    lo = np.array([a for a, _ in ranges])
    hi = np.array([b for _, b in ranges])
    xs = np.concatenate([r["x"] for r in kept], axis=1)
    # a channel with no value at all in a segment is drawn at its range minimum (and flagged in the mask)
    xs = np.where(np.isnan(xs), lo[:, None], xs)
    scaled = to_scaled(xs, lo, hi)
    data = quantize_int16(scaled) if storage == "int16" else scaled.astype(np.float32)
    mask = np.concatenate([r["mask"] for r in kept], axis=1)
    seg_rows, windows = [], {s: [] for s in SPLITS}
    start, nseg = 0, 0
    for pi, r in enumerate(kept):
        segs = r["segments"]
        first = start + np.concatenate(([0], np.cumsum(segs[:, 1])[:-1]))
        seg_rows.append(np.stack([np.full(len(segs), pi), first, segs[:, 1], segs[:, 0]], axis=1))
        w = r["win"].copy()
        w[:, 0] += nseg
        windows[side[r["patient"]]].append(np.concatenate([w, r["wcodes"]], axis=1))
        start += int(segs[:, 1].sum())
        nseg += len(segs)
    win = {s: (np.concatenate(v) if v else np.zeros((0, 2 + n_labels), np.int64)) for s, v in windows.items()}
    return data, mask, np.concatenate(seg_rows).astype(np.int64), win


def _output_paths(prepared: str) -> list[Path]:
    out = Path(prepared)
    return [out, out.with_suffix(".report.csv"), out.with_suffix(".yaml")]


def check_outputs(cfg: Any) -> None:
    """`data.prepared` and its report and config can be written where they are named: checked before any
    work, so a bad path costs no reading and leaves nothing behind (UserError naming the path)."""
    where = f"{cfg.path}: data.prepared"
    try:
        paths = _output_paths(cfg.data.prepared)
    except ValueError:  # Path.with_suffix: "", "." or "/" name no file
        raise UserError(where, f"{cfg.data.prepared!r} is not a file name") from None
    if len({p.resolve() for p in paths}) < len(paths):
        raise UserError(where, f"{str(paths[0])!r} would share a name with its report or config "
                               f"({paths[1].name}, {paths[2].name}); use a .h5 name")
    if cfg.path and paths[2].resolve() == Path(cfg.path).resolve():
        raise UserError(where, f"the resolved config {str(paths[2])!r} would overwrite the config file itself; "
                               "name the prepared file differently")
    for anc in paths[0].resolve().parents:   # the first existing folder above must be a folder (mkdir later)
        if anc.exists():
            if not anc.is_dir():
                raise UserError(where, f"{str(anc)!r} is a file, not a folder")
            break
    for p in paths:
        if p.is_dir():
            raise UserError(where, f"{str(p)!r} is a folder (expected a file name)")


def prepare(cfg: Any, workers: Optional[int] = None) -> dict[str, Any]:
    """Run the whole preparation for a loaded config; returns facts for the summary. One preparation of an
    output at a time: a second one is refused at once (dataloader/lock.py) rather than racing the first."""
    check_outputs(cfg)
    with contextlib.ExitStack() as hold:
        if Path(cfg.data.prepared).parent.is_dir():  # else nobody can be writing it yet (the folder comes last)
            hold.enter_context(exclusive(cfg.data.prepared, "data.prepared"))
        return _prepare(cfg, workers)


def _prepare(cfg: Any, workers: Optional[int]) -> dict[str, Any]:
    t0 = time.time()
    d: DataConfig = cfg.data
    coders = build_coders(d.label_columns)
    table = read_labels_csv(d.labels, d.id_column, coders) if any(c.source == "csv" for c in coders) else {}
    want_ann = any(c.source == "annotation" for c in coders)
    if want_ann and d.format != "wfdb":
        raise UserError(f"{cfg.path}: data.label_columns", "annotation labels need WFDB records (format: wfdb)")
    recs = list_recordings(d)
    out_fs = _output_fs(d, recs)
    L, note = window_length(d, out_fs, f"{cfg.path}: data")
    stride = stride_samples(d, out_fs, f"{cfg.path}: data")
    results = _read_all(d, recs, out_fs, L, want_ann, workers or d.workers, stride)
    names = [c.name for c in d.channels]

    rows: dict[str, dict[str, Any]] = {}
    kept: list[dict[str, Any]] = []
    for r in results:
        win, wcodes, status = _windows_and_labels(r, coders, table, L, stride)
        masked = r["mask"].mean(axis=1) if r["mask"].shape[1] else np.zeros(len(names))
        rows[r["patient"]] = report_row(r["patient"], r["n"], r["segments"], len(win) if status == "ok" else 0,
                                        r["missing_frac"], masked, names, status)
        if status == "ok":
            r.update(win=win, wcodes=wcodes)
            kept.append(r)
    if not kept:
        if not any(len(r["segments"]) for r in results):
            longest = max((r["longest"] for r in results), default=0)
            raise UserError(f"{cfg.path}: data.window",
                            f"{note} is longer than every recording's usable part (longest clean run: "
                            f"{longest} samples = {longest / out_fs:g} s); shorten the window")
        raise UserError(f"{cfg.path}: data.label_columns", "every recording was dropped for missing labels")

    # patient-level split (stratified by one label: the patient's code, or its most frequent window code)
    strata = None
    if d.split.stratify is not None:
        k = [c.name for c in coders].index(d.split.stratify)
        strata = {r["patient"]: Counter(r["wcodes"][:, k].tolist()).most_common(1)[0][0] for r in kept}
    manifest = split_patients([r["patient"] for r in kept], d.split, strata)
    side = {p: s for s, ps in manifest.items() for p in ps}
    for r in kept:
        rows[r["patient"]]["split"] = side[r["patient"]]
    # range: auto sees the training patients only
    ranges = fit_ranges(d.channels, ((r["x"], r["mask"]) for r in kept if side[r["patient"]] == "train"))
    data, mask, seg_index, win_arrays = _assemble(kept, side, ranges, d.storage, len(coders))
    prep = PreparedData(
        fs=out_fs, window_len=L, stride=stride, data=data, mask=mask, seg_index=seg_index, windows=win_arrays,
        channels=[{"name": c.name, "unit": c.unit, "range": [float(a), float(b)]}
                  for c, (a, b) in zip(d.channels, ranges)],
        patients=[r["patient"] for r in kept], manifest=manifest, manifest_sha256=manifest_sha256(manifest),
        label_spec=[c.to_dict() for c in coders], source=d.source, config_text=cfg.yaml(),
        created_utc=stamp_time() or "")  # no wall-clock time unless SOURCE_DATE_EPOCH (same input, same bytes)
    _write_outputs(d.prepared, prep, list(rows.values()), cfg.yaml())
    return {"prep": prep, "rows": rows, "kept": kept, "results": results, "note": note,
            "seconds": time.time() - t0, "names": names}


def _write_outputs(path: str, prep: PreparedData, rows: list[dict[str, Any]], config_text: str) -> None:
    """The HDF5 file, the report CSV and the config, each via a temporary name; all or nothing."""
    out, report, config = _output_paths(path)
    # the one place that creates an output folder on purpose (data/ is not in git)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_path(out, "data.prepared") as t_h5, \
            atomic_path(report, "data.prepared") as t_rep, \
            atomic_path(config, "data.prepared") as t_cfg:
        t_rep.write_text(buf.getvalue())
        t_cfg.write_text(config_text)
        write_h5(t_h5, prep)
