"""tools.export: WFDB records read back with wfdb.rdrecord within quantisation; CSV files and index."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from dataloader.errors import UserError
from dataloader.synthetic import SyntheticWriter, read_synthetic
from tools.export import export, main

CHANNELS = [{"name": "FHR", "unit": "bpm", "range": [50, 210]}, {"name": "UC", "unit": "nd", "range": [0, 100]}]
SPEC = [{"name": "pH", "classes": ["pH<7.05", "7.05<=pH<7.15", "pH>=7.15"]},
        {"name": "delivery", "classes": ["vaginal", "caesarean"]}]


def _synthetic(path: Path, n: int = 3, length: int = 240) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = np.stack([140 + 15 * rng.standard_normal((n, length)), 100 * rng.random((n, length))], axis=1)
    labels = np.array([[0, 1], [2, 0], [1, 1]])[:n]
    attrs = dict(fs=4.0, channels=CHANNELS, label_spec=SPEC, config="data: {}\n", sampler="ddim", steps=10,
                 guidance_scale=1.0, seed=0, model_sha256="0" * 64, package_version="0.1.0")
    w = SyntheticWriter(path, attrs=attrs, run_key="k", labels=labels, n_channels=2, length=length)
    w.append(x)
    w.finish()
    return x.astype(np.float32)


def test_wfdb_round_trip(tmp_path: Path) -> None:
    import wfdb

    x = _synthetic(tmp_path / "syn.h5")
    export(tmp_path / "syn.h5", "wfdb", tmp_path / "wfdb")
    rec = wfdb.rdrecord(str(tmp_path / "wfdb" / "syn_000001"))
    assert rec.sig_name == ["FHR", "UC"] and rec.units == ["bpm", "nd"] and rec.fs == 4
    # 16-bit codes over each channel's span: error at most one step (span / 65535) plus float32 rounding
    span = x[1].max(axis=1) - x[1].min(axis=1)
    assert np.all(np.abs(rec.p_signal.T - x[1]).max(axis=1) <= span / 65535 + 1e-3)
    assert "label pH: pH>=7.15" in rec.comments and "label delivery: vaginal" in rec.comments
    assert any("synthetic" in c for c in rec.comments)
    assert not list((tmp_path / "wfdb").glob(".tmp*"))


def test_csv_export_and_index(tmp_path: Path) -> None:
    x = _synthetic(tmp_path / "syn.h5")
    files = export(tmp_path / "syn.h5", "csv", tmp_path / "csv", limit=2)
    assert sorted(f.name for f in files) == ["index.csv", "syn_000000.csv", "syn_000001.csv"]
    with open(tmp_path / "csv" / "syn_000000.csv") as f:
        assert f.readline().strip() == "time_s,FHR [bpm],UC [nd]"
    back = np.loadtxt(tmp_path / "csv" / "syn_000000.csv", delimiter=",", skiprows=1)
    assert np.allclose(back[:, 0], np.arange(x.shape[2]) / 4.0)
    assert np.allclose(back[:, 1:].T, x[0], rtol=1e-5, atol=1e-4)
    rows = list(csv.reader(open(tmp_path / "csv" / "index.csv")))
    assert rows == [["record", "pH", "delivery"], ["syn_000000", "pH<7.05", "caesarean"],
                    ["syn_000001", "pH>=7.15", "vaginal"]]


def test_export_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UserError, match="not found"):
        export(tmp_path / "missing.h5", "csv", tmp_path / "out")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="HDF5"):
        export(tmp_path / "junk.h5", "csv", tmp_path / "out")
    _synthetic(tmp_path / "syn.h5")
    with pytest.raises(SystemExit) as e:
        from dataloader.cli import run_main

        run_main(main, [str(tmp_path / "syn.h5"), "--format", "csv", "--out", str(tmp_path / "no" / "dir")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: folder") and err.count("\n") == 1
    assert not (tmp_path / "no").exists()


def test_read_synthetic_attrs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _synthetic(tmp_path / "syn.h5")
    s, lab, attrs = read_synthetic(tmp_path / "syn.h5")
    assert s.shape == (3, 2, 240) and lab.shape == (3, 2)
    assert attrs["channels"] == CHANNELS and attrs["label_spec"] == SPEC and attrs["fs"] == 4.0
    assert "created_utc" not in attrs and attrs["package_version"] == "0.1.0"  # no wall-clock time by default
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    _synthetic(tmp_path / "stamped.h5")
    assert read_synthetic(tmp_path / "stamped.h5")[2]["created_utc"] == "2026-01-01T00:00:00+00:00"
