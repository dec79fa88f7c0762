"""Latent diffusion on a learned first stage and latent super-resolution, end to end through train.py and
generate.py on the tiny project; and their bad inputs (one line, exit code 2, nothing written)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from dataloader.cli import run_main
from dataloader.synthetic import read_synthetic
from first_stage.files import read_first_stage_file, save_first_stage_file
from tests.tiny_run import make_tiny_project, reset_accelerate

VQ = """
model:
  first_stage:
    type: vqvae
    factor: 4
    latent_channels: 2
    hidden_channels: 8
    codebook_size: 16
    restart_threshold: 0.01
    out_dir: {root}/fs
    train: {{max_steps: 4, batch_size: 4, epoch_steps: 2, warmup_steps: 0}}
"""
SR = """
model:
  first_stage: {{type: sampling, factor: 2}}
sr:
  model:
    size: tiny
    diffusion: {{num_steps: 100}}
    first_stage:
      type: vqvae
      factor: 4
      latent_channels: 2
      hidden_channels: 8
      codebook_size: 16
      restart_threshold: 0.01
      out_dir: {root}/fs
      train: {{max_steps: 4, batch_size: 4, epoch_steps: 2, warmup_steps: 0}}
  train: {{out_dir: {root}/sr, max_steps: 4}}
