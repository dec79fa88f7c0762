"""DP training (diffusion/dp.py, train.dp) and the privacy CLI's bad input.

Accountant epsilon equals Opacus's own for fixed (noise, sample rate, steps, delta); a DP run ends with
epsilon <= target and writes it into the model file; per-patient sampling draws at most one window per patient
per step; DP resume is exact; bad input is one line, exit code 2, nothing written.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dataloader.cli import run_main
from diffusion.dp import PoissonOrder, check_model, grad_sample_support, spent_epsilon
from tests.tiny_run import make_tiny_project, run_train, tiny_config


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_project(tmp_path_factory.mktemp("dp"), n_patients=12)


def _fails(capsys: pytest.CaptureFixture, main, args: list[str], watch: Path, expect: str) -> str:  # noqa: ANN001
    before = sorted(str(p) for p in watch.rglob("*"))
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(a) for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expect in err, err
    assert sorted(str(p) for p in watch.rglob("*")) == before   # nothing written
    return err


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_accountant_matches_opacus(accountant: str) -> None:
    from opacus.accountants import create_accountant

    noise, q, steps, delta = 1.1, 0.02, 300, 1e-4
    acc = create_accountant(accountant)
    for _ in range(steps):                      # what Opacus's DPOptimizer hook does once per step
        acc.step(noise_multiplier=noise, sample_rate=q)
    ours = spent_epsilon(noise, q, steps, delta, accountant)
    assert ours == pytest.approx(acc.get_epsilon(delta=delta), rel=1e-6)
    assert 0 < spent_epsilon(noise, q, steps // 2, delta, accountant) < ours  # spends as it goes


def test_per_patient_draws_one_window_per_patient() -> None:
    rng = np.random.default_rng(0)
    window_patients = np.repeat(np.arange(40), rng.integers(1, 30, 40))   # 1..29 windows per patient
    order = PoissonOrder(window_patients, 0.25, "per_patient", seed=3)
    sizes = []
    for j in range(400):
        idx = order.draw(j)
        pats = window_patients[idx]
        assert len(set(pats.tolist())) == len(pats)                         # at most one window per patient
        sizes.append(len(idx))
        assert order.draw(j) == idx                                         # a pure function of (seed, step)
    assert np.mean(sizes) == pytest.approx(0.25 * 40, rel=0.05)             # Poisson rate q per patient
    assert min(sizes) < 6 < 14 < max(sizes)                                 # the batch size varies
    per_window = PoissonOrder(window_patients, 0.05, "per_window", seed=3)
    assert np.mean([len(per_window.draw(j)) for j in range(200)]) == pytest.approx(0.05 * len(window_patients), rel=0.1)


def test_unet_layers_have_opacus_rules(project: Path) -> None:
    from diffusion.model import build_diffusion

    cfg = tiny_config(project, "model.unet.attention_levels=[1]")
    model = build_diffusion(cfg.model, 2, 32, [3, 3])
    support = grad_sample_support(model)
    assert {"Conv1d", "Linear", "GroupNorm", "Embedding"} <= set(support)
    assert set(support.values()) == {"opacus"}      # no layer needs the functorch fallback
    check_model(model)                               # accepted


DP_ARGS = ("train.dp={target_epsilon: 4, unit: per_patient, delta: 0.01}", "train.batch_size=3", "train.max_steps=4",
           "train.epoch_steps=2", "train.val_batches=1", "train.plot_every=0")


def test_dp_run_spends_at_most_target(project: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    full = run_train(tiny_config(project, f"train.out_dir={tmp_path}/a", *DP_ARGS))
    with safe_open(str(full.model_file), "pt") as f:
        meta = json.loads(f.metadata()["dp"])
    assert 0.5 * 4 < meta["epsilon"] <= 4.0 and meta["steps"] == 4 and meta["unit"] == "per_patient"
    assert meta["epsilon"] == pytest.approx(spent_epsilon(meta["noise_multiplier"], meta["sample_rate"], 4, 0.01, "prv"))


@pytest.mark.slow  # three short trainings
def test_dp_resume_is_exact(project: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    full = run_train(tiny_config(project, f"train.out_dir={tmp_path}/a", *DP_ARGS))
    cfg_b = tiny_config(project, f"train.out_dir={tmp_path}/b", *DP_ARGS)
    run_train(cfg_b, stop_after=2)
    resumed = run_train(cfg_b, resume="latest")
    a, b = load_file(str(full.model_file)), load_file(str(resumed.model_file))
    assert all(torch.equal(a[k], b[k]) for k in a)   # same Poisson batches, same noise after resume


def test_train_refuses_bad_dp(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from train import main

    out = tmp_path / "run"
    base = ["--config", project, f"train.out_dir={out}", "train.batch_size=2"]
    _fails(capsys, main, [*base, "train.dp={target_epsilon: 0}"], tmp_path, "target_epsilon")
    _fails(capsys, main, [*base, "train.dp={target_epsilon: -1}"], tmp_path, "target_epsilon")
    err = _fails(capsys, main, [*base, "train.dp={target_epsilon: 5, delta: 0.2}"], tmp_path, "train.dp.delta")
    assert "patients" in err

    import diffusion.model as dm

    real_build = dm.build_diffusion

    def with_batchnorm(*a, **k):  # noqa: ANN002, ANN003, ANN202
        m = real_build(*a, **k)
        m.net.input_bn = torch.nn.BatchNorm1d(2)   # what a network Opacus cannot train looks like
        return m

    monkeypatch.setattr(dm, "build_diffusion", with_batchnorm)
    err = _fails(capsys, main, [*base, "train.dp={target_epsilon: 5, delta: 0.01}"], tmp_path, "BatchNorm")
    assert "net.input_bn" in err and "GroupNorm" in err
    assert not out.exists()


def test_privacy_cli_bad_input(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from evaluation.privacy.__main__ import main

    out = tmp_path / "audit"
    base = ["--config", project, f"privacy.out_dir={out}", "--out", out]
    cfg_text = Path(project).read_text() + "privacy:\n  out_dir: unused\n  patients: null\n"
    cfgp = tmp_path / "audit.yaml"
    cfgp.write_text(cfg_text)
    base[1] = cfgp
    _fails(capsys, main, [*base, "--attack", "lira", "--shadows", "1"], tmp_path, "--shadows")
    bad = tmp_path / "members.json"
    bad.write_text(json.dumps({"format": "physiodiff-privacy-members-1", "population": ["p00", "nobody"],
                               "members": ["p00"], "keep": []}))
    _fails(capsys, main, [*base, "--attack", "loss", f"privacy.members={bad}"], tmp_path, "nobody")
    _fails(capsys, main, [*base, "--attack", "loss", "train.dp={target_epsilon: 5, delta: 0.5}"], tmp_path,
           "train.dp.delta")
    _fails(capsys, main, [*base, "--attack", "loss", "train.dp={target_epsilon: 0}"], tmp_path, "target_epsilon")


def test_empty_poisson_batch_is_a_noise_only_step() -> None:
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    from diffusion.dp import empty_batch_step

    torch.manual_seed(0)
    gsm = GradSampleModule(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.GroupNorm(1, 2)))
    opt = DPOptimizer(torch.optim.SGD(gsm.parameters(), lr=1.0), noise_multiplier=1.0, max_grad_norm=1.0,
                      expected_batch_size=4, generator=torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in gsm.parameters()]
    assert empty_batch_step(gsm, torch.zeros((0, 3)))
    opt.step()
    opt.zero_grad()
    moved = [not torch.equal(a, p) for a, p in zip(before, gsm.parameters())]
    assert all(moved)                            # noise was added although no window was sampled
    assert not empty_batch_step(gsm, torch.zeros((2, 3)))


def test_train_patients_restricts_the_windows(project: Path) -> None:
    from dataloader.dataset import WindowDataset
    from dataloader.errors import UserError
    from dataloader.subset import PatientSubset, window_patient_numbers

    cfg = tiny_config(project)
    ds = WindowDataset(cfg.data.prepared, "train")
    two = ds.patients()[:2]
    sub = PatientSubset(ds, two)
    _, _, ids = sub.get_batch(np.arange(len(sub)))
    assert set(ids) == set(two) and 0 < len(sub) < len(ds)
    assert len(sub) == sum(1 for i in range(len(ds)) if ds[i][2] in two)          # every window of theirs
    assert sub.labels.shape == (len(sub), ds.labels.shape[1])
    assert len(window_patient_numbers(sub)) == len(sub)
    with pytest.raises(UserError, match="not in the 'train' split"):
        PatientSubset(ds, [*two, "p99"])
