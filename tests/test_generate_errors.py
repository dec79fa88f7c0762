"""generate.py: every bad input ends in one line `error: <where>: <what>`, exit code 2, nothing written."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dataloader.cli import run_main
from generate import main
from tests.tiny_run import make_tiny_project, run_train, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with a model trained for 4 steps; returns the config path."""
    cfg_path = make_tiny_project(tmp_path_factory.mktemp("gen"))
    run_train(tiny_config(cfg_path, "train.max_steps=4"))
    return cfg_path


def _fails(capsys: pytest.CaptureFixture, args: list[str], out_dir: Path, expect: str) -> str:
    before = sorted(p.name for p in out_dir.iterdir())
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(a) for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expect in err, err
    assert sorted(p.name for p in out_dir.iterdir()) == before  # nothing written, no temporary file left
    return err


def _args(cfg: Path, out: Path, *extra: object) -> list[str]:
    return ["--config", str(cfg), "--samples", "4", "--out", str(out), *[str(e) for e in extra]]


def test_missing_checkpoint(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(capsys, _args(trained, tmp_path / "s.h5", "--checkpoint", tmp_path / "nope.safetensors"), tmp_path,
           "model file not found")


def test_truncated_checkpoint(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = (trained.parent / "run" / "model.safetensors").read_bytes()
    for n, name in ((len(data) // 2, "half"), (5, "head")):
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(data[:n])
        _fails(capsys, _args(trained, tmp_path / "s.h5", "--checkpoint", bad), tmp_path, str(bad))


def test_checkpoint_with_other_channels(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _fails(capsys, _args(trained, tmp_path / "s.h5", "data.channels.1.name=C"), tmp_path, "channels")
    assert "['A', 'B']" in err and "['A', 'C']" in err


def test_checkpoint_with_other_window_length(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _fails(capsys, _args(trained, tmp_path / "s.h5", "data.window=64"), tmp_path, "window length")
    assert "32" in err and "64" in err


@pytest.mark.parametrize("csv_text, expect", [
    ("grp,colour,count\na,red,2\n", "unknown label column 'colour' (valid: grp, score, then count)"),
    ("grp,count\nc,2\n", ":2: unknown class 'c' for 'grp'"),
    ("grp,score,count\na,low,1\nb,high,-3\n", ":3: count must be a non-negative integer (got -3)"),
    ("grp,count\na,2.5\n", ":2: count must be a non-negative integer (got '2.5')"),
    ("grp,count\na,x\n", ":2: count must be a non-negative integer (got 'x')"),
])
def test_bad_class_csv(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture, csv_text: str,
                       expect: str) -> None:
    f = tmp_path / "classes.csv"
    f.write_text(csv_text)
    args = ["--config", trained, "--samples", f, "--out", tmp_path / "s.h5"]
    _fails(capsys, args, tmp_path, expect)


def test_steps_zero(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(capsys, _args(trained, tmp_path / "s.h5", "--steps", "0"), tmp_path, "--steps: must be >= 1 (got 0)")


def test_unknown_sampler(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _fails(capsys, _args(trained, tmp_path / "s.h5", "--sampler", "magic"), tmp_path, "unknown sampler 'magic'")
    assert "ddim" in err and "dpm_solver" in err and "k_euler" in err


def test_output_folder_missing(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(capsys, _args(trained, tmp_path / "no" / "s.h5"), tmp_path, "does not exist")


def test_help_lists_every_sampler(capsys: pytest.CaptureFixture) -> None:
    from diffusion.samplers import list_samplers

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name in list_samplers():
        assert name in text
    for opt in ("--checkpoint", "--samples", "--sampler", "--steps", "--guidance_scale", "--seed", "--batch_size",
                "--out", "--plot", "--scaled", "--export"):
        assert opt in text


def test_no_model_in_out_dir(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shutil.copy(trained, tmp_path / "cfg.yaml")
    _fails(capsys, _args(tmp_path / "cfg.yaml", tmp_path / "s.h5", f"train.out_dir={tmp_path}/empty"), tmp_path,
           "model file not found")
