"""Preparation on small subsets of the real datasets (skipped where the data is absent).

The subsets are folders of symbolic links to the shared files (read in place, never copied).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataloader.config import load_config

from dataloader.clean import runs
from dataloader.prepared import PreparedFile
from tests.test_data_util import run_cmd
from tools.prepare_data import main as prepare_main

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
CTG, LUDB, MITDB = DATA / "ctu-uhb-ctg", DATA / "ludb", DATA / "mitdb-ds1"


def _need(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"dataset not found at {folder} (tests on real data need it)")


def _links(src: Path, names: list[str], dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        os.symlink(src / n, dst / n)
    return dst


def _prepare(config: Path, *overrides: str) -> None:
    code, out, err = run_cmd(prepare_main, ["--config", str(config), "data.workers=1", *overrides])
    assert code == 0, err


@pytest.fixture(scope="module")
def ctg_subset(tmp_path_factory) -> Path:
    _need(CTG)
    files = sorted(p.name for p in (CTG / "signals").glob("*.csv.gz"))[::22][:20]
    return _links(CTG / "signals", files, tmp_path_factory.mktemp("ctg") / "signals")


@pytest.mark.parametrize("config,factor", [("diffusion-identity.yaml", 4), ("sampling-diffusion.yaml", 1)])
def test_ctg_windows_hold_no_unflagged_missing_and_cross_no_long_gap(ctg_subset, tmp_path, config, factor):
    """factor = source samples per stored sample (4 Hz -> 1 Hz: 4). Stored sample j stands for source
    samples [factor*j - factor/2, factor*j + factor/2), as the mask pooling defines it."""
    out = tmp_path / "ctg.h5"
    _prepare(ROOT / "configs" / "ctg" / config, f"data.source={ctg_subset}", f"data.prepared={out}")
    f = PreparedFile(out)
    assert f.source == str(ctg_subset) and sum(f.splits.values()) > 0
    max_gap = load_config(ROOT / "configs" / "ctg" / config).data.max_gap_s * 4  # at the 4 Hz source rate
    raw_cache: dict[str, np.ndarray] = {}
    L, half = f.window_len, factor // 2
    for split in ("train", "val", "test"):
        for i in range(0, f.n_windows(split), 3):
            _, _, pid = f.window(split, i)
            if pid not in raw_cache:
                raw_cache[pid] = pd.read_csv(ctg_subset / f"{pid}.csv.gz").to_numpy()[:, 0]
            fhr = raw_cache[pid]
            missing = (fhr == 0) | (fhr < 50) | (fhr > 240)
            _, start = f.window_position(split, i)
            m = f.window_mask(split, i)[0]
            # no window holds a missing source sample that is not flagged as interpolated
            for j in np.flatnonzero(~m)[:: max(1, L // 512)]:
                lo = max(0, factor * (start + j) - half)
                assert not missing[lo:factor * (start + j) + max(1, half)].any(), (pid, start, j)
            # no window contains any sample of a long gap
            s0, s1 = max(0, factor * start - half), factor * (start + L) - half
            st, en = runs(missing)
            long_ = (en - st) > max_gap
            assert not ((st[long_] < s1) & (en[long_] > s0)).any(), (pid, start)


def test_ludb_subset_prepares_in_millivolts(tmp_path):
    _need(LUDB)
    wfdb = pytest.importorskip("wfdb")
    recs = [str(i) for i in range(1, 13)]
    src = _links(LUDB / "data", [f"{r}.{e}" for r in recs for e in ("hea", "dat")], tmp_path / "ludb")
    out = tmp_path / "ludb.h5"
    _prepare(ROOT / "configs" / "ecg" / "ludb-diffusion.yaml", f"data.source={src}", f"data.prepared={out}")
    f = PreparedFile(out)
    assert sum(f.splits.values()) == 12 and f.window_len == 5000 and f.fs == 500
    assert f.channel_names[:3] == ["i", "ii", "iii"] and f.label_names == ["rhythm"]
    x, y, pid = f.window("train", 0)
    d = wfdb.rdrecord(str(src / pid), physical=False).d_signal.T / 1000.0
    assert np.abs(f.to_physical(x) - np.clip(d, -5, 5)).max() <= 10 / 65534 + 1e-9


def test_mitdb_subset_channels_by_name_and_beat_labels(tmp_path):
    _need(MITDB)
    wfdb = pytest.importorskip("wfdb")
    recs = ["114", "119"]                              # 114 stores V5 first and MLII second
    src = _links(MITDB, [f"{r}.{e}" for r in recs for e in ("hea", "dat", "atr")], tmp_path / "mit")
    out = tmp_path / "mit.h5"
    _prepare(ROOT / "configs" / "ecg" / "mitdb-diffusion.yaml", f"data.source={src}", f"data.prepared={out}",
             "data.stride_s=5")
    f = PreparedFile(out)
    assert f.channel_names == ["MLII", "V"] and f.label_names == ["aami"]
    classes = f.class_names[0]
    sig = {r: wfdb.rdrecord(str(src / r)).p_signal for r in recs}
    ann = {r: wfdb.rdann(str(src / r), "atr") for r in recs}
    seen = set()
    for split in ("train", "val", "test"):
        for i in range(f.n_windows(split)):
            x, y, pid = f.window(split, i)
            _, start = f.window_position(split, i)
            if pid == "114" and i % 50 == 0:           # MLII is the record's second signal
                ref = sig["114"][start:start + f.window_len, 1]
                assert np.abs(f.to_physical(x)[0] - ref).max() <= 10.24 / 65534 + 1e-9
            a = ann[pid]
            inside = [s for t, s in zip(a.sample, a.symbol) if start <= t < start + f.window_len]
            cls = classes[int(y[0])]
            seen.add(cls)
            members = {"V": {"V", "E"}, "S": {"A", "a", "J", "S"}, "F": {"F"}, "Q": {"/", "f", "Q"},
                       "N": {"N", "L", "R", "e", "j"}}
            assert members[cls] & set(inside), (pid, start, cls, inside)
            for severe in classes[: classes.index(cls)]:  # no more severe class inside
                assert not members[severe] & set(inside)
    assert {"V", "N"} <= seen


def test_mitdb_heart_rate_labels_match_their_windows(tmp_path):
    """The derived label of every stored window is the bin of the rate measured on that window (the worker
    measures by window position; this reads the window back from the file)."""
    _need(MITDB)
    from dataloader.heart_rate import rpeak_rate
    from dataloader.labels import build_coder
    from dataloader.config import load_config

    config = ROOT / "configs" / "ecg" / "mitdb-heart-rate.yaml"
    src = _links(MITDB, [f"{r}.{e}" for r in ("101", "119") for e in ("hea", "dat", "atr")], tmp_path / "mit")
    out = tmp_path / "hr.h5"
    over = [f"data.source={src}", f"data.prepared={out}", "data.stride_s=60"]
    _prepare(config, *over)
    f = PreparedFile(out)
    coder = build_coder(load_config(config, over).data.label_columns[0])
    n = 0
    for split in ("train", "val", "test"):
        for i in range(f.n_windows(split)):
            x, y, _ = f.window(split, i)
            rate = rpeak_rate(f.to_physical(x)[0], f.fs)
            assert np.isfinite(rate) and int(y[0]) == coder.bin_code(rate), (split, i, rate, int(y[0]))
            n += 1
    assert n >= 40 and f.window_len == 1248 and f.fs == 125
