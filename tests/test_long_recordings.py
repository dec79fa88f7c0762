"""Recordings of any length (diffusion/continuation.py): the pinned part is exact for every sampler, the
result is deterministic, window 0 is the model's own window 0, per-window labels work, and generate.py
--duration / --schedule write recordings of that length (or refuse bad input with one line)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dataloader.cli import run_main
from diffusion.config import ModelConfig
from dataloader.config.typed import from_dict
from dataloader.duration import MAX_DURATION_S, parse_duration, parse_offset
from dataloader.errors import UserError
from dataloader.schedule_csv import read_schedule_csv
from dataloader.synthetic import read_synthetic
from diffusion.continuation import plan_windows, sample_long
from diffusion.inpaint import ReplacementDenoiser
from diffusion.model import build_diffusion
from diffusion.samplers import NoiseSource, list_samplers, sample
from generate import main
from tests.tiny_run import make_tiny_project, run_train, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- durations -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30min", 1800), ("2h", 7200), ("1h30m", 5400),
                                           ("1h 30min 10s", 5410), ("45:00", 2700), ("1:30:00", 5400),
                                           ("90", 90), ("1.5h", 5400), ("2 hours", 7200), ("0.5s", 0.5)])
def test_parse_duration_accepts(text: str, seconds: float) -> None:
    assert parse_duration(text, "--duration") == pytest.approx(seconds)


@pytest.mark.parametrize("text, expect", [("0", "no time"), ("0s", "no time"), ("-5s", "not a length"),
                                          ("-5", ">= 0"), ("abc", "not a length"), ("2 parsecs", "not a length"),
                                          ("1:75", "below 60"), ("nan", "finite"), ("inf", "finite"),
                                          ("1e400", "finite"), ("49h", "at most 48"), ("", "expected"),
                                          ("9" * 80, "expected"), ("5h2", "not a length")])
def test_parse_duration_refuses(text: str, expect: str) -> None:
    with pytest.raises(UserError) as e:
        parse_duration(text, "--duration")
    assert e.value.where == "--duration" and expect in str(e.value), str(e.value)


def test_parse_offset_admits_zero() -> None:
    assert parse_offset("0", "start") == 0 and parse_offset("00:00", "start") == 0
    assert parse_duration(f"{MAX_DURATION_S:g}", "d") == MAX_DURATION_S


# ---- the continuation itself ---------------------------------------------------------------------------------
def _model(first_stage: dict, length: int = 64) -> torch.nn.Module:
    cfg = from_dict(ModelConfig, {"size": "tiny", "first_stage": first_stage, "diffusion": {"num_steps": 100}},
                    "model", "test.yaml")
    m = build_diffusion(cfg, 2, length, [3, 2])
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():   # a randomised network: its outputs depend on the input, like a trained one's
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m.eval()


# PLMS does not end on the denoiser's output but on x - sigma * (a multistep combination of eps): its 4th-order
# extrapolation amplifies the float32 rounding of known + sigma_max * eps (cosine: sigma_max 2e4), as in
# tests/test_smoothness.py. sample_long keeps the previous window's values on the pinned positions anyway.
PLMS_ROUNDING = pytest.mark.xfail(strict=True, reason="plms's final multistep combination is not the estimate")


@pytest.mark.parametrize("name", [pytest.param(n, marks=PLMS_ROUNDING) if n == "plms" else n
                                  for n in list_samplers()])
def test_every_sampler_keeps_the_pinned_part(name: str) -> None:
    """Through the replacement wrapper, every sampler's result equals the known values on the mask (bit for bit
    for those that end on the estimate; k_lms's last step is x + h * d, 1e-9 off) and differs elsewhere."""
    m = _model({"type": "identity"}, 32)
    known = torch.sin(torch.linspace(0, 6, 32)).repeat(1, 2, 1) * 0.7
    mask = torch.zeros((1, 1, 32), dtype=torch.bool)
    mask[..., :8] = True
    g = torch.Generator().manual_seed(1)
    fn = ReplacementDenoiser(lambda x, s: m.denoiser(x, s, torch.tensor([[0, 1]])), known, mask,
                             lambda sh: torch.randn(sh, generator=g), resample=1)
    z = sample(name, fn, m.schedule, 3, NoiseSource(0, [0], (2, 32)))
    assert (z[..., :8] - known[..., :8]).abs().max() <= 1e-6
    assert not torch.allclose(z[..., 8:], known[..., 8:])
    # soft weights: exact where 1, free where 0, in between neither the known values nor unconstrained
    w = torch.tensor([1.0] * 6 + [0.75, 0.5, 0.25] + [0.0] * 23).view(1, 1, 32)
    g.manual_seed(1)
    soft = ReplacementDenoiser(lambda x, s: m.denoiser(x, s, torch.tensor([[0, 1]])), known, w,
                               lambda sh: torch.randn(sh, generator=g), resample=0)
    z = sample(name, soft, m.schedule, 3, NoiseSource(0, [0], (2, 32)))
    assert (z[..., :6] - known[..., :6]).abs().max() <= 1e-6
    assert not torch.allclose(z[..., 6:9], known[..., 6:9])


