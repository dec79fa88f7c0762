"""Hostile files and requests (issue 11): output paths checked before any work, configs that are not UTF-8 or
carry YAML tags, damaged model metadata and non-finite weights or samples, requests too large for memory or
disk, label plans streamed per batch, and `range: auto` ruined by absurd values. Each bad input ends in one
line `error: <where>: <what>`, exit code 2, and nothing written."""
from __future__ import annotations

import json
import shutil
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dataloader.class_csv import MAX_CSV_ROWS, MAX_WINDOWS, ArrayPlan, RequestPlan, TrainingPlan, read_class_csv
from dataloader.cli import run_main
from dataloader.config import load_config
from dataloader.config.data_schema import ChannelSpec
from dataloader.errors import UserError
from dataloader.scaling import fit_ranges
from dataloader.synthetic import SyntheticWriter, partial_path, read_synthetic
from diffusion.checkpoint import read_model_meta
from diffusion.generation import SampleArgs, generate_file, plan_labels
from tests.tiny_run import make_tiny_project, run_train, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with a model trained for 2 steps; returns the config path."""
    cfg_path = make_tiny_project(tmp_path_factory.mktemp("limits"))
    run_train(tiny_config(cfg_path, "train.max_steps=2"))
    return cfg_path


def _model(cfg: Path) -> Path:
    return cfg.parent / "run" / "model.safetensors"


def _fails(capsys: pytest.CaptureFixture, main: Any, args: list[Any], watch: Path, expect: str) -> str:
    """Run `main(args)`: exit code 2, one line on stderr holding `expect`, nothing new in `watch`."""
    before = sorted(p.name for p in watch.rglob("*"))
    t0 = time.time()
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(a) for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expect in err, err
    assert sorted(p.name for p in watch.rglob("*")) == before  # nothing written, no temporary file left
    assert time.time() - t0 < 60  # refused before any real work
    return err


def _generate(cfg: Path, out: Path, *extra: Any) -> list[Any]:
    return ["--config", cfg, "--samples", 4, "--out", out, *extra]


# -- (a) output paths, configs, model metadata -----------------------------------------------------
def test_prepared_path_that_is_a_folder_or_under_a_file(trained: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from tools.prepare_data import main

    (tmp_path / "p.h5").mkdir()
    err = _fails(capsys, main, ["--config", trained, f"data.prepared={tmp_path}/p.h5"], tmp_path, "is a folder")
    assert "data.prepared" in err
    assert not (tmp_path / "p.report.csv").exists() and not (tmp_path / "p.yaml").exists()
    (tmp_path / "afile").write_text("x")
    _fails(capsys, main, ["--config", trained, f"data.prepared={tmp_path}/afile/sub/p.h5"], tmp_path,
           "afile' is a file, not a folder")
    (tmp_path / "q.yaml").mkdir()   # a companion (the resolved config) that is a folder
    _fails(capsys, main, ["--config", trained, f"data.prepared={tmp_path}/q.h5"], tmp_path, "q.yaml' is a folder")


def test_prepared_config_would_overwrite_the_config_itself(trained: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    from tools.prepare_data import main

    cfg = tmp_path / "exp.yaml"
    shutil.copy(trained, cfg)
    _fails(capsys, main, ["--config", cfg, f"data.prepared={tmp_path}/exp.h5"], tmp_path, "overwrite the config")
    assert cfg.read_text() == trained.read_text()


def test_config_not_utf8_and_yaml_tags(trained: Path, tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(trained.read_bytes().replace(b"model:", "# caf\u00e9\nmodel:".encode("latin-1")))
    with pytest.raises(UserError) as e:
        load_config(bad)
    line = trained.read_text().splitlines().index("model:") + 1
    assert e.value.where == f"{bad}:{line}" and "not UTF-8" in e.value.what
    tagged = tmp_path / "tag.yaml"
    tagged.write_text(trained.read_text().replace("size: tiny", "size: !!python/object:os.system ls"))
    with pytest.raises(UserError) as e:
        load_config(tagged)
    line = tagged.read_text().splitlines().index("  size: !!python/object:os.system ls") + 1
    assert e.value.where == f"{tagged}:{line}" and "explicit YAML tag" in e.value.what
    for value in ("!!binary xx", "!!str tiny", "[!!int 3]"):
        with pytest.raises(UserError) as e:
            load_config(trained, [f"model.size={value}"])
        assert "\n" not in str(e.value) and e.value.where == "command line (model.size):1", str(e.value)
    assert load_config(trained, ["model.size=small"]).model.size == "small"  # plain values still work


def _rewrite_model(src: Path, dst: Path, data_change: dict[str, Any] | None = None,
                   nan_tensor: str | None = None) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(src))
    if data_change:
        meta["data"] = json.dumps({**json.loads(meta["data"]), **data_change})
    if nan_tensor:
        tensors[nan_tensor] = torch.full_like(tensors[nan_tensor], float("nan"))
    save_file(tensors, str(dst), metadata=meta)
    return dst


@pytest.mark.parametrize("change, field", [
    ({"label_counts": "x"}, "data.label_counts"),
    ({"label_counts": [[0, 0]]}, "data.label_counts"),
    ({"label_counts": [[0, 5, 3]]}, "data.label_counts.0"),   # code 5 of a 2-class label
    ({"window_len": "32"}, "data.window_len"),
    ({"fs": -1}, "data.fs"),
    ({"channels": [{"name": "A", "unit": "mV", "range": [2, -2]}]}, "data.channels"),
    ({"class_names": [["a", "b"]]}, "data.class_names"),
    ({"colour": 1}, "data must be a JSON object"),
])
def test_damaged_model_metadata_names_the_field(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                change: dict[str, Any], field: str) -> None:
    from generate import main

    out = tmp_path / "out"
    out.mkdir()
    bad = _rewrite_model(_model(trained), tmp_path / "bad.safetensors", data_change=change)
    err = _fails(capsys, main, _generate(trained, out / "s.h5", "--checkpoint", bad), out, field)
    assert str(bad) in err


def test_non_finite_weights_are_refused_at_load(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from safetensors.torch import load_file

    from generate import main

    name = sorted(k for k, v in load_file(str(_model(trained))).items() if v.is_floating_point())[3]
    bad = _rewrite_model(_model(trained), tmp_path / "nan.safetensors", nan_tensor=name)
    _fails(capsys, main, _generate(trained, tmp_path / "s.h5", "--checkpoint", bad), tmp_path,
           f"tensor {name!r} holds non-finite values")


def test_out_folder_and_plot_file_refused_before_work(trained: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from generate import main

    (tmp_path / "s.h5").mkdir()
    _fails(capsys, main, _generate(trained, tmp_path / "s.h5"), tmp_path, "--out: ")
    assert not partial_path(tmp_path / "s.h5").exists()
    (tmp_path / "plots").write_text("not a folder")
    _fails(capsys, main, _generate(trained, tmp_path / "t.h5", "--plot", tmp_path / "plots"), tmp_path,
           "--plot: ")


# -- (b) requests that exhaust memory or disk --------------------------------------------------------
def test_samples_limit(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from generate import main

    for n in (MAX_WINDOWS + 1, 10**9, "9" * 5000):
        _fails(capsys, main, ["--config", trained, "--samples", n, "--out", tmp_path / "s.h5"], tmp_path,
               f"--samples: at most {MAX_WINDOWS:,} windows per file")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert f"{MAX_WINDOWS:,}" in capsys.readouterr().out


def test_class_csv_limits(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from generate import main

    big = tmp_path / "big.csv"
    big.write_text("grp,count\na,3\nb,1000000000\n")
    _fails(capsys, main, ["--config", trained, "--samples", big, "--out", tmp_path / "s.h5"], tmp_path,
           f"big.csv:3: the counts add up to 1,000,000,003 windows by this row; one file holds at most "
           f"{MAX_WINDOWS:,}")
    many = tmp_path / "many.csv"
    with open(many, "w") as f:  # far more rows than allowed: refused at the first row past the limit
        f.write("grp,count\n" + "a,0\n" * (MAX_CSV_ROWS + 5000) + "b,1\n")
    t0 = time.time()
    with pytest.raises(UserError) as e:
        read_class_csv(many, ["grp", "score"], [["a", "b"], ["low", "high"]])
    assert e.value.where == f"{many}:{MAX_CSV_ROWS + 2}" and f"more than {MAX_CSV_ROWS:,}" in e.value.what
    assert time.time() - t0 < 20


def test_dry_run_of_the_largest_request_is_fast_and_small(trained: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    from generate import main

    tracemalloc.start()
    t0 = time.time()
    with pytest.raises(SystemExit) as e:
        run_main(main, ["--config", str(trained), "--samples", str(MAX_WINDOWS), "--out", str(tmp_path / "s.h5"),
                        "--dry-run"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = capsys.readouterr().out
    assert e.value.code == 0 and f"would write {MAX_WINDOWS:,} windows" in out
    assert time.time() - t0 < 30 and peak < 50e6  # the plan is not expanded (1e6 x 2 int64 alone is 16 MB)
    assert list(tmp_path.iterdir()) == []


def test_output_larger_than_free_space(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from generate import main

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    # 1000 windows x 2 channels x 32 samples x 4 bytes x 2 (--scaled) + 1000 x 2 labels x 8 bytes
    need = 1000 * (2 * 32 * 4 * 2 + 16)
    _fails(capsys, main, ["--config", trained, "--samples", 1000, "--out", tmp_path / "s.h5", "--scaled"], tmp_path,
           f"({need:,} bytes), but {tmp_path} has 0.00 GiB (10,000 bytes) free")


# -- label plans: streamed, deterministic per row --------------------------------------------------
COUNTS = np.array([[0, 0, 5], [0, 1, 1], [1, 1, 4], [1, 0, 2]])   # (grp, score) rows + training window counts


def _in_pieces(plan: Any, cuts: list[int]) -> np.ndarray:
    edges = [0, *cuts, plan.n]
    return np.concatenate([plan.rows(a, b) for a, b in zip(edges[:-1], edges[1:])])


def test_training_plan_rows_do_not_depend_on_batches() -> None:
    plan = TrainingPlan(5000, COUNTS, 2, seed=7)
    whole = plan.rows(0, 5000)
    assert np.array_equal(whole, _in_pieces(plan, [1, 3, 1023, 1025, 2048, 4999]))
    assert np.array_equal(whole[1500:1600], plan.rows(1500, 1600))
    assert not np.array_equal(whole, TrainingPlan(5000, COUNTS, 2, seed=8).rows(0, 5000))
    rows, n = np.unique(whole, axis=0, return_counts=True)   # only training rows, in their proportions
    assert rows.tolist() == COUNTS[np.lexsort(COUNTS[:, 1::-1].T), :2].tolist()
    assert np.allclose(n / 5000, COUNTS[np.lexsort(COUNTS[:, 1::-1].T), 2] / 12, atol=0.03)
    with pytest.raises(IndexError):
        plan.rows(4990, 5001)


def test_request_plan_expands_in_csv_order_and_draws_missing_columns() -> None:
    # grp given: score drawn from the training windows of that grp; row 2 asks for nothing, row 3 for 300
    plan = RequestPlan([0], [([1], 2000), ([0], 0), ([0], 300)], COUNTS, 2, seed=1)
    whole = plan.rows(0, plan.n)
    assert plan.n == 2300 and whole[:2000, 0].tolist() == [1] * 2000 and whole[2000:, 0].tolist() == [0] * 300
    assert abs(whole[:2000, 1].mean() - 4 / 6) < 0.04          # grp b: score 1 in 4 of its 6 training windows
    assert abs(whole[2000:, 1].mean() - 1 / 6) < 0.07          # grp a: 1 of 6
    assert np.array_equal(whole, _in_pieces(plan, [7, 1999, 2001, 2299]))
    full = RequestPlan([1, 0], [([1, 0], 3)], COUNTS, 2, seed=0)     # every column given: nothing drawn
    assert full.rows(0, 3).tolist() == [[0, 1]] * 3
    # a combination never seen in training: each missing column from its marginal
    unseen = RequestPlan([0], [([2], 1000)], np.array([[0, 0, 1], [1, 1, 3]]), 2, seed=0)
    assert abs(unseen.rows(0, 1000)[:, 1].mean() - 0.75) < 0.05


def test_writer_appends_labels_per_batch_and_checks_them_on_continuing(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    import tables

    attrs = dict(fs=1.0, channels=[{"name": "A", "unit": "mV", "range": [-2, 2]}],
                 label_spec=[{"name": "grp", "classes": ["a", "b"]}, {"name": "score", "classes": ["l", "h"]}],
                 config="", sampler="t", steps=1, guidance_scale=1.0, seed=0, model_sha256="0", package_version="t")
    plan = TrainingPlan(10, COUNTS, 2, seed=3)
    out = tmp_path / "s.h5"
    x = np.zeros((10, 1, 8), np.float32)
    with SyntheticWriter(out, attrs=attrs, run_key="k", labels=plan, n_channels=1, length=8) as w:
        w.append(x[:4])
        assert len(w.h5.root.labels) == 4      # the rows of the batch only, not the plan
        w.h5.root.labels.append(plan.rows(4, 6))  # as if killed after /labels of the next batch
    with SyntheticWriter(out, attrs=attrs, run_key="k", labels=plan, n_channels=1, length=8) as w:
        assert w.done == 4 and len(w.h5.root.labels) == 4   # the cut batch's label rows are dropped
        w.append(x[4:7])
        w.h5.root.labels[5] = 1 - w.h5.root.labels[5]       # a row the plan would not give
    assert "4 of 10 samples already written" in capsys.readouterr().err
    with SyntheticWriter(out, attrs=attrs, run_key="k", labels=plan, n_channels=1, length=8) as w:
        assert w.done == 0                                  # discarded: its labels are not this plan's
        w.append(x[:3])
        w.append(x[3:])
        w.finish()
    assert "discarding unfinished" in capsys.readouterr().err
    _, labels, _ = read_synthetic(out)
    assert np.array_equal(labels, plan.rows(0, 10))
    with tables.open_file(str(out)) as h5:
        assert h5.root.labels.dtype == np.int64 and h5.root.labels.shape == (10, 2)


def test_writer_without_label_columns(tmp_path: Path) -> None:
    attrs = dict(fs=1.0, channels=[{"name": "A", "unit": "mV", "range": [-2, 2]}], label_spec=[], config="",
                 sampler="t", steps=1, guidance_scale=1.0, seed=0, model_sha256="0", package_version="t")
    with SyntheticWriter(tmp_path / "s.h5", attrs=attrs, run_key="k", labels=ArrayPlan(np.zeros((3, 0))),
                         n_channels=1, length=4) as w:
        w.append(np.ones((3, 1, 4), np.float32))
        w.finish()
    assert read_synthetic(tmp_path / "s.h5")[1].shape == (3, 0)


# -- (c) silently wrong -----------------------------------------------------------------------------
class _NanAfter(torch.nn.Module):
    """A stand-in model whose windows from index `bad` on are NaN."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.bad = bad

    def sample(self, n: int, y: torch.Tensor, start_index: int = 0, **kw: Any) -> torch.Tensor:
        x = torch.zeros(n, 2, 32)
        idx = torch.arange(start_index, start_index + n)
        x[idx >= self.bad] = float("nan")
        return x


