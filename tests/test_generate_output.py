"""generate.py output: appendable after an interruption (identical to an uninterrupted run), labels like the
training windows for `--samples N`, class CSVs, the inference-file round trip, plots and export."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dataloader.class_csv import TrainingPlan
from dataloader.cli import run_main
from dataloader.dataset import WindowDataset
from dataloader.synthetic import partial_path, read_synthetic
from diffusion.checkpoint import load_model_file, read_model_meta
from diffusion.generation import SampleArgs, generate_file, plan_labels
from generate import main
from tests.tiny_run import make_tiny_project, run_train, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg_path = make_tiny_project(tmp_path_factory.mktemp("genout"))
    run_train(tiny_config(cfg_path, "train.max_steps=4"))
    return cfg_path


def _generate(*args: object) -> None:
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(a) for a in args])
    assert e.value.code == 0


class _Stop(Exception):
    pass


def test_interrupted_generation_continues_identically(trained: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    model_file = trained.parent / "run" / "model.safetensors"
    whole = tmp_path / "whole.h5"
    _generate("--config", trained, "--samples", 10, "--out", whole, "--batch_size", 4, "--seed", 3, "--scaled")
    # the same command, interrupted after its first batch (3 windows: another batch size on purpose)
    cut = tmp_path / "cut.h5"
    cfg = tiny_config(trained)
    model, meta = load_model_file(model_file, cfg)
    labels = plan_labels("10", meta, 3)
    args = SampleArgs(sampler="ddim", steps=4, guidance_scale=1.0, seed=3, batch_size=3, sigmas="karras")

    def stop(done: int, total: int) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        generate_file(model, meta, labels, args, cut, config_text=cfg.yaml(), scaled=True, on_batch=stop,
                      progress=False)
    assert not cut.exists() and partial_path(cut).exists()
    capsys.readouterr()
    _generate("--config", trained, "--samples", 10, "--out", cut, "--batch_size", 4, "--seed", 3, "--scaled")
    assert "3 of 10 samples already written" in capsys.readouterr().err
    assert not partial_path(cut).exists()
    a, la, attrs_a = read_synthetic(whole)
    b, lb, attrs_b = read_synthetic(cut)
    # batch 3 then 4 against batch 4 throughout: equal up to the batch-size-dependent CPU kernels' rounding
    # (docs/usage.md: at most 4e-5 of the scaled range [-1, 1])
    assert np.array_equal(la, lb)
    sa, sb = read_synthetic(whole, scaled=True)[0], read_synthetic(cut, scaled=True)[0]
    assert np.abs(sa - sb).max() <= 8e-5
    np.testing.assert_allclose(a, b, atol=8e-5 * 10 / 2)  # physical: channel B spans 10 units
    for k in ("sampler", "steps", "guidance_scale", "seed", "model_sha256", "fs", "channels", "label_spec"):
        assert attrs_a[k] == attrs_b[k]
    assert attrs_a["model_sha256"] == read_model_meta(model_file).sha256
    assert a.shape == (10, 2, 32) and np.isfinite(a).all()
    # physical units: channel B lives in [0, 10]
    assert a[:, 1].min() >= 0 and a[:, 1].max() <= 10


def test_other_arguments_discard_a_partial_file(trained: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "s.h5"
    cfg = tiny_config(trained)
    model, meta = load_model_file(trained.parent / "run" / "model.safetensors", cfg)
    args = SampleArgs(sampler="ddim", steps=4, guidance_scale=1.0, seed=0, batch_size=2)

    def stop(done: int, total: int) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        generate_file(model, meta, plan_labels("4", meta, 0), args, out, config_text="", on_batch=stop, progress=False)
    _generate("--config", trained, "--samples", 4, "--out", out, "--seed", 1)
    assert "discarding unfinished" in capsys.readouterr().err
    assert read_synthetic(out)[0].shape[0] == 4


def test_samples_n_follows_training_labels(trained: Path) -> None:
    meta = read_model_meta(trained.parent / "run" / "model.safetensors")
    train_labels = WindowDataset(tiny_config(trained).data.prepared, "train").labels
    drawn = plan_labels("4000", meta, 0).rows(0, 4000)
    for j in range(train_labels.shape[1]):
        for c in range(len(meta.data.class_names[j])):
            assert abs((drawn[:, j] == c).mean() - (train_labels[:, j] == c).mean()) < 0.03
    # the joint distribution too: only label rows that occur in training, in their proportions
    rows, counts = np.unique(train_labels, axis=0, return_counts=True)
    for r, n in zip(rows, counts):
        assert abs((drawn == r).all(axis=1).mean() - n / len(train_labels)) < 0.03
    assert np.array_equal(drawn, plan_labels("4000", meta, 0).rows(0, 4000))  # seeded
    assert not np.array_equal(drawn, plan_labels("4000", meta, 1).rows(0, 4000))
    assert np.array_equal(TrainingPlan(5, np.array([[1, 0, 7]]), 2, 0).rows(0, 5), np.tile([1, 0], (5, 1)))


def test_class_csv_and_plot_and_export(trained: Path, tmp_path: Path) -> None:
    (tmp_path / "classes.csv").write_text("score,grp,count\nhigh,a,3\n0,1,2\n")
    out = tmp_path / "c.h5"
    _generate("--config", trained, "--samples", tmp_path / "classes.csv", "--out", out, "--plot", tmp_path / "plots",
              "--export", "csv")
    _, labels, attrs = read_synthetic(out)
    assert labels.tolist() == [[0, 1]] * 3 + [[1, 0]] * 2  # (grp, score) codes in the model's column order
    assert [s["name"] for s in attrs["label_spec"]] == ["grp", "score"]
    assert (tmp_path / "plots" / "generated.png").stat().st_size > 1000
    assert len(list((tmp_path / "c-csv").glob("syn_*.csv"))) == 5


def test_inference_file_round_trip(trained: Path) -> None:
    cfg = tiny_config(trained)
    path = trained.parent / "run" / "model.safetensors"
    model, meta = load_model_file(path, cfg)
    ds = WindowDataset(cfg.data.prepared, "train")
    assert meta.step == 4 and meta.data.window_len == ds.window_len and meta.data.fs == ds.fs
    assert meta.data.channels == ds.channels and meta.data.class_names == ds.class_names
    assert meta.data.label_names == ds.label_names
    assert meta.config.model == cfg.model
    # the file holds the EMA weights of the last checkpoint
    from safetensors.torch import load_file

    ema = load_file(trained.parent / "run" / "checkpoints" / "step-0000004" / "trainer_state.safetensors")
    sd = model.state_dict()
    for k, v in ema.items():
        assert torch.equal(sd[k[len("ema.shadow."):]], v), k
    x = model.sample(2, torch.zeros(2, 2, dtype=torch.long), sampler="ddim", steps=2, seed=0)
    assert x.shape == (2, 2, 32)


def test_config_attribute_describes_the_model_used(trained: Path, tmp_path: Path) -> None:
    """A generation config without the model's size override (so it says `size: base`) still writes the
    model file's model section (tiny) and the sampling settings actually used."""
    import yaml

    text = trained.read_text()
    assert "  size: tiny\n" in text
    gen_cfg = tmp_path / "gen.yaml"
    gen_cfg.write_text(text.replace("  size: tiny\n", ""))
    assert tiny_config(gen_cfg).model.size == "base"
    out = tmp_path / "s.h5"
    _generate("--config", gen_cfg, "--samples", 2, "--out", out, "--steps", 3, "--seed", 5)
    attrs = read_synthetic(out)[2]
    used = yaml.safe_load(attrs["config"])
    assert used["model"]["size"] == "tiny"
    assert used["model"] == yaml.safe_load(read_model_meta(trained.parent / "run" / "model.safetensors")
                                           .config_text)["model"]
    assert used["sample"]["steps"] == 3 and used["sample"]["seed"] == 5 and used["sample"]["sampler"] == "ddim"
    assert used["data"]["window"] == 32


