"""Acceptance tests on synthetic data: prepare -> prepared file -> dataset, sampler, inspect."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dataloader.dataset import WindowDataset
from dataloader.errors import UserError
from dataloader.prepared import PreparedFile
from dataloader.sampler import BalancedSampler
from dataloader.split import manifest_sha256
from tests.test_data_util import WINDOW, base_config, make_dataset, run_cmd, write_config
from tools.inspect import main as inspect_main
from tools.prepare_data import main as prepare_main

GAPS = {"p02": [(100, 4)], "p05": [(300, 40)]}   # a short gap (1 s, interpolated), a long gap (10 s, splits)


def _prepare(tmp_path: Path, name: str = "prep", **data) -> Path:
    sig, lab = make_dataset(tmp_path / "in", n_patients=12, gaps=GAPS)
    out = tmp_path / "out" / f"{name}.h5"
    p = write_config(tmp_path / f"{name}.yaml", base_config(sig, lab, out, **data))
    code, stdout, err = run_cmd(prepare_main, ["--config", str(p)])
    assert code == 0, err
    assert "manifest sha256:" in stdout
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("prep")
    return {"float32": _prepare(tmp, "f32"), "int16": _prepare(tmp, "i16", storage="int16")}


def test_outputs_written_and_no_temp_files(prepared):
    out = prepared["float32"]
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["f32.h5", "f32.report.csv", "f32.yaml", "i16.h5", "i16.report.csv", "i16.yaml"]
    rep = pd.read_csv(out.with_suffix(".report.csv"), dtype={"patient": str})
    assert len(rep) == 12 and set(rep.split) == {"train", "val", "test"}
    assert rep.set_index("patient").loc["p05", "segments"] == 2
    assert "source:" in out.with_suffix(".yaml").read_text()


def test_no_patient_in_two_splits(prepared):
    f = PreparedFile(prepared["float32"])
    sides = {s: set(f.patients(s)) for s in ("train", "val", "test")}
    assert not (sides["train"] & sides["val"] or sides["train"] & sides["test"] or sides["val"] & sides["test"])
    assert set.union(*sides.values()) == set(f.patient_ids)
    for s in sides:                                     # every window belongs to a patient of its split
        pats = {f.patient_ids[p] for p in f.window_patients(s)}
        assert pats <= sides[s]
    assert manifest_sha256(f.manifest) == f.manifest_sha256


def test_same_seed_same_manifest_other_seed_differs(tmp_path, prepared):
    ref = PreparedFile(prepared["float32"]).manifest_sha256
    again = _prepare(tmp_path, "again")
    assert PreparedFile(again).manifest_sha256 == ref
    other = _prepare(tmp_path, "other", split={"train": 0.5, "val": 0.25, "test": 0.25, "seed": 7})
    assert PreparedFile(other).manifest_sha256 != ref


@pytest.mark.parametrize("storage,tol", [("float32", 1e-4), ("int16", 160 / 65534 + 1e-6)])
def test_windows_map_back_to_physical(prepared, storage, tol):
    """Each window, mapped back with the file's ranges, equals the source CSV (clipped to the range)
    where measured, within the storage precision; interpolated samples are flagged in the mask."""
    f = PreparedFile(prepared[storage])
    assert f.storage == storage and f.window_len == WINDOW
    src = Path(f.source)
    checked = 0
    for split in ("train", "val", "test"):
        for i in range(f.n_windows(split)):
            x, y, pid = f.window(split, i)
            _, start = f.window_position(split, i)
            raw = pd.read_csv(src / f"{pid}.csv").to_numpy().T[:, start:start + WINDOW]
            phys = f.to_physical(x)
            m = f.window_mask(split, i)
            ok = ~m
            assert ((raw[0] == 0) <= m[0]).all()          # every missing source sample is masked
            clipped = np.clip(raw, [[50], [0]], [[210], [100]])
            assert np.abs(phys - clipped)[ok].max() <= tol
            checked += 1
    assert checked == sum(f.splits.values()) > 0


def test_no_window_crosses_the_long_gap(prepared):
    f = PreparedFile(prepared["float32"])
    for split in ("train", "val", "test"):
        for i in range(f.n_windows(split)):
            _, _, pid = f.window(split, i)
            if pid == "p05":
                _, start = f.window_position(split, i)
                assert start + WINDOW <= 300 or start >= 340


def test_dataset_and_batches(prepared):
    ds = WindowDataset(prepared["int16"], "train")
    x, y, pid = ds[0]
    assert x.dtype == torch.float32 and x.shape == (2, WINDOW) and y.dtype == torch.int64 and y.shape == (2,)
    assert isinstance(pid, str) and float(x.abs().max()) <= 1.0
    assert ds.label_names == ["grade", "score"] and ds.label_classes == [2, 3]
    assert ds.class_names == [["low", "high"], ["<7.2", "[7.2,7.4)", ">=7.4"]]
    assert ds.fs == 4.0 and ds.window_len == WINDOW and [c["name"] for c in ds.channels] == ["A", "B"]
    xb, yb, pids = ds.get_batch([0, 3, 1])
    assert xb.shape == (3, 2, WINDOW) and torch.equal(xb[0], x) and torch.equal(yb[0], y) and pids[0] == pid
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)
    bx, by, bp = next(iter(loader))
    assert bx.shape == (4, 2, WINDOW) and torch.equal(bx[1], ds[1][0]) and list(bp) == [ds[i][2] for i in range(4)]
    assert set(ds.patients()) == set(PreparedFile(prepared["int16"]).manifest["train"])
    with pytest.raises(IndexError):
        ds.get_batch([len(ds)])


def test_balanced_sampler_is_balanced_and_deterministic(prepared):
    ds = WindowDataset(prepared["float32"], "train")
    s1 = BalancedSampler(ds, "score", num_samples=3000, seed=3)
    s2 = BalancedSampler(ds, "score", num_samples=3000, seed=3)
    e0 = list(s1)
    assert e0 == list(s2) and len(e0) == 3000 == len(s1)
    assert list(s1) != e0                      # the next epoch differs ...
    s1.set_epoch(0)
    assert list(s1) == e0                      # ... and set_epoch replays one exactly
    counts = np.bincount(ds.labels[e0, 1], minlength=3)
    present = np.unique(ds.labels[:, 1])
    assert (counts[present] > 3000 / len(present) * 0.8).all()
    no_rep = BalancedSampler(ds, 0, num_samples=len(ds), with_replacement=False)
    assert sorted(no_rep) == list(range(len(ds)))
    with pytest.raises(UserError, match="not one of"):
        BalancedSampler(ds, "nope")


def test_not_a_prepared_file(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("hello")
    with pytest.raises(UserError, match="not an HDF5 file"):
        PreparedFile(bad)
    code, out, err = run_cmd(inspect_main, [str(bad)])
    assert code == 2 and err.strip().startswith("error: ") and len(err.strip().splitlines()) == 1
    import tables
    with tables.open_file(str(tmp_path / "other.h5"), "w") as f:
        f.create_array("/", "a", obj=np.arange(3))
    with pytest.raises(UserError, match="not a prepared data file"):
        PreparedFile(tmp_path / "other.h5")


def test_inspect_prints_and_plots(prepared, tmp_path):
    png = tmp_path / "w.png"
    code, out, err = run_cmd(inspect_main, [str(prepared["int16"]), "--plot", str(png), "--n", "2"])
    assert code == 0, err
    assert "manifest sha256" in out and "grade" in out and "A " in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
