"""generate.py --bpm / --baseline_bpm: the bin of a derived heart-rate label, refusals of bad values, and the
fallback for a model without such a label (the attribute says which)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataloader.cli import run_main
from dataloader.synthetic import read_synthetic
from generate import main
from tests.heart_rate_data import make_ecg_project
from tests.tiny_run import make_tiny_project, run_train, tiny_config


@pytest.fixture(scope="module")
def ecg_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ECG project (a rpeaks heart-rate label, 5-bpm bins 40-180) with a model trained 4 steps."""
    cfg = make_ecg_project(tmp_path_factory.mktemp("bpm"))
    run_train(tiny_config(cfg))
    return cfg


def _run(cfg: Path, out: Path, *extra: object) -> dict:
    assert main(["--config", str(cfg), "--samples", "3", "--out", str(out), *[str(e) for e in extra]]) == 0
    _, labels, attrs = read_synthetic(str(out))
    return {"labels": labels, "control": json.loads(attrs["heart_rate_control"])}


def _fails(capsys: pytest.CaptureFixture, cfg: Path, out: Path, *extra: object) -> str:
    with pytest.raises(SystemExit) as e:
        run_main(main, ["--config", str(cfg), "--samples", "3", "--out", str(out), *[str(x) for x in extra]])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert not out.exists()
    return err


def test_bpm_chooses_the_bin(ecg_model: Path, tmp_path: Path) -> None:
    r = _run(ecg_model, tmp_path / "a.h5", "--bpm", 72)
    assert r["control"]["method"] == "label" and r["control"]["class"] == "[70,75)"
    assert r["labels"].tolist() == [[7]] * 3                     # "<40" is 0, [40,45) is 1, ... [70,75) is 7


def test_bpm_with_class_csv(ecg_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv = tmp_path / "c.csv"
    csv.write_text("hr,count\n\"[60,65)\",2\n")   # bin names hold a comma: quoted
    err = _fails(capsys, ecg_model, tmp_path / "b.h5", "--samples", csv, "--bpm", 90)
    assert err.startswith("error: --bpm: the class CSV also sets the heart-rate label 'hr'"), err


@pytest.mark.parametrize("bpm, expect", [(200, "outside the model's heart-rate label 'hr': its bins cover 40-180"),
                                         (180, "outside"), (39.9, "outside"),
                                         (100, "class '[100,105)', which held no training window"),
                                         (-5, "must be a positive number"), ("nan", "must be a positive number")])
def test_bpm_refused(ecg_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, bpm: object,
                     expect: str) -> None:
    err = _fails(capsys, ecg_model, tmp_path / "c.h5", "--bpm", bpm)
    assert err.startswith("error: --bpm: ") and expect in err, err


def test_bpm_and_baseline_together(ecg_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "not both" in _fails(capsys, ecg_model, tmp_path / "d.h5", "--bpm", 72, "--baseline_bpm", 140)


def test_rate_channel_only_for_fallback(ecg_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _fails(capsys, ecg_model, tmp_path / "e.h5", "--bpm", 72, "--rate_channel", "ecg")
    assert err.startswith("error: --rate_channel: only for the fallback"), err


def test_fallback_without_label(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A model without a baseline label: --baseline_bpm shifts the channel (offset), stored in the file; a
    window too short to measure is left as generated and counted."""
    cfg = make_tiny_project(tmp_path / "p")
    run_train(tiny_config(cfg, "train.max_steps=2"))
    plain = tmp_path / "plain.h5"
    assert main(["--config", str(cfg), "--samples", "3", "--out", str(plain)]) == 0
    r = _run(cfg, tmp_path / "f.h5", "--baseline_bpm", 140, "--rate_channel", "B")
    assert r["control"] == {"method": "offset", "option": "--baseline_bpm", "target_bpm": 140.0,
                            "measure": "baseline", "channel": "B"}
    assert np.array_equal(read_synthetic(str(plain))[0], read_synthetic(str(tmp_path / "f.h5"))[0])
    assert "3 windows had no measurable rate" in capsys.readouterr().err   # 32 samples at 1 Hz: under 2 epochs
    err = _fails(capsys, cfg, tmp_path / "g.h5", "--bpm", 72, "--rate_channel", "Z")
    assert err.startswith("error: --rate_channel: unknown channel 'Z'"), err


def test_bpm_with_duration_is_refused(ecg_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--bpm sets the rate of single windows (a label per window, or the per-window fallback): not yet of a
    continued recording; refused before any work rather than silently ignored."""
    err = _fails(capsys, ecg_model, tmp_path / "s.h5", "--bpm", "72", "--duration", "60s")
    assert "error: --bpm:" in err and "--duration" in err