def test_sample_datasets_carry_channels_units_fs(trained: Path, tmp_path: Path) -> None:
    """/samples and /samples_scaled carry channels, units and fs as plain attributes (no pickles)."""
    import json

    h5py = pytest.importorskip("h5py")
    out = tmp_path / "s.h5"
    _generate("--config", trained, "--samples", 2, "--out", out, "--scaled")

    def text(v: object) -> str:
        assert isinstance(v, str), type(v)  # h5py's str: a variable-length UTF-8 string, not bytes
        return v

    with h5py.File(out, "r") as f:
        ds = f["samples"]
        assert json.loads(text(ds.attrs["channels"])) == ["A", "B"]
        assert json.loads(text(ds.attrs["units"])) == ["mV", "nd"]
        assert float(ds.attrs["fs"]) == 1.0
        sc = f["samples_scaled"]
        assert json.loads(text(sc.attrs["channels"])) == ["A", "B"]
        assert json.loads(text(sc.attrs["range"])) == [[-2, 2], [0, 10]]
        assert json.loads(text(sc.attrs["units"])) == ["1", "1"]
        assert float(sc.attrs["fs"]) == 1.0
        for k in ("config", "model_config", "channels", "label_spec", "sampler", "model_sha256", "format"):
            assert isinstance(f.attrs[k], str), (k, type(f.attrs[k]))
        assert "size: tiny" in f.attrs["config"]
        assert not [k for k, v in f.attrs.items() if isinstance(v, bytes) and not k.isupper()]
    assert read_synthetic(out)[2]["channels"][0]["unit"] == "mV"  # PyTables reads the rewritten attributes


