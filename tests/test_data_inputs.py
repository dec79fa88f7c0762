"""Bad input to tools.prepare_data: one line `error: ...`, exit code 2, no output file (not even a temp)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.test_data_util import (WINDOW, assert_user_error, base_config, make_dataset, run_cmd, synth_signal,
                                  write_config, write_csv)
from tools.prepare_data import main as prepare_main


@pytest.fixture()
def ds(tmp_path: Path):
    sig, lab = make_dataset(tmp_path / "in", n_patients=6)
    out = tmp_path / "out" / "prep.h5"
    return sig, lab, out


def _run(tmp_path: Path, cfg: dict, *extra: str) -> tuple[int, str, str]:
    p = write_config(tmp_path / "cfg.yaml", cfg)
    return run_cmd(prepare_main, ["--config", str(p), *extra])


def test_missing_folder(tmp_path, ds):
    sig, lab, out = ds
    code, _, err = _run(tmp_path, base_config(tmp_path / "nope", lab, out))
    assert_user_error(code, err, out.parent, "nope", "not found")


def test_empty_folder(tmp_path, ds):
    _, lab, out = ds
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no csv here")
    code, _, err = _run(tmp_path, base_config(tmp_path / "empty", lab, out))
    assert_user_error(code, err, out.parent, "empty")


@pytest.mark.parametrize("header,needle", [(("A",), "missing column for channel 'B'"),
                                           (("A", "B", "C"), "extra column 'C'"),
                                           (("A", "A"), "appears twice")])
def test_csv_columns(tmp_path, ds, header, needle):
    sig, lab, out = ds
    x = synth_signal(300, 0)
    x = np.concatenate([x, x[:1]])[: len(header)]
    write_csv(sig / "p03.csv", x, header=header)
    code, _, err = _run(tmp_path, base_config(sig, lab, out))
    assert_user_error(code, err, out.parent, "p03.csv:1", needle)


@pytest.mark.parametrize("cell,needle", [("abc", "'abc' is not a number"), ("", "empty or NaN"),
                                         ("nan", "empty or NaN"), ("inf", "infinite")])
def test_csv_bad_cells(tmp_path, ds, cell, needle):
    sig, lab, out = ds
    write_csv(sig / "p02.csv", synth_signal(300, 0), cells={(9, 0): cell})
    code, _, err = _run(tmp_path, base_config(sig, lab, out))
    # row 9 of the samples is line 11 of the file (header = line 1)
    assert_user_error(code, err, out.parent, "p02.csv:11", needle)


def test_nan_allowed_when_missing_is_nan(tmp_path, ds):
    sig, lab, out = ds
    write_csv(sig / "p02.csv", synth_signal(300, 0), cells={(9, 0): "nan"})
    cfg = base_config(sig, lab, out)
    cfg["data"]["channels"][0]["missing"] = "nan"
    code, outp, err = _run(tmp_path, cfg)
    assert code == 0, err
    assert out.is_file()


def test_same_patient_twice(tmp_path, ds):
    sig, lab, out = ds
    write_csv(sig / "p01.csv", synth_signal(300, 0), gz=True)
    code, _, err = _run(tmp_path, base_config(sig, lab, out))
    assert_user_error(code, err, out.parent, "'p01' appears twice")


def test_short_recording_is_skipped_not_an_error(tmp_path, ds):
    sig, lab, out = ds
    write_csv(sig / "p04.csv", synth_signal(WINDOW - 1, 3))
    code, stdout, err = _run(tmp_path, base_config(sig, lab, out))
    assert code == 0, err
    assert "skipped 1 recording" in stdout and "p04" in stdout
    report = out.with_suffix(".report.csv").read_text()
    assert "p04,,63,0,0,0" in report and "skipped: no segment" in report


def test_all_recordings_too_short(tmp_path, ds):
    sig, lab, out = ds
    code, _, err = _run(tmp_path, base_config(sig, lab, out, window=5000))
    assert_user_error(code, err, out.parent, "data.window", "longer than every recording")


def test_labels_without_id_column(tmp_path, ds):
    sig, lab, out = ds
    lab.write_text(lab.read_text().replace("pid,", "patient,", 1))
    code, _, err = _run(tmp_path, base_config(sig, lab, out))
    assert_user_error(code, err, out.parent, "labels.csv:1", "no id column 'pid'")


def test_label_outside_categories(tmp_path, ds):
    sig, lab, out = ds
    lab.write_text(lab.read_text().replace("p03,low", "p03,medium"))
    code, _, err = _run(tmp_path, base_config(sig, lab, out))
    assert_user_error(code, err, out.parent, "labels.csv:4", "'medium' is not one of the declared categories")


def test_labels_file_missing(tmp_path, ds):
    sig, lab, out = ds
    code, _, err = _run(tmp_path, base_config(sig, tmp_path / "nolabels.csv", out))
    assert_user_error(code, err, out.parent, "nolabels.csv", "not found")


@pytest.mark.parametrize("key,value,needle", [
    ("stride_s", 0, "must be > 0"),
    ("stride_s", -4, "must be > 0"),
    ("window", "long", "expected"),
    ("max_gap_s", -1, "must be >= 0"),
    ("bogus", 1, "unknown key 'bogus'; valid keys:"),
])
def test_config_errors(tmp_path, ds, key, value, needle):
    sig, lab, out = ds
    code, _, err = _run(tmp_path, base_config(sig, lab, out, **{key: value}))
    assert_user_error(code, err, out.parent, needle)


def test_split_fractions_must_sum_to_one(tmp_path, ds):
    sig, lab, out = ds
    cfg = base_config(sig, lab, out, split={"train": 0.7, "val": 0.2, "test": 0.2})
    code, _, err = _run(tmp_path, cfg)
    assert_user_error(code, err, out.parent, "sum to 1")


def test_override_errors_and_bad_workers(tmp_path, ds):
    sig, lab, out = ds
    cfg = base_config(sig, lab, out)
    code, _, err = _run(tmp_path, cfg, "data.channels.5.range=[0,1]")
    assert_user_error(code, err, out.parent, "not an index")
    code, _, err = _run(tmp_path, cfg, "--workers", "0")
    assert_user_error(code, err, out.parent, "--workers")


def test_wfdb_missing_required_channel(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    src = tmp_path / "wf"
    src.mkdir()
    sig = (np.random.default_rng(0).normal(0, 0.3, (2000, 2))).round(3)
    wfdb.wrsamp("r1", fs=360, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=sig, fmt=["16", "16"],
                write_dir=str(src))
    wfdb.wrsamp("r2", fs=360, units=["mV", "mV"], sig_name=["V5", "V1"], p_signal=sig, fmt=["16", "16"],
                write_dir=str(src))
    out = tmp_path / "out" / "w.h5"
    cfg = {"data": {"source": str(src), "format": "wfdb", "prepared": str(out), "window": 256, "stride_s": 1,
                    "workers": 1, "channels": [{"name": "MLII", "unit": "mV", "range": [-5, 5]},
                                               {"name": "V", "source": ["V1", "V2"], "unit": "mV",
                                                "range": [-5, 5]}]}}
    code, _, err = _run(tmp_path, cfg)
    assert_user_error(code, err, out.parent, "r2.hea", "required channel 'MLII'")


def test_patient_without_label_row_is_dropped_or_gets_missing_class(tmp_path, ds):
    sig, lab, out = ds
    lab.write_text("\n".join(ln for ln in lab.read_text().splitlines() if not ln.startswith("p06")) + "\n")
    code, stdout, err = _run(tmp_path, base_config(sig, lab, out))
    assert code == 0, err
    assert "p06 (missing label 'grade'" in stdout
    cfg = base_config(sig, lab, out)
    cfg["data"]["label_columns"][0]["on_missing"] = "class"
    cfg["data"]["label_columns"][1]["on_missing"] = "class"
    code, stdout, err = _run(tmp_path, cfg)
    assert code == 0, err and "skipped" not in stdout
    from dataloader.prepared import PreparedFile
    f = PreparedFile(out)
    assert f.class_names[0] == ["low", "high", "missing"] and "p06" in f.patient_ids


def test_corrupt_gzip_and_malformed_row(tmp_path, ds):
    sig, lab, out = ds
    (sig / "p07.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    code, _, err = _run(tmp_path, base_config(sig, lab, out))
    assert_user_error(code, err, out.parent, "p07.csv.gz", "cannot read")
    (sig / "p07.csv.gz").unlink()
    (sig / "p03.csv").write_text("A,B\n140,20\n141,21,5\n142,22\n")
    code, _, err = _run(tmp_path, base_config(sig, lab, out))
    assert_user_error(code, err, out.parent, "p03.csv:3", "malformed")


def test_dry_run_writes_nothing(tmp_path, ds):
    sig, lab, out = ds
    code, stdout, err = _run(tmp_path, base_config(sig, lab, out), "--dry-run", "data.stride_s=8")
    assert code == 0 and "stride_s: 8" in stdout and not out.parent.exists()
