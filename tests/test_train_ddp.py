"""Data-parallel training on CPU: 2 processes (torchrun -> accelerate -> DDP over gloo) finish, save, and resume
exactly; plus the train.py command line (--help, --dry-run, one-line errors)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dataloader.cli import run_main
from tests.tiny_run import make_tiny_project
from train import main

ROOT = Path(__file__).resolve().parents[1]


def _torchrun(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train.py"), "--config", str(cfg), "--no-progress", *args]
    try:  # a new session, so that a hang can be ended with every process it started
        p = subprocess.Popen(cmd, cwd=cfg.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        out, err = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


@pytest.mark.slow
def test_two_process_gloo_training_finishes_and_resumes_exactly(tmp_path: Path) -> None:
    cfg = make_tiny_project(tmp_path)
    # constant LR, fixed epoch length: max_steps only says where to stop, so 4 + resume to 8 equals 8 at once
    common = ["train.lr_schedule=constant", "train.epoch_steps=4", "train.threads=1"]
    r = _torchrun(cfg, f"train.out_dir={tmp_path}/a", "train.max_steps=8", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "on 2 process(es)" in r.stdout and r.stdout.count("step 8: model") == 1
    a = tmp_path / "a"
    assert (a / "model.safetensors").is_file()
    assert {p.name for p in (a / "checkpoints" / "step-0000008").glob("rng_rank*")} == {"rng_rank0.safetensors",
                                                                                      "rng_rank1.safetensors"}
    r = _torchrun(cfg, f"train.out_dir={tmp_path}/b", "train.max_steps=4", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _torchrun(cfg, f"train.out_dir={tmp_path}/b", "train.max_steps=8", "--resume", "latest", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("model.safetensors", "checkpoints/step-0000008/model.safetensors",
                 "checkpoints/step-0000008/trainer_state.safetensors"):
        wa, wb = load_file(a / name), load_file(tmp_path / "b" / name)
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name


def test_train_cli_help_dry_run_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for opt in ("--config", "--resume", "--dry-run", "key.sub=value", "accelerate launch", "torchrun"):
        assert opt in out
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {source: x, prepared: y.h5, fs: 1, window: 8, channels: [{name: a}]}\n"
                   f"model: {{size: tiny}}\ntrain: {{out_dir: {tmp_path}/run, max_steps: 5}}\n")
    with pytest.raises(SystemExit) as e:
        run_main(main, ["--config", str(cfg), "--dry-run", "train.max_steps=7"])
    assert e.value.code == 0
    assert "max_steps: 7" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        run_main(main, ["--config", str(cfg), "train.max_steps=0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and "max_steps" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as e:
        run_main(main, ["--config", str(cfg)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "y.h5" in err and "prepared file not found" in err
    assert not (tmp_path / "run").exists()  # bad input leaves nothing behind