@pytest.mark.parametrize("first_stage", [{"type": "identity"}, {"type": "sampling", "factor": 4}])
def test_sample_long_shape_determinism_and_window_zero(first_stage: dict) -> None:
    m = _model(first_stage)
    plan = plan_windows(m, 200, 0.25)
    assert plan.n_windows == 4 and plan.total_latent * plan.factor >= 200
    w = plan.weights()   # half the shared part pinned, its last eighth a ramp strictly between 1 and 0
    assert plan.pinned == plan.shared - plan.shared // 2 and plan.ramp == plan.pinned // 8
    assert (w[:plan.pinned - plan.ramp] == 1).all() and (w[plan.pinned:] == 0).all()
    assert ((w[plan.pinned - plan.ramp:plan.pinned] > 0) & (w[plan.pinned - plan.ramp:plan.pinned] < 1)).all()
    x = sample_long(m, 200, [1, 0], "ddim", 4, 1.0, 3)
    assert x.shape == (2, 200) and torch.isfinite(x).all()
    assert torch.equal(x, sample_long(m, 200, [1, 0], "ddim", 4, 1.0, 3))      # same seed, same bytes
    assert not torch.equal(x, sample_long(m, 200, [1, 0], "ddim", 4, 1.0, 4))
    # one window long: exactly the model's window 0 of the same seed
    one = sample_long(m, 64, [1, 0], "ddim", 4, 1.0, 3)
    assert torch.equal(one, m.sample(1, [1, 0], sampler="ddim", steps=4, seed=3)[0])
    # the chain is continuous in the latent: window 1's pinned positions are window 0's (identity: the signal)
    if first_stage["type"] == "identity":
        assert torch.equal(x[:, :48], one[:, :48])


def test_sample_long_per_window_labels_and_errors() -> None:
    m = _model({"type": "identity"})
    plan = plan_windows(m, 150, 0.5)
    rows = torch.tensor([[0, 0]] * plan.n_windows)
    calls: list[tuple[int, int]] = []
    a = sample_long(m, 150, rows, "dpm_solver", 3, 2.0, 0, overlap=0.5, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(k + 1, plan.n_windows) for k in range(plan.n_windows)]
    rows[-1] = torch.tensor([2, 1])
    b = sample_long(m, 150, rows, "dpm_solver", 3, 2.0, 0, overlap=0.5)
    start = plan.new_start(plan.n_windows - 1)
    assert torch.equal(a[:, :start], b[:, :start]) and not torch.equal(a[:, start:], b[:, start:])
    with pytest.raises(UserError, match="expected labels of shape"):
        sample_long(m, 150, torch.zeros((plan.n_windows + 1, 2), dtype=torch.long), "ddim", 3, 1.0, 0, overlap=0.5)
    for kw, expect in (({"overlap": 1.0}, "overlap"), ({"resample": -1}, "resample")):
        with pytest.raises(UserError, match=expect):
            sample_long(m, 150, [0, 0], "ddim", 3, 1.0, 0, **kw)
    with pytest.raises(UserError, match="at least one sample"):
        sample_long(m, 0, [0, 0], "ddim", 3, 1.0, 0)
    with pytest.raises(UserError, match="values one recording may hold"):
        plan_windows(m, 300_000_000, 0.25)          # 2 channels: 600 M values, refused before any work
    # resampling changes the result (it is not a no-op)
    assert not torch.equal(sample_long(m, 150, [0, 0], "ddim", 3, 1.0, 0, resample=0),
                           sample_long(m, 150, [0, 0], "ddim", 3, 1.0, 0, resample=1))


# ---- schedule CSV --------------------------------------------------------------------------------------------
NAMES, CLASSES = ["grp", "score"], [["a", "b"], ["low", "high"]]


