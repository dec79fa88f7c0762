"""GAN / VAE baselines: trained by the same loop outputs and sampled into the same HDF5 contract as diffusion;
TimeGAN's three phases; the WGAN-GP gradient penalty against a direct computation; exact resume; refusals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from baselines import build_baseline, list_baselines
from baselines.wgan_gp import gradient_penalty
from dataloader.cli import run_main
from baselines.config import BASELINE_TYPES
from training import MODEL_KINDS
from dataloader.errors import UserError
from dataloader.synthetic import read_synthetic
from diffusion.checkpoint import read_model_meta
from training.train_log import read_log
from generate import main as generate_main
from tests.tiny_run import make_tiny_project, reset_accelerate, tiny_config

# tiny networks for 32-sample windows (the CTG configs use the defaults on 2048 samples)
TINY = ("baseline.gan.num_layers=3", "baseline.gan.latent_dim=8", "baseline.wgan_gp.num_layers=3",
        "baseline.wgan_gp.n_critic=2", "baseline.lstm_gan.disc_layers=3", "baseline.lstm_gan.upsample_layers=2",
        "baseline.lstm_gan.hidden=8", "baseline.timegan.patch=4", "baseline.timegan.hidden=8",
        "baseline.timegan.embedding_steps=2", "baseline.timegan.supervised_steps=2",
        "baseline.timevae.seasons=[[2, 4]]", "baseline.timevae.hidden_channels=[8, 16]", "train.lr_schedule=constant")
CONDITIONAL = {"gan": True, "wgan_gp": True, "lstm_gan": False, "timegan": False, "timevae": False}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_project(tmp_path_factory.mktemp("baselines"))


def _cfg(project: Path, kind: str, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return tiny_config(project, f"model.type={kind}", f"train.out_dir={out}", *TINY, *extra)


def _train(cfg, **kw):  # type: ignore[no-untyped-def]
    from baselines.train_loop import train

    reset_accelerate()
    return train(cfg, progress=False, **kw)


def _cli(fn, *args: object) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as e:
        run_main(fn, [str(a) for a in args])
    return int(e.value.code or 0)


def test_registry_matches_schema() -> None:
    assert list_baselines() == sorted(BASELINE_TYPES) == sorted(CONDITIONAL)
    assert set(list_baselines()) <= set(MODEL_KINDS)  # model.type accepts each (its names are MODEL_KINDS')


@pytest.mark.parametrize("kind", sorted(CONDITIONAL))
def test_train_and_generate(project: Path, tmp_path: Path, kind: str) -> None:
    from evaluation.sample_grid import save_compare_png

    out = tmp_path / "run"
    extra = ("train.max_steps=6",) if kind == "timegan" else ()   # 2 + 2 + 2: every phase
    r = _train(_cfg(project, kind, out, *extra), plot_fn=save_compare_png)
    assert r.step == (6 if kind == "timegan" else 8) and not r.stopped_early
    # the same outputs as a diffusion run: log rows per epoch, plots, checkpoint, model file with metadata
    rows = read_log(out / "log.csv")
    assert [row["step"] for row in rows] == (["4", "6"] if kind == "timegan" else ["4", "8"])
    assert all(np.isfinite(float(row["train_loss"])) and np.isfinite(float(row["val_loss"])) for row in rows)
    assert (out / "plots" / "epoch-0001.png").stat().st_size > 1000
    meta = read_model_meta(out / "model.safetensors")
    assert meta.config.model.type == kind and meta.data.channel_names == ["A", "B"] and meta.data.window_len == 32
    assert meta.step == r.step and (out / "checkpoints" / f"step-{r.step:07d}" / "trainer_state.json").is_file()

    # generate.py: shape, physical units inside the channel ranges, labels, batch-size independence
    cfg_args = ["--config", project, f"model.type={kind}", f"train.out_dir={out}", *TINY]
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert _cli(generate_main, *cfg_args, "--samples", 7, "--out", a, "--batch_size", 3, "--seed", 5) == 0
    assert _cli(generate_main, *cfg_args, "--samples", 7, "--out", b, "--batch_size", 7, "--seed", 5) == 0
    x, y, attrs = read_synthetic(a)
    assert x.shape == (7, 2, 32) and x.dtype == np.float32 and y.shape == (7, 2)
    assert x[:, 0].min() >= -2 and x[:, 0].max() <= 2 and x[:, 1].min() >= 0 and x[:, 1].max() <= 10
    assert x[:, 1].max() > 1  # physical units (0..10), not the scaled [-1, 1]
    assert x.std(axis=0).mean() > 0  # different noise -> different windows
    assert attrs["sampler"] == kind and [c["unit"] for c in attrs["channels"]] == ["mV", "nd"]
    if CONDITIONAL[kind]:
        assert (y >= 0).all() and (y[:, 0] < 2).all() and (y[:, 1] < 2).all()
    else:
        assert (y == -1).all()
    np.testing.assert_allclose(read_synthetic(b)[0], x, atol=1e-5)


def test_conditional_gan_follows_labels(project: Path, tmp_path: Path) -> None:
    """Labels reach the generator: the same noise with other labels gives other windows."""
    cfg = _cfg(project, "gan", tmp_path / "run")
    torch.manual_seed(0)
    m = build_baseline(cfg, 2, 32, [2, 2])
    with torch.no_grad():
        for t in m.generator.embed.tables:
            t.weight.normal_()
    x0 = m.sample(3, torch.zeros(3, 2, dtype=torch.long), seed=1)
    x1 = m.sample(3, torch.ones(3, 2, dtype=torch.long), seed=1)
    assert torch.equal(m.sample(3, torch.zeros(3, 2, dtype=torch.long), seed=1), x0)
    assert (x0 - x1).abs().max() > 1e-3
    with pytest.raises(UserError, match="codes in 0..classes-1"):
        m.sample(2, torch.tensor([[0, 2], [0, 0]]), seed=1)


def test_unconditional_model_refuses_a_class_csv(project: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    _train(_cfg(project, "timevae", out, "train.max_steps=2"))
    csv = tmp_path / "classes.csv"
    csv.write_text("grp,count\na,3\n")
    syn = tmp_path / "syn.h5"
    rc = _cli(generate_main, "--config", project, "model.type=timevae", f"train.out_dir={out}", *TINY,
              "--samples", csv, "--out", syn)
    err = capsys.readouterr().err
    assert rc == 2 and "timevae is an unconditional model" in err and err.count("\n") == 1
    assert not syn.exists() and not list(tmp_path.glob(".tmp*"))


def test_timegan_runs_its_three_phases(project: Path, tmp_path: Path) -> None:
    """Phase 1 moves only embedder + recovery, phase 2 only the supervisor (+ generator's optimizer, which gets
    no gradient from the supervised loss), phase 3 all five networks."""
    cfg = _cfg(project, "timegan", tmp_path / "run", "baseline.timegan.d_threshold=0")
    torch.manual_seed(0)
    m = build_baseline(cfg, 2, 32, [2, 2])
    opts = m.make_optimizers(cfg.train)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 2, 32) * 2 - 1
    y = torch.zeros(8, 2, dtype=torch.long)
    assert torch.equal(m.from_seq(m.to_seq(x)), x)
    parts = ("embedder", "recovery", "generator", "supervisor", "discriminator")

    def snapshot() -> dict[str, list[torch.Tensor]]:
        return {p: [w.detach().clone() for w in getattr(m, p).parameters()] for p in parts}

    def moved(before: dict[str, list[torch.Tensor]]) -> set[str]:
        now = snapshot()
        return {p for p in parts if any(not torch.equal(a, b) for a, b in zip(before[p], now[p]))}

    seen = []
    for step in range(6):
        before = snapshot()
        losses = m.train_step(lambda: (x, y), step, opts, g, None)
        seen.append((m.phase(step), moved(before), set(losses)))
    assert [s[0] for s in seen] == ["embedding"] * 2 + ["supervised"] * 2 + ["joint"] * 2
    assert seen[0][1] == {"embedder", "recovery"} and seen[0][2] == {"e_loss_t0"}
    assert seen[2][1] == {"supervisor"} and seen[2][2] == {"g_loss_s"}
    assert seen[4][1] == set(parts) and seen[4][2] == {"g_loss", "e_loss_t0", "d_loss"}


def test_gradient_penalty_matches_direct_autograd() -> None:
    torch.manual_seed(0)
    real, fake = torch.randn(4, 2, 16), torch.randn(4, 2, 16)
    eps = torch.tensor([0.0, 0.3, 0.7, 1.0])
    # a linear critic D(x) = <w, x>: the gradient is w everywhere, so GP = (||w|| - 1)^2 exactly
    w = torch.randn(2, 16)
    gp = gradient_penalty(lambda v: (v * w).sum((1, 2)), real, fake, eps)
    assert torch.allclose(gp, (w.norm() - 1) ** 2, rtol=1e-6)
    # a nonlinear critic, against a per-window gradient computed on its own
    critic = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(56, 1))
    gp = gradient_penalty(lambda v: critic(v).squeeze(1), real, fake, eps)
    expected = []
    for i in range(4):
        xi = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (gi,) = torch.autograd.grad(critic(xi).sum(), xi)
        expected.append((gi.norm() - 1) ** 2)
    assert torch.allclose(gp, torch.stack(expected).mean(), rtol=1e-5)
    # differentiable: the critic's update sees the penalty
    gp.backward()
    assert critic[0].weight.grad is not None and critic[0].weight.grad.abs().sum() > 0


def _state(out: Path, step: int) -> dict[str, dict[str, torch.Tensor]]:
    d = out / "checkpoints" / f"step-{step:07d}"
    parts = {"model": load_file(d / "model.safetensors"), "trainer": load_file(d / "trainer_state.safetensors"),
             "generator": load_file(d / "rng_rank0.safetensors"), "inference": load_file(out / "model.safetensors")}
    for i, f in enumerate(sorted(d.glob("optimizer*.bin"))):
        opt = torch.load(f, weights_only=True)
        parts[f"opt{i}"] = {f"{j}.{k}": v for j, s in opt["state"].items() for k, v in s.items()}
    return parts


@pytest.mark.parametrize("kind", ["wgan_gp"])
def test_resume_is_exact(project: Path, tmp_path: Path, kind: str) -> None:
    straight = _cfg(project, kind, tmp_path / "a")
    split = _cfg(project, kind, tmp_path / "b")
    assert _train(straight).step == 8
    r1 = _train(split, stop_after=3)
    assert r1.step == 3 and r1.stopped_early
    assert _train(split, resume="latest").step == 8
    a, b = _state(tmp_path / "a", 8), _state(tmp_path / "b", 8)
    assert a.keys() == b.keys() and {"opt0", "opt1"} <= set(a)
    for part in a:
        assert a[part].keys() == b[part].keys(), part
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}: {k} differs after resume"
    la, lb = read_log(tmp_path / "a" / "log.csv"), read_log(tmp_path / "b" / "log.csv")
    assert [(r["step"], r["train_loss"], r["val_loss"]) for r in la] == \
        [(r["step"], r["train_loss"], r["val_loss"]) for r in lb]
    # another baseline section is refused
    other = _cfg(project, kind, tmp_path / "b", "train.max_steps=12", "baseline.wgan_gp.gp_weight=5")
    with pytest.raises(UserError, match="another model / baseline section"):
        _train(other, resume="latest")


def test_schema_errors(project: Path) -> None:
    with pytest.raises(UserError, match="unknown key 'bogus'"):
        tiny_config(project, "model.type=gan", "baseline.gan.bogus=1")
    with pytest.raises(UserError, match="number of seasons"):
        tiny_config(project, "model.type=timevae", "baseline.timevae.seasons=[[3]]")
    cfg = tiny_config(project, "model.type=gan", "baseline.gan.num_layers=6")  # 32 is not divisible by 64
    with pytest.raises(UserError, match="divisible by 64"):
        build_baseline(cfg, 2, 32, [2, 2])
