"""Generic CSV series (ETTh2-like, Sines): a timestamp column skipped by data.ignore_columns, one series with
every window in train, the Sines writer, and eval.py against the train split when nothing is held out."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataloader.config import load_config
from dataloader.prepared import PreparedFile
from tests.test_data_util import assert_user_error, run_cmd, write_config
from tools.make_sines import sine_windows, write_sines_csv
from tools.prepare_data import main as prepare_main

N_ROWS = 200


def _series(folder: Path, name: str = "series.csv", header: str = "date,X,Y") -> tuple[Path, np.ndarray]:
    """One CSV with a timestamp column and two channels; returns (path, (2, N) values)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(N_ROWS)
    x = np.stack([10 + np.sin(t / 7), -3 + 0.01 * t])
    stamps = [f"2016-07-01 {h % 24:02d}:00:00" for h in t]
    lines = [header] + [f"{s},{a:.6f},{b:.6f}" for s, a, b in zip(stamps, x[0], x[1])]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path, x


def _config(src: Path, out: Path, **data: object) -> dict:
    d = {"source": str(src), "prepared": str(out), "format": "csv", "fs": 1 / 3600,
         "channels": [{"name": "X", "range": "auto"}, {"name": "Y", "range": "auto"}],
         "ignore_columns": ["date"], "window": 24, "stride_s": 3600, "max_gap_s": 0, "workers": 1,
         "split": {"train": 1.0, "val": 0.0, "test": 0.0, "seed": 0}}
    d.update(data)
    return {"data": d}


def _prepare(tmp_path: Path, cfg: dict) -> tuple[int, str, str]:
    return run_cmd(prepare_main, ["--config", str(write_config(tmp_path / "cfg.yaml", cfg))])


def test_timestamp_column_is_skipped_and_ranges_span_the_series(tmp_path: Path) -> None:
    _, x = _series(tmp_path / "in")
    out = tmp_path / "out" / "p.h5"
    code, _, err = _prepare(tmp_path, _config(tmp_path / "in", out))
    assert code == 0, err
    pf = PreparedFile(out)
    assert pf.n_windows("train") == N_ROWS - 24 + 1 and pf.n_windows("test") == pf.n_windows("val") == 0
    # range: auto over the train split = min-max over the whole series (one patient, all in train)
    for ch, v in zip(pf.channels, x):
        assert ch["range"] == pytest.approx([v.min(), v.max()], abs=1e-6)
    w, _, _ = pf.batch("train", np.array([0, 5]))
    back = pf.to_physical(w)
    np.testing.assert_allclose(back[1], x[:, 5:29], atol=1e-4)    # window 5 starts at row 5: stride 1


def test_without_ignore_columns_the_timestamp_is_refused_with_a_hint(tmp_path: Path) -> None:
    _series(tmp_path / "in")
    out = tmp_path / "out" / "p.h5"
    code, _, err = _prepare(tmp_path, _config(tmp_path / "in", out, ignore_columns=[]))
    assert_user_error(code, err, out.parent, "series.csv:1", "extra column 'date'", "data.ignore_columns")


def test_an_ignored_column_the_csv_lacks_is_an_error(tmp_path: Path) -> None:
    _series(tmp_path / "in")
    out = tmp_path / "out" / "p.h5"
    code, _, err = _prepare(tmp_path, _config(tmp_path / "in", out, ignore_columns=["date", "time"]))
    assert_user_error(code, err, out.parent, "series.csv:1", "'time' of data.ignore_columns is not in the header")


@pytest.mark.parametrize("ignore, needle", [(["date", "date"], "listed twice"), (["X"], "also a channel's source")])
def test_bad_ignore_columns_in_the_config(tmp_path: Path, ignore: list, needle: str) -> None:
    _series(tmp_path / "in")
    out = tmp_path / "out" / "p.h5"
    code, _, err = _prepare(tmp_path, _config(tmp_path / "in", out, ignore_columns=ignore))
    assert_user_error(code, err, out.parent, "ignore_columns", needle)


def test_a_window_longer_than_the_series_is_an_error(tmp_path: Path) -> None:
    _series(tmp_path / "in")
    out = tmp_path / "out" / "p.h5"
    code, _, err = _prepare(tmp_path, _config(tmp_path / "in", out, window=N_ROWS + 1))
    assert_user_error(code, err, out.parent, "data.window", "longer than every recording", f"{N_ROWS} samples")


