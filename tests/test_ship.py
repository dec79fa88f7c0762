"""tools.ship: a finished run -> models/<name>/ (float16 weights + model card) that generate.py uses as is."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from dataloader.cli import run_main
from dataloader.errors import UserError
from tests.tiny_run import make_tiny_project, run_train, tiny_config
from tools.ship import cast_weights, main as ship_main
from training.model_file import file_sha256


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg_path = make_tiny_project(tmp_path_factory.mktemp("ship"))
    run_train(tiny_config(cfg_path, "train.max_steps=6"))
    return cfg_path


def _ship(run: Path, out: Path, *extra: str) -> int:
    with pytest.raises(SystemExit) as e:
        run_main(ship_main, ["--run", str(run), "--name", "tiny-test", "--licence", "CC0 (test data)",
                             "--out", str(out), *extra])
    return int(e.value.code or 0)


def test_ship_writes_card_and_half_weights_that_generate_like_the_original(trained: Path, tmp_path: Path) -> None:
    from diffusion.checkpoint import load_model_file

    run = trained.parent / "run"
    notes = tmp_path / "notes.md"
    notes.write_text("Trained with `train.py --config tiny.yaml`.\n\n# Numbers\nNone worth quoting.\n")
    assert _ship(run, tmp_path, "--notes", str(notes)) == 0
    shipped = tmp_path / "tiny-test" / "model.safetensors"
    with safe_open(str(shipped), "pt") as f:
        card = json.loads(f.metadata()["card"])
        assert all(f.get_tensor(k).dtype in (torch.float16, torch.int64, torch.long) for k in f.keys())
    assert card["training"]["steps"] == 6 and card["training"]["windows_seen"] == 6 * 8
    assert card["data"]["patients"] == {k: len(v) for k, v in card["data"]["manifest"].items()}
    assert sum(card["data"]["patients"].values()) == 10 and card["data"]["source_files"] == 10
    assert card["licence"] == "CC0 (test data)" and "model:" in card["config"]
    readme = (tmp_path / "tiny-test" / "README.md").read_text()
    assert card["data"]["prepared_sha256"] in readme and "| steps | 6 |" in readme
    assert card["notes"].startswith("Trained with") and "## How it was made" in readme
    assert "\n### Numbers\n" in readme  # the notes' headings sit under the card's section
    assert f"| file sha256 | `{file_sha256(shipped)}` |" in readme.splitlines()  # the final file's digest
    assert shipped.stat().st_size < 0.6 * (run / "model.safetensors").stat().st_size  # half the float bytes
    a, _ = load_model_file(run / "model.safetensors", None, "cpu")
    b, _ = load_model_file(shipped, None, "cpu")
    xa = a.sample(3, sampler="ddim", steps=5, seed=1)
    xb = b.sample(3, sampler="ddim", steps=5, seed=1)
    assert np.allclose(xa.numpy(), xb.numpy(), atol=1e-2) and not torch.equal(xa, torch.zeros_like(xa))


def test_bad_inputs_write_nothing(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = trained.parent / "run"
    with pytest.raises(SystemExit) as e:
        run_main(ship_main, ["--run", str(run), "--name", "../evil", "--licence", "x", "--out", str(tmp_path)])
    assert e.value.code == 2 and "error: --name:" in capsys.readouterr().err
    assert _ship(tmp_path / "no-run", tmp_path) == 2
    assert _ship(run, tmp_path, "--eval", str(tmp_path / "no-eval")) == 2
    assert _ship(run, tmp_path, "--notes", str(tmp_path / "no-notes.md")) == 2
    assert list(tmp_path.iterdir()) == []  # no model folder, no temporary file


def test_cast_refuses_values_float16_cannot_hold() -> None:
    from dataloader.errors import UserError

    with pytest.raises(UserError, match="beyond torch.float16"):
        cast_weights({"w": torch.tensor([1e6])}, torch.float16, "--dtype")
    out = cast_weights({"w": torch.tensor([1.5]), "n": torch.tensor([3])}, torch.float16, "--dtype")
    assert out["w"].dtype == torch.float16 and out["n"].dtype == torch.int64


def test_generate_uses_a_shipped_model_by_name(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    """generate.py --model NAME: the shipped file and its own stored config, no training and no --config;
    the same windows as generating from that file with the run's config."""
    import tools.ship
    from dataloader.synthetic import read_synthetic
    from generate import main as gen_main

    models = tmp_path / "models"
    models.mkdir()
    assert _ship(trained.parent / "run", models) == 0
    monkeypatch.setattr(tools.ship, "MODELS_DIR", models)
    with pytest.raises(SystemExit) as e:
        run_main(gen_main, ["--model", "tiny-test", "--samples", "4", "--out", str(tmp_path / "a.h5"), "--seed", "3"])
    assert e.value.code in (0, None)
    with pytest.raises(SystemExit):
        run_main(gen_main, ["--config", str(trained), "--checkpoint", str(models / "tiny-test" / "model.safetensors"),
                            "--samples", "4", "--out", str(tmp_path / "b.h5"), "--seed", "3"])
    a, la, _ = read_synthetic(tmp_path / "a.h5")
    b, lb, _ = read_synthetic(tmp_path / "b.h5")
    assert a.shape == (4, 2, 32) and np.array_equal(a, b) and np.array_equal(la, lb)
    capsys.readouterr()
    for argv, expect in ((["--model", "nope"], "error: --model: no shipped model 'nope' (shipped: tiny-test)"),
                         (["--model", "../run"], "error: --model: no shipped model '../run'"),
                         (["--model", "tiny-test", "--checkpoint", "x.safetensors"], "not both"),
                         ([], "error: --config: required (or --model NAME")):
        with pytest.raises(SystemExit) as e:
            run_main(gen_main, [*argv, "--samples", "4", "--out", str(tmp_path / "c.h5")])
        assert e.value.code == 2 and expect in capsys.readouterr().err
    assert not (tmp_path / "c.h5").exists()