"""


def _project(root: Path, extra: str) -> Path:
    cfg = make_tiny_project(root)
    text = cfg.read_text().replace("model:\n  size: tiny\n", "model:\n  size: tiny\n" + extra.split("model:\n", 1)[1]
                                   .split("\nsr:")[0] + "\n", 1)
    if "\nsr:" in extra:
        text += "sr:" + extra.split("\nsr:", 1)[1]
    out = root / "cfg.yaml"
    out.write_text(text.format(root=root) if "{root}" in text else text)
    return out


def _run(main: object, args: list[str]) -> None:
    """run_main (exit code 0 = success is swallowed; anything else propagates)."""
    reset_accelerate()
    try:
        run_main(main, args)  # type: ignore[arg-type]
    except SystemExit as e:
        if e.code not in (0, None):
            raise


def _train(*args: object) -> None:
    from train import main

    _run(main, [str(a) for a in args] + ["--no-progress"])


def _generate(*args: object) -> None:
    from generate import main

    _run(main, [str(a) for a in args])


def _fails(capsys: pytest.CaptureFixture, entry: str, args: list[object], root: Path, expect: str) -> str:
    before = sorted(str(p) for p in root.rglob("*"))
    with pytest.raises(SystemExit) as e:
        (_train if entry == "train" else _generate)(*args)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expect in err, err
    assert sorted(str(p) for p in root.rglob("*")) == before      # nothing written
    return err


@pytest.fixture(scope="module")
def latent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("latent")
    cfg = _project(root, VQ.replace("{root}", str(root)).replace("{{", "{").replace("}}", "}"))
    _train("--config", cfg)
    return cfg


def test_latent_diffusion_trains_in_order_and_generates(latent: Path, capsys: pytest.CaptureFixture) -> None:
    root = latent.parent
    fs_file, model_file = root / "fs" / "first_stage.safetensors", root / "run" / "model.safetensors"
    assert fs_file.is_file() and model_file.is_file()
    assert (root / "fs" / "plots" / "epoch-0001.png").is_file()
    log = (root / "fs" / "log.csv").read_text().splitlines()
    assert log[0].endswith("rmse_A,rmse_B,prd_A,prd_B") and len(log) == 3
    # the diffusion model file carries the trained, frozen first stage with its latent scale
    meta, weights = read_first_stage_file(fs_file)
    with safe_open(str(model_file), "pt") as f:
        for k, v in weights.items():
            assert torch.equal(f.get_tensor(f"first_stage.{k}"), v), k
        assert float(f.get_tensor("first_stage.scale")) == pytest.approx(meta["scale"])
    assert meta["scale"] != 1.0
    # a second run skips both trained stages
    capsys.readouterr()
    _train("--config", latent)
    out = capsys.readouterr().out
    assert out.count("skipped") == 2, out
    _generate("--config", latent, "--samples", "3", "--out", root / "syn.h5")
    x = read_synthetic(root / "syn.h5")[0]
    assert x.shape == (3, 2, 32) and np.isfinite(x).all()


def test_retrain_one_stage(latent: Path, capsys: pytest.CaptureFixture) -> None:
    root = latent.parent
    before = (root / "run" / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    _train("--config", latent, "--stage", "first_stage", "--retrain")
    out = capsys.readouterr().out
    assert "training the vqvae first stage" in out
    assert (root / "run" / "model.safetensors").stat().st_mtime_ns == before   # diffusion not touched


def test_first_stage_file_of_other_channels_or_window(latent: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    root = latent.parent
    meta, weights = read_first_stage_file(root / "fs" / "first_stage.safetensors")
    for change, expect in (({"channels": [{"name": "A"}, {"name": "X"}]}, "channels ['A', 'X']"),
                           ({"window_len": 64}, "windows of 64 samples")):
        other = tmp_path / "fs"
        other.mkdir(exist_ok=True)
        save_first_stage_file(other / "first_stage.safetensors", weights, meta["first_stage"],
                              {**meta["data"], **change}, meta["scale"], 4, meta["config"])
        out = tmp_path / "run"
        _fails(capsys, "train", ["--config", latent, "--stage", "diffusion", f"model.first_stage.out_dir={other}",
                                 f"train.out_dir={out}"], tmp_path, expect)


def test_latent_length_the_unet_cannot_halve(latent: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # factor 8 gives a 4-sample latent; the small UNet (4 levels) needs multiples of 8: windows of 64
    err = _fails(capsys, "train", ["--config", latent, "model.size=small", "model.first_stage.factor=8",
                                   f"model.first_stage.out_dir={tmp_path / 'fs'}", f"train.out_dir={tmp_path / 'r'}"],
                 tmp_path, "window length 32 does not fit")
    assert "multiple of 64" in err and "e.g. 64" in err


@pytest.fixture(scope="module")
def sr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sr")
    cfg = _project(root, SR.replace("{root}", str(root)).replace("{{", "{").replace("}}", "}"))
    _train("--config", cfg)
    return cfg


def test_super_resolution_end_to_end(sr: Path) -> None:
    root = sr.parent
    for f in ("fs/first_stage.safetensors", "run/model.safetensors", "sr/model.safetensors", "sr/plots/epoch-0001.png"):
        assert (root / f).is_file(), f
    # both stages with guidance, for a DDIM-family, a multistep and a k-diffusion sampler
    for sampler, w in (("ddim", 2.0), ("dpm_solver", 1.0), ("k_euler_a", 3.0)):
        out = root / f"syn-{sampler}.h5"
        _generate("--config", sr, "--samples", "4", "--out", out, "--sampler", sampler, "--steps", "3",
                  "--guidance_scale", w)
        x, _, attrs = read_synthetic(out)
        assert x.shape == (4, 2, 32)          # full-rate windows
        assert np.isfinite(x).all() and x.std() > 0
    # the `config` attribute names the SR model that ran, as its file stored it, even when the generation
    # config says another size for it
    import yaml

    from diffusion.checkpoint import read_model_meta

    gen_cfg = root / "gen-sr.yaml"
    gen_cfg.write_text(sr.read_text().replace("sr:\n  model:\n    size: tiny\n", "sr:\n  model:\n    size: small\n"))
    assert "size: small" in gen_cfg.read_text()
    _generate("--config", gen_cfg, "--samples", "2", "--out", root / "syn-cfg.h5", "--steps", "2")
    used = yaml.safe_load(read_synthetic(root / "syn-cfg.h5")[2]["config"])
    sr_file = yaml.safe_load(read_model_meta(root / "sr" / "model.safetensors").config_text)
    assert used["sr"]["model"] == sr_file["sr"]["model"] and used["sr"]["model"]["size"] == "tiny"
    assert used["sample"]["steps"] == 2


def test_sr_output_follows_the_coarse_signal(sr: Path) -> None:
    """The SR model really sees its condition: different coarse windows give different refinements."""
    from dataloader.config import load_config
    from diffusion.superres import load_sr_pipeline

    cfg = load_config(sr)
    pipe, meta = load_sr_pipeline(str(sr.parent / "run" / "model.safetensors"),
                                  str(sr.parent / "sr" / "model.safetensors"), cfg, "cpu")
    assert meta.data.window_len == 32
    coarse = torch.zeros(2, 2, 32)
    coarse[1] = 0.8
    x = pipe.sr.sample(2, None, coarse=coarse, sampler="ddim", steps=3, seed=0)
    x_same = pipe.sr.sample(2, None, coarse=coarse[[0, 0]], sampler="ddim", steps=3, seed=0)
    assert torch.allclose(x[0], x_same[0], atol=1e-5)      # window 0: same condition, same noise
    # the denoiser (what every sampler calls) sees the condition
    z = torch.randn(2, *pipe.sr.latent_shape)
    sigma = torch.full((2,), 1.0)
    outs = []
    for c in (coarse, coarse[[0, 0]]):
        with pipe.sr.net.conditioned(pipe.sr.condition(c)):
            outs.append(pipe.sr.denoiser(z, sigma, pipe.sr.null_labels(2)))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-6)
    assert not torch.allclose(outs[0][1], outs[1][1], atol=1e-4)
    x2 = pipe.sample(2, None, sampler="ddim", steps=3, seed=0)
    assert x2.shape == (2, 2, 32) and all(v > 0 for v in pipe.timings.values())


def test_sr_rates_that_do_not_divide(sr: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # the coarse model at 0.75 Hz cannot be up-sampled to the 1 Hz full-rate data by an integer factor
    err = _fails(capsys, "train", ["--config", sr, "data.target_fs=0.75", f"sr.train.out_dir={tmp_path / 's'}",
                                   f"train.out_dir={tmp_path / 'r'}", "--stage", "sr"], tmp_path, "does not divide")
    assert "0.75 Hz" in err and "1 Hz" in err