def test_sines_follow_timegan_and_come_back_as_the_same_windows(tmp_path: Path) -> None:
    x = sine_windows(40, 24, 5, seed=3)
    assert x.shape == (40, 5, 24) and 0 <= x.min() and x.max() <= 1
    # TimeGAN: sin(f j + p) with f, p in [0, 0.1]: x[0] = (sin p + 1) / 2 <= (sin 0.1 + 1) / 2, steps <= 0.1 / 2
    assert x[:, :, 0].max() <= (np.sin(0.1) + 1) / 2 + 1e-12 and x[:, :, 0].min() >= 0.5
    assert np.abs(np.diff(x, axis=-1)).max() <= 0.05 + 1e-12
    write_sines_csv(tmp_path / "sines", n=40, seed=3)
    cfg = load_config(Path("configs/bench/sines.yaml"),
                      [f"data.source={tmp_path / 'sines'}", f"data.prepared={tmp_path / 'out' / 's.h5'}"])
    code, _, err = _prepare(tmp_path, {"data": cfg.raw["data"]})
    assert code == 0, err
    pf = PreparedFile(tmp_path / "out" / "s.h5")
    assert pf.n_windows("train") == 40
    w, _, _ = pf.batch("train", np.arange(40))
    np.testing.assert_allclose(pf.to_physical(w), x, atol=1e-6)   # range [0, 1]: [-1, 1] maps onto the data


def test_bench_configs_load() -> None:
    for name in ("etth2", "sines"):
        cfg = load_config(Path(f"configs/bench/{name}.yaml"))
        assert cfg.data.window == 24 and cfg.eval.reference == "train" and cfg.data.split.train == 1.0
    assert load_config(Path("configs/bench/etth2.yaml")).data.ignore_columns == ["date"]


@pytest.fixture()
def one_series(tmp_path: Path) -> Path:
    """A prepared single series (all windows in train) and a config with an eval section; returns the config."""
    _series(tmp_path / "in")
    cfg = _config(tmp_path / "in", tmp_path / "p.h5")
    cfg["eval"] = {"cache_dir": str(tmp_path / "cache"), "n_real": 60, "n_floor": 60, "workers": 1,
                   "physio": {"kind": "none"}}
    path = write_config(tmp_path / "cfg.yaml", cfg)
    code, _, err = run_cmd(prepare_main, ["--config", str(path)])
    assert code == 0, err
    return path


def test_eval_on_an_empty_test_split_says_what_to_set(one_series: Path, tmp_path: Path) -> None:
    import eval as eval_cli

    out = tmp_path / "rep"
    code, _, err = run_cmd(eval_cli.main, ["--config", str(one_series), "--metrics", "mmd", "--out", str(out)])
    line = assert_user_error(code, err, tmp_path / "nothing-here", "eval.reference", "'test' has no windows",
                             "eval.reference to train")
    assert not out.exists(), line


def test_eval_against_the_train_split(one_series: Path, tmp_path: Path) -> None:
    import eval as eval_cli

    out = tmp_path / "rep"
    code, _, err = run_cmd(eval_cli.main, ["--config", str(one_series), "eval.reference=train", "--metrics",
                                           "mmd", "diversity", "--out", str(out), "--no-figures"])
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    assert rep["reference"]["split"] == "train" and rep["reference"]["held_out"] is False
    assert rep["reference"]["n"] == 60 and rep["floor"]["n"] == 60
    assert "other train windows" in rep["rows"][0]["name"]
    md = (out / "report.md").read_text()
    assert "The reference is the TRAIN split" in md and "not how it generalises" in md


def test_floor_and_reference_are_disjoint(one_series: Path) -> None:
    from evaluation.real_data import real_subset

    cfg = load_config(one_series)
    pf = PreparedFile(cfg.data.prepared)
    ref = real_subset(pf, "train", 60, 0)
    floor = real_subset(pf, "train", 60, 0, ref.index)
    assert len(floor.index) == 60 and not set(ref.index) & set(floor.index)
    assert len(real_subset(pf, "train", None, 0, ref.index).index) == pf.n_windows("train") - 60