def test_schedule_csv(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text("start,score\n0,low\n# comment\n1:00,high\n2min,0\n")
    s = read_schedule_csv(p, NAMES, CLASSES)
    assert s.columns == [1] and s.starts == [0, 60, 120] and s.codes == [[0], [1], [0]]
    rows = s.window_labels(np.array([1, 1]), [0, 30, 60, 119, 120, 500])
    assert rows.tolist() == [[1, 0], [1, 0], [1, 1], [1, 1], [1, 0], [1, 0]]
    for text, expect in (("time,grp\n0,a\n", "'start'"), ("start\n0\n", "label columns"),
                         ("start,age\n0,1\n", "unknown label column"), ("start,grp\n5s,a\n", "start at 0"),
                         ("start,grp\n0,a\n0,b\n", "after the one before"), ("start,grp\n0,z\n", "unknown class"),
                         ("start,grp\n0,a,b\n", "expected 2 cells"), ("start,grp\n", "no rows"),
                         ("start,grp\nsoon,a\n", "not a length")):
        p.write_text(text)
        with pytest.raises(UserError, match=expect):
            read_schedule_csv(p, NAMES, CLASSES)


# ---- generate.py --duration ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg_path = make_tiny_project(tmp_path_factory.mktemp("long"))
    run_train(tiny_config(cfg_path, "train.max_steps=4"))
    return cfg_path


def _run(*args: object) -> int:
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(a) for a in args])
    return int(e.value.code)


def test_generate_duration_and_schedule(trained: Path, tmp_path: Path) -> None:
    import edfio

    (tmp_path / "s.csv").write_text("start,grp\n0,a\n1min,b\n")
    common = ["--config", trained, "--samples", 2, "--duration", "2m30s", "--schedule", tmp_path / "s.csv",
              "--seed", 4]
    assert _run(*common, "--out", tmp_path / "a.h5", "--export", "edf") == 0
    assert _run(*common, "--out", tmp_path / "b.h5") == 0
    x, labels, attrs = read_synthetic(tmp_path / "a.h5")
    assert x.shape == (2, 2, 150) and attrs["fs"] == 1.0 and attrs["duration_s"] == 150.0
    assert attrs["window_len"] == 150 and attrs["model_window_len"] == 32 and labels.shape == (2, 2)
    assert '"starts": [0.0, 60.0]' in attrs["continuation"]
    y, _, _ = read_synthetic(tmp_path / "b.h5")
    assert np.array_equal(x, y) and not np.array_equal(x[0], x[1])      # same seed, same recordings
    edf = edfio.read_edf(tmp_path / "a-edf" / "syn_000001.edf")
    assert len(edf.signals[0].data) == 150
    assert (60.0, "label grp: b") in [(a.onset, a.text) for a in edf.annotations]


@pytest.mark.parametrize("extra, expect", [
    (["--duration", "0"], "error: --duration:"), (["--duration", "soon"], "error: --duration:"),
    (["--duration", "1h", "--overlap", "1.5"], "error: --overlap:"),
    (["--duration", "1h", "--resample", "-1"], "error: --resample:"),
    (["--schedule", "x.csv"], "error: --schedule: only with --duration"),
    (["--overlap", "0.5"], "error: --overlap: only with --duration"),
    (["--duration", "2min", "--schedule", "SCHED"], "at or after the end"),
])
def test_generate_duration_refuses(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                   extra: list, expect: str) -> None:
    sched = tmp_path / "late.csv"
    sched.write_text("start,grp\n0,a\n2min,b\n")
    extra = [str(sched) if e == "SCHED" else e for e in extra]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert _run("--config", trained, "--samples", 1, "--out", tmp_path / "o.h5", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expect in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_seam_benchmark_runs(trained: Path, tmp_path: Path) -> None:
    """bench/seams.py end to end on the tiny model: JSON, markdown and plot, a row per statistic and method."""
    import json

    from bench.seams import main as seams_main

    model = trained.parent / "run" / "model.safetensors"
    assert seams_main(["--checkpoint", str(model), "--duration", "5min", "--recordings", "2", "--steps", "2",
                       "--methods", "pinned,independent", "--out", str(tmp_path / "seams")]) == 0
    res = json.loads((tmp_path / "seams.json").read_text())
    assert set(res["methods"]) == {"pinned", "independent"} and res["duration_s"] == 300
    rows = res["methods"]["pinned"]["rows"]
    assert {r["statistic"] for r in rows} >= {"A mean |step| across the join", "B p99 |step| within 8"}
    assert (tmp_path / "seams.md").read_text().startswith("# Seams") and (tmp_path / "seams.png").stat().st_size