def test_inspect_reads_a_generated_file(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`python -m tools.inspect` summarises and plots generate.py output as it does a prepared file."""
    from tools.inspect import main as inspect_main

    (tmp_path / "classes.csv").write_text("grp,score,count\na,high,3\nb,low,2\n")
    out = tmp_path / "c.h5"
    _generate("--config", trained, "--samples", tmp_path / "classes.csv", "--out", out)
    capsys.readouterr()
    png = tmp_path / "syn.png"
    with pytest.raises(SystemExit) as e:
        run_main(inspect_main, [str(out), "--plot", str(png), "--n", "2"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "windows      5" in text and "fs           1 Hz" in text and "window       32 samples" in text
    assert "A          [mV]" in text and "grp        a (3), b (2)" in text and "score      low (2), high (3)" in text
    assert "sampler      ddim" in text and "plotted windows [" in text
    assert png.stat().st_size > 1000


def test_progress_lines_when_stderr_is_not_a_terminal(trained: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """capsys's stderr is no terminal: generate.py prints a line per 10% (here per batch) instead of a bar."""
    import re

    _generate("--config", trained, "--samples", 8, "--out", tmp_path / "p.h5", "--batch_size", 2)
    err = capsys.readouterr().err
    lines = re.findall(r"^generate: (\d+)/8 windows \((\d+)%\) \d+ s$", err, re.M)
    assert [int(d) for d, _ in lines] == [2, 4, 6, 8] and lines[-1][1] == "100", err
    assert "\r" not in err  # no bar redrawn into a log file


def test_line_progress_every_percent_and_seconds() -> None:
    import io

    from evaluation.progress import LineProgress

    s = io.StringIO()
    p = LineProgress("x", 100, "win", every_pct=25, every_s=1e9, stream=s)
    for _ in range(100):
        p.update(1)
    assert [ln.split(" (")[0] for ln in s.getvalue().splitlines()] == [f"x: {k}/100 wins" for k in (25, 50, 75, 100)]
    s2 = io.StringIO()
    q = LineProgress("y", 1000, every_pct=100, every_s=0.0, stream=s2)  # every call once every_s has passed
    q(1)
    q(2, 1000)
    assert s2.getvalue().splitlines()[1].startswith("y: 2/1000 steps (0%)")


def test_plot_n_and_every_requested_class(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--plot_n 2` with a class CSV of 3 classes still draws each class; `--plot_n` is checked (1-100)."""
    import evaluation.sample_grid as grid

    drawn: list[list[str]] = []
    real_save = grid.save_compare_png

    def record(path, synthetic, fs, channels, **kw):  # type: ignore[no-untyped-def]
        drawn.append(list(kw["synthetic_titles"]))
        return real_save(path, synthetic, fs, channels, **kw)

    monkeypatch.setattr(grid, "save_compare_png", record)
    (tmp_path / "classes.csv").write_text("grp,score,count\na,high,4\nb,low,4\nb,high,4\n")
    _generate("--config", trained, "--samples", tmp_path / "classes.csv", "--out", tmp_path / "c.h5",
              "--plot", tmp_path / "plots", "--plot_n", 2)
    assert sorted(set(drawn[0])) == ["grp=a, score=high", "grp=b, score=high", "grp=b, score=low"], drawn
    _generate("--config", trained, "--samples", tmp_path / "classes.csv", "--out", tmp_path / "d.h5",
              "--plot", tmp_path / "plots", "--plot_n", 7)
    assert len(drawn[1]) == 7 and len(set(drawn[1])) == 3
    assert list(grid.spread_over_requests([0, 4, 8], 12, 5)) == [0, 1, 4, 5, 8]
    assert list(grid.spread_over_requests(None, 12, 5)) == [0, 1, 2, 3, 4]
    assert len(grid.spread_over_requests(list(range(300)), 300, 6)) == 100  # capped
    for bad in ("0", "101"):
        with pytest.raises(SystemExit) as e:
            run_main(main, ["--config", str(trained), "--samples", "2", "--out", str(tmp_path / "e.h5"),
                            "--plot_n", bad])
        assert e.value.code == 2


def test_plot_pairs_each_requested_class_with_a_real_window_of_it(trained: Path, tmp_path: Path) -> None:
    """A class CSV that names one of two label columns: every synthetic panel sits beside a real test window of
    its requested class (the other column may differ), and the PNG's Description says so, row by row."""
    from PIL import Image

    (tmp_path / "classes.csv").write_text("grp,count\na,3\nb,3\n")
    _generate("--config", trained, "--samples", tmp_path / "classes.csv", "--out", tmp_path / "g.h5",
              "--plot", tmp_path / "plots", "--plot_n", 2)
    with Image.open(tmp_path / "plots" / "generated.png") as im:
        rows = im.text["Description"].splitlines()
    assert len(rows) == 2, rows  # --plot_n 2, two requested classes: one panel pair each
    for row, grp in zip(rows, ("a", "b")):
        real, syn = row.split(" | ")
        assert syn.startswith(f"synthetic: grp={grp}, ") and f"grp={grp}, " in real, row
        assert "other class" not in real, row
