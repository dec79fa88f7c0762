"""Training: exact resume (weights, EMA, optimizer, RNG), the CSV log, checkpoints, refusals."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate.utils import load as accelerate_load
from safetensors.torch import load_file

from dataloader.errors import UserError
from training.train_log import COLUMNS, read_log
from tests.tiny_run import make_tiny_project, run_train, tiny_config


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_project(tmp_path_factory.mktemp("tiny"))


def _state(out: Path, step: int) -> dict[str, dict[str, torch.Tensor]]:
    """Everything a checkpoint holds, as tensors: model, EMA, optimizer, generator, global RNG."""
    d = out / "checkpoints" / f"step-{step:07d}"
    opt = torch.load(d / "optimizer.bin", weights_only=True)
    flat_opt = {f"{i}.{k}": v for i, s in opt["state"].items() for k, v in s.items()}
    rng = accelerate_load(d / "random_states_0.pkl")  # accelerate's loader: weights_only with its allow-list
    return {"model": load_file(d / "model.safetensors"), "trainer": load_file(d / "trainer_state.safetensors"),
            "optimizer": flat_opt, "generator": load_file(d / "rng_rank0.safetensors"),
            "torch_rng": {"cpu": rng["torch_manual_seed"]},
            "inference": load_file(out / "model.safetensors")}


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_is_exact(project: Path, tmp_path: Path, accum: int) -> None:
    # dropout > 0 so that the global RNG (saved by accelerate) matters too; stop mid-epoch (step 3 of 4)
    common = ("model.unet.dropout=0.1", f"train.grad_accum={accum}", "train.lr_schedule=cosine",
              "train.warmup_steps=2")
    straight = tiny_config(project, f"train.out_dir={tmp_path}/a", *common)
    split = tiny_config(project, f"train.out_dir={tmp_path}/b", *common)
    r = run_train(straight)
    assert r.step == 8 and not r.stopped_early
    r1 = run_train(split, stop_after=3)
    assert r1.step == 3 and r1.stopped_early
    r2 = run_train(split, resume="latest")
    assert r2.step == 8
    a, b = _state(tmp_path / "a", 8), _state(tmp_path / "b", 8)
    for part in a:
        assert a[part].keys() == b[part].keys(), part
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}: {k} differs after resume"
    # the log of the resumed run has each epoch once, with the same training loss
    la, lb = read_log(tmp_path / "a" / "log.csv"), read_log(tmp_path / "b" / "log.csv")
    assert [row["step"] for row in lb] == ["4", "8"]
    assert [(x["train_loss"], x["val_loss"]) for x in la] == [(x["train_loss"], x["val_loss"]) for x in lb]


def test_log_checkpoints_and_plots(project: Path, tmp_path: Path) -> None:
    cfg = tiny_config(project, f"train.out_dir={tmp_path}/run", "train.keep_checkpoints=1")
    run_train(cfg, plot=True)
    out = tmp_path / "run"
    with open(out / "log.csv") as f:
        assert f.readline().strip().split(",") == list(COLUMNS)
    rows = read_log(out / "log.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for r in rows:
        assert float(r["train_loss"]) > 0 and float(r["val_loss"]) > 0 and float(r["lr"]) >= 0
        assert float(r["windows_per_s"]) > 0 and float(r["elapsed_s"]) > 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000008"]  # keep_checkpoints=1
    assert (out / "plots" / "epoch-0001.png").stat().st_size > 1000
    assert (out / "config.yaml").read_text().startswith("# resolved from")
    assert not list(out.rglob(".tmp*"))


def test_refuses_to_overwrite_and_bad_resume(project: Path, tmp_path: Path) -> None:
    cfg = tiny_config(project, f"train.out_dir={tmp_path}/run", "train.max_steps=4")
    run_train(cfg)
    with pytest.raises(UserError, match="already holds checkpoints"):
        run_train(cfg)
    with pytest.raises(UserError, match="not a checkpoint folder"):
        run_train(cfg, resume=str(tmp_path))
    with pytest.raises(UserError, match="no checkpoint"):
        run_train(tiny_config(project, f"train.out_dir={tmp_path}/empty"), resume="latest")
    other = tiny_config(project, f"train.out_dir={tmp_path}/run", "train.max_steps=8", "model.unet.base_channels=8")
    with pytest.raises(UserError, match="another model section"):
        run_train(other, resume="latest")
