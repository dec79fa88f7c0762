"""bench/shipped_speed.py without a model: its bad arguments (one line, exit 2, nothing written) and its report.
The run on a shipped model is in tests/test_ship.py (it reuses that file's shipped tiny model)."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.shipped_speed import main, markdown
from dataloader.cli import run_main


def _fails(argv: list[str], out: Path, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as e:
        run_main(main, ["--out", str(out), *argv])  # a later --out in argv wins
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert list(out.iterdir()) == []
    return err


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    models, out = tmp_path / "models", tmp_path / "out"
    models.mkdir()
    out.mkdir()
    (models / "other").mkdir()
    (models / "other" / "model.safetensors").write_bytes(b"x")  # shipped names come from the folder listing
    d = ["--models_dir", str(models)]
    assert _fails([*d, "--models", "nope"], out, capsys) == \
        "error: --models: no shipped model 'nope' (shipped: other)\n"
    assert "error: --models: no shipped models in" in _fails(["--models_dir", str(out)], out, capsys)
    assert _fails([*d, "--windows", "0"], out, capsys) == "error: --windows: must be >= 1 (got 0)\n"
    assert _fails([*d, "--repeats", "0"], out, capsys) == "error: --repeats: must be >= 1 (got 0)\n"
    assert "error: --out:" in _fails([*d, "--out", str(tmp_path / "missing")], out, capsys)
    assert "README.md: not found" in _fails([*d, "--models", "other"], out, capsys)  # the card check comes first


def test_report_rendering() -> None:
    machine = {"cpu": "AMD EPYC 7B13", "cores": 2, "memory_gib": 7.8, "gpu": None, "python": "3.11.2",
               "torch": "2.3.0", "commit": "abc1234", "utc": "2026-12-04T05:00:00+00:00"}
    row = {"name": "ctg-4hz", "model_type": "diffusion", "size": "base", "sampler": "dpmpp_2m", "steps": 20,
           "guidance_scale": 1.5, "window": {"channels": 2, "length": 8192, "fs_hz": 4.0}, "load_s": 0.84,
           "median_s": 12.5, "windows_per_s": 20.48, "signal_s_per_s": 41943.0}
    r = {"machine": machine, "device": "cpu", "threads": 2, "windows": 256, "repeats": 3, "batch_size": 64,
         "seed": 0, "loadavg_start": [2.5, 2.0, 1.0], "loadavg_end": [2.1, 2.0, 1.0], "models": [row]}
    text = markdown(r)
    assert "| ctg-4hz | diffusion / base | dpmpp_2m | 20 | 1.5 | 2 x 8192 @ 4 | 0.84 | 12.500 | 20.5 | 41,943 |" \
        in text.splitlines()
    assert "--samples 256 --batch_size 64" in text and "median of 3 repeats" in text
    assert "the machine was shared" in text and "GPU: none" in text
    r["loadavg_start"] = [0.2, 0.1, 0.1]
    assert "the machine was shared" not in markdown(r)