def test_non_finite_batch_discards_the_partial(trained: Path, tmp_path: Path) -> None:
    meta = read_model_meta(_model(trained))
    args = SampleArgs(sampler="ddim", steps=2, guidance_scale=1.0, seed=0, batch_size=4)
    out = tmp_path / "s.h5"
    with pytest.raises(UserError) as e:
        generate_file(_NanAfter(6), meta, plan_labels("10", meta, 0), args, out, config_text="", progress=False)
    assert "window 6 came out non-finite" in e.value.what and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []                  # neither the output nor the partial
    path = generate_file(_NanAfter(99), meta, plan_labels("10", meta, 0), args, out, config_text="", progress=False)
    assert np.isfinite(read_synthetic(path)[0]).all()


def test_auto_range_refuses_absurd_extremes() -> None:
    auto = [ChannelSpec(name="FHR", range=(50.0, 210.0)), ChannelSpec(name="UC", range="auto")]
    rng = np.random.default_rng(0)
    uc = rng.uniform(0, 100, (2, 5000))
    ok = fit_ranges(auto, [(uc, np.zeros_like(uc, bool))])
    assert ok[0] == (50.0, 210.0) and 0 <= ok[1][0] < 1 and 99 < ok[1][1] <= 100
    spiked = uc.copy()
    spiked[1, 1234] = 1e30
    with pytest.raises(UserError) as e:
        fit_ranges(auto, [(spiked, np.zeros_like(spiked, bool))])
    assert e.value.where == "data.channels.1.range" and "'UC'" in e.value.what and "1e+30" in e.value.what
    assert "range:" in e.value.what and "valid:" in e.value.what
    spiked[1, 1234] = -1e9
    with pytest.raises(UserError, match="-1e\\+09"):
        fit_ranges(auto, [(spiked, np.zeros_like(spiked, bool))])
    huge = np.array([[0.0, 1.0], [-1.7e308, 1.7e308]])          # a width that overflows to inf
    with pytest.raises(UserError, match="not a finite width"):
        fit_ranges(auto, [(huge, np.zeros_like(huge, bool))])
    masked = np.zeros_like(spiked, bool)
    masked[1, 1234] = True                                      # the same value marked missing: fine
    assert fit_ranges(auto, [(spiked, masked)])[1][1] <= 100


def test_auto_range_accepts_real_ctg() -> None:
    from dataloader.readers import read_csv

    files = sorted(Path("../shared/data/ctu-uhb-ctg/signals").glob("*.csv.gz"))[:40]
    if not files:
        pytest.skip("CTU-UHB data not available")
    chans = [ChannelSpec(name="FHR", range="auto"), ChannelSpec(name="UC", range="auto")]
    vals = []
    for f in files:   # raw values, artefacts and the monitor's 0 included: harsher than prepared data
        x = read_csv(str(f), chans)
        vals.append((x, np.isnan(x)))
    (flo, fhi), (ulo, uhi) = fit_ranges(chans, vals)
    assert 0 <= flo < 60 and 200 < fhi <= 255 and ulo >= 0 and 100 <= uhi <= 128
