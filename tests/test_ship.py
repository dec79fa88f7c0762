"""tools.ship: a finished run -> models/<name>/ (float16 weights + model card) that generate.py uses as is."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from dataloader.cli import run_main
from tests.tiny_run import make_tiny_project, run_train, tiny_config
from tools.ship import cast_weights, main as ship_main


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
    assert _ship(run, tmp_path) == 0
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
