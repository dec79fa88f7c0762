"""The first-stage training loop: exact resume, the log's reconstruction columns, the stage file's contents."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from first_stage.train_loop import recon_errors, train_first_stage
from first_stage.files import read_first_stage_file
from tests.tiny_run import make_tiny_project, reset_accelerate, tiny_config

STAGE = ["model.first_stage.type=vqvae", "model.first_stage.factor=4", "model.first_stage.latent_channels=2",
         "model.first_stage.hidden_channels=8", "model.first_stage.codebook_size=16",
         "model.first_stage.train.max_steps=6", "model.first_stage.train.batch_size=4",
         "model.first_stage.train.epoch_steps=3", "model.first_stage.train.crop=16",
         "model.first_stage.train.warmup_steps=0"]


def _run(cfg_path: Path, out: Path, stop: int | None = None, resume: str | None = None, kind: str = "vqvae"):  # type: ignore[no-untyped-def]
    reset_accelerate()
    cfg = tiny_config(cfg_path, *STAGE, f"model.first_stage.out_dir={out}", f"model.first_stage.type={kind}")
    return train_first_stage(cfg, stop_after=stop, resume=resume, progress=False)


@pytest.mark.parametrize("kind", ["vqvae", "vae"])
def test_resume_is_exact(tmp_path: Path, kind: str) -> None:
    cfg = make_tiny_project(tmp_path)
    _run(cfg, tmp_path / "a", kind=kind)
    _run(cfg, tmp_path / "b", stop=3, kind=kind)
    _run(cfg, tmp_path / "b", resume="latest", kind=kind)
    (ma, wa), (mb, wb) = (read_first_stage_file(tmp_path / d / "first_stage.safetensors") for d in ("a", "b"))
    assert ma["step"] == mb["step"] == "6"
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k          # weights, codebook, EMA counts and the latent scale
    assert ma["scale"] == mb["scale"] and ma["scale"] > 0
    assert ma["data"]["window_len"] == 32 and [c["name"] for c in ma["data"]["channels"]] == ["A", "B"]
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert log[0] == "step,epoch,train_loss,val_loss,lr,windows_per_s,elapsed_s,rmse_A,rmse_B,prd_A,prd_B"
    assert [r.split(",")[0] for r in log[1:]] == ["3", "6"]
    assert all(float(v) > 0 for v in log[-1].split(",")[7:])


def test_recon_errors() -> None:
    x = np.array([[[3.0, 4.0]], [[3.0, 4.0]]])          # (N=2, C=1, L=2)
    r = x + np.array([[[1.0, -1.0]], [[1.0, -1.0]]])
    rmse, prd = recon_errors(x, r)
    assert rmse[0] == pytest.approx(1.0)
    assert prd[0] == pytest.approx(100 * np.sqrt(4 / 50))