@pytest.fixture(scope="module")
def shipped(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models/ folder holding the tiny run shipped as "tiny-test" (tests copy it before they edit it)."""
    models = tmp_path_factory.mktemp("models")
    assert _ship(trained.parent / "run", models) == 0
    return models


def _copy(shipped: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(shipped, tmp_path / "models"))


def _flip_last_byte(path: Path) -> None:
    """One byte of the weights changed in place (the header still parses): a damaged or edited file."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_readme(readme: Path, row: str | None) -> None:
    """The card's `| file sha256 |` row replaced by `row` (None: removed)."""
    lines = [ln if not ln.startswith("| file sha256 |") else row for ln in readme.read_text().splitlines()]
    readme.write_text("\n".join(ln for ln in lines if ln is not None) + "\n")


def _generate_fails(models: Path, out: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                    *extra: str) -> str:
    """generate.py --model tiny-test (from `models`): exit 2, one line `error: ...`, nothing in out's folder."""
    import tools.ship
    from generate import main as gen_main

    monkeypatch.setattr(tools.ship, "MODELS_DIR", models)
    capsys.readouterr()
    before = sorted(out.parent.iterdir())
    with pytest.raises(SystemExit) as e:
        run_main(gen_main, ["--model", "tiny-test", "--samples", "4", "--out", str(out), "--seed", "3", *extra])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert sorted(out.parent.iterdir()) == before  # no output, no temporary file
    return err


def test_generate_refuses_a_file_that_does_not_match_its_card(shipped: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    models = _copy(shipped, tmp_path)
    weights, readme = models / "tiny-test" / "model.safetensors", models / "tiny-test" / "README.md"
    good = file_sha256(weights)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _flip_last_byte(weights)
    err = _generate_fails(models, out_dir / "s.h5", capsys, monkeypatch)
    bad = file_sha256(weights)
    assert err == (f"error: {readme}: model.safetensors has sha256 {bad[:12]}..., the card says {good[:12]}...: "
                   "the file changed after it was shipped (damaged or edited); ship it again "
                   "(python -m tools.ship)\n")
    _flip_last_byte(weights)  # back to the shipped bytes: the card's row is what is wrong now
    for row, expect in ((None, "no '| file sha256 | ... |' row"),
                        ("| file sha256 | `abc` |", "malformed '| file sha256 |' row: 'abc' is not 64"),
                        (f"| file sha256 | `{good}` |\n| file sha256 | `{good}` |", "2 '| file sha256 | ... |' rows")):
        shutil.copy(shipped / "tiny-test" / "README.md", readme)
        _edit_readme(readme, row)
        err = _generate_fails(models, out_dir / "s.h5", capsys, monkeypatch)
        assert err.startswith(f"error: {readme}: {expect}") and f"has sha256 {good[:12]}..." in err, err
    readme.unlink()
    assert "README.md: not found" in _generate_fails(models, out_dir / "s.h5", capsys, monkeypatch)


def test_generate_refuses_an_unknown_class_of_a_shipped_model(shipped: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 15: a class CSV with a class the model was not trained on names its row, column and the classes."""
    csv = tmp_path / "classes.csv"
    csv.write_text("score,grp,count\nlow,a,2\nhigh,c,2\n")
    err = _generate_fails(shipped, tmp_path / "s.h5", capsys, monkeypatch, "--samples", str(csv))
    assert err == (f"error: {csv}:3: unknown class 'c' for 'grp' (expected a class name or code: 0='a', 1='b')\n")


def test_web_app_refuses_a_shipped_file_that_does_not_match_its_card(trained: Path, shipped: Path, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """At start: the app does not start (one UserError naming the README). After start: the first job that
    would load a replaced file fails with the reason, logged, and the model is not loaded."""
    from serve.catalog import find_models

    models = _copy(shipped, tmp_path)
    weights, readme = models / "tiny-test" / "model.safetensors", models / "tiny-test" / "README.md"
    entry = find_models([models])["tiny-test"]
    assert entry.meta.shipped and entry.meta.sha256 == file_sha256(weights)
    _flip_last_byte(weights)
    with pytest.raises(UserError) as e:
        find_models([models])
    assert e.value.where == str(readme) and "the card says" in e.value.what
    with caplog.at_level(logging.ERROR, logger="serve"), pytest.raises(UserError, match="changed since the app"):
        entry.loaded("cpu")
    assert entry.model is None and "model tiny-test refused" in caplog.text
    _flip_last_byte(weights)
    assert entry.loaded("cpu") is not None  # the file it started with again
    run_file = trained.parent / "run" / "model.safetensors"  # a training run's file has no card: served as is
    assert not find_models([run_file])["run"].meta.shipped


def test_shipped_speed_bench_times_a_shipped_model(shipped: Path, tmp_path: Path) -> None:
    """bench/shipped_speed.py on the tiny shipped model: windows/s at its own sampler and steps, batch 64, and
    the report files named by commit and machine (nothing else left in --out)."""
    from bench.shipped_speed import main as bench_main

    with pytest.raises(SystemExit) as e:
        run_main(bench_main, ["--models_dir", str(shipped), "--windows", "8", "--repeats", "2", "--threads", "1",
                              "--out", str(tmp_path)])
    assert e.value.code in (0, None)
    (js,) = tmp_path.glob("shipped_speed_*_*.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [js.name, js.with_suffix(".md").name]
    r = json.loads(js.read_text())
    (m,) = r["models"]
    assert (m["name"], m["sampler"], m["steps"], m["batch_size"]) == ("tiny-test", "ddim", 4, 64)
    assert len(m["seconds"]) == 2 and m["windows_per_s"] == pytest.approx(8 / m["median_s"], rel=0.01)
    assert m["sha256"] == file_sha256(shipped / "tiny-test" / "model.safetensors") and r["machine"]["cpu"]
    assert "| tiny-test | diffusion / tiny | ddim | 4 |" in js.with_suffix(".md").read_text()
