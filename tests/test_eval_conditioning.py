"""The `conditioning` metric: per label column, the physiology of each generated class against every real class
(evaluation/metrics/conditioning.py), on feature tables and end to end through eval.py on ECG data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataloader.errors import UserError
from dataloader.prepared import PreparedFile
from evaluation.metrics.conditioning import class_distances
from evaluation.reference import conditioning_features
from tests.heart_rate_data import make_ecg_project
from tests.test_eval_cli import _fails, run_eval, write_synth

CLASSES = ["lo", "mid", "hi"]
FEATS = ["f1", "f2"]


def _table(counts: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two features per window, class c around (10 c, -5 c) with unit spread: `(N, 2)` and codes `(N,)`."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(counts)), counts)
    return np.stack([10.0 * y, -5.0 * y], 1) + rng.standard_normal((len(y), 2)), y


def test_matching_classes_pass_and_permuted_labels_fail() -> None:
    real, ry = _table([30, 30, 30], 0)
    syn, sy = _table([20, 20, 20], 1)
    ok = class_distances(real, ry, syn, sy, FEATS, CLASSES, 5)
    assert ok["verdict"] == "pass" and ok["tested"] == ok["passed"] == 3 and ok["columns"] == CLASSES
    for c, row in ok["rows"].items():
        assert row["pass"] and row["nearest"] == {"f1": c, "f2": c}
        own = row["w1"]["f1"][CLASSES.index(c)]
        assert own < 1.0 and min(v for v in row["w1"]["f1"] if v != own) > 5.0     # 10 units between classes
    # the same windows with their labels moved one class on: every generated class is nearest another real one
    bad = class_distances(real, ry, syn, (sy + 1) % 3, FEATS, CLASSES, 5)
    assert bad["verdict"] == "fail" and bad["passed"] == 0 and bad["tested"] == 3
    assert bad["rows"]["mid"]["nearest"] == {"f1": "lo", "f2": "lo"}


def test_one_feature_that_disagrees_fails_the_row() -> None:
    """Per feature, all must hold: the second feature of class hi looks like class lo."""
    real, ry = _table([30, 30, 30], 0)
    syn, sy = _table([20, 20, 20], 1)
    syn[sy == 2, 1] = real[ry == 0, 1][:20]
    r = class_distances(real, ry, syn, sy, FEATS, CLASSES, 5)
    assert r["verdict"] == "fail" and r["passed"] == 2
    assert r["rows"]["hi"]["nearest"] == {"f1": "hi", "f2": "lo"} and not r["rows"]["hi"]["pass"]


def test_tie_is_not_closer() -> None:
    real = np.array([[1.0], [1.0], [2.0], [2.0]])
    syn = np.array([[1.0], [1.0]])
    r = class_distances(real, np.array([0, 0, 1, 1]), syn, np.array([0, 0]), ["f"], ["a", "b"], 1)
    assert r["rows"]["a"]["pass"] and r["verdict"] == "incomplete"   # b was not generated: skipped
    same = class_distances(np.array([[1.0], [1.0]]), np.array([0, 1]), syn, np.array([0, 0]), ["f"], ["a", "b"], 1)
    assert same["verdict"] == "fail" and same["rows"]["a"]["w1"]["f"] == [0.0, 0.0]


def test_too_few_windows_are_skipped_with_counts() -> None:
    real, ry = _table([30, 3, 30], 0)        # real class mid: too few -> no column, its row is skipped
    syn, sy = _table([20, 20, 4], 1)         # generated class hi: too few
    syn[0, 1] = np.nan                       # one unmeasurable lo window: counted, not measured
    r = class_distances(real, ry, syn, sy, FEATS, CLASSES, 5)
    assert r["columns"] == ["lo", "hi"] and list(r["rows"]) == ["lo"] and r["verdict"] == "incomplete"
    assert r["rows"]["lo"]["n_synth"] == 20 and r["rows"]["lo"]["n_synth_measured"] == 19
    assert r["skipped"]["mid"] == {"n_synth": 20, "n_synth_measured": 20, "n_real": 3, "n_real_measured": 3,
                                   "reason": "fewer than 5 measured real reference windows"}
    assert r["skipped"]["hi"]["n_synth"] == 4 and "synthetic" in r["skipped"]["hi"]["reason"]
    # one real class only: nothing to compare with
    one = class_distances(real[ry == 0], ry[ry == 0], syn, sy, FEATS, CLASSES, 5)
    assert one["rows"] == {} and one["verdict"] == "incomplete"
    assert one["skipped"]["lo"]["reason"].startswith("no other real class")


def test_bad_tables() -> None:
    real, ry = _table([5, 5, 5], 0)
    with pytest.raises(UserError, match="2 features"):
        class_distances(real[:, :1], ry, real, ry, FEATS, CLASSES, 1)
    with pytest.raises(UserError, match="outside 0..2"):
        class_distances(real, ry, real, ry + 1, FEATS, CLASSES, 1)
    with pytest.raises(UserError, match="min_windows"):
        class_distances(real, ry, real, ry, FEATS, CLASSES, 0)


def test_features_of_each_kind() -> None:
    from evaluation.config import ConditioningConfig

    assert conditioning_features("ctg", None) == ["baseline_bpm", "variability_bpm"]
    assert conditioning_features("ecg", ConditioningConfig()) == ["hr_bpm", "rmssd_ms"]
    with pytest.raises(UserError, match="'baseline_bpm' is not one of the ecg features"):
        conditioning_features("ecg", ConditioningConfig(features=["baseline_bpm"]))


# ---- end to end on ECG (no CTG anywhere): one lead in mV, a derived heart-rate label of 5-bpm bins ----------

@pytest.fixture(scope="module")
def ecg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ecg_project(tmp_path_factory.mktemp("cond-ecg"))


def _train_as_synth(cfg: Path, path: Path, relabel: bool = False, drop_code: int | None = None,
                    no_labels: bool = False) -> Path:
    """The train windows (3 patients x 5 rates) as a generated file; `relabel`: each window labelled with the
    next rate's class; `drop_code`: without the windows of that class."""
    pf = PreparedFile(cfg.parent / "prepared.h5")
    xs, y, _ = pf.batch("train", np.arange(pf.n_windows("train")))
    x = pf.to_physical(xs)
    if relabel:
        present = np.unique(y[:, 0])
        y = present[(np.searchsorted(present, y[:, 0]) + 1) % len(present)][:, None]
    if drop_code is not None:
        x, y = x[y[:, 0] != drop_code], y[y[:, 0] != drop_code]
    spec = [{"name": s["name"], "classes": s["classes"]} for s in pf.label_spec]
    if no_labels:
        spec, y = [], np.zeros((len(x), 0), np.int64)
    return write_synth(path, x, y, pf.fs, pf.channels, spec)


def _args(cfg: Path, tmp_path: Path) -> list[str]:
    return ["--config", str(cfg), f"eval.cache_dir={tmp_path}/cache", "eval.conditioning.min_windows=1",
            "eval.conditioning.features=[hr_bpm]", "--no-figures"]


def test_eval_conditioning_on_ecg(ecg: Path, tmp_path: Path) -> None:
    pf = PreparedFile(ecg.parent / "prepared.h5")
    top = pf.label_spec[0]["classes"][int(pf.batch("train", np.arange(5))[1][:, 0].max())]
    files = [_train_as_synth(ecg, tmp_path / "same.h5"), _train_as_synth(ecg, tmp_path / "moved.h5", relabel=True),
             _train_as_synth(ecg, tmp_path / "less.h5", drop_code=pf.label_spec[0]["classes"].index(top))]
    out = tmp_path / "rep"
    assert run_eval([*_args(ecg, tmp_path), "--metrics", "physio", "conditioning", "--synthetic",
                     *map(str, files), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    floor, same, moved, less = (r["metrics"]["conditioning"] for r in rep["rows"])
    assert rep["physio"]["kind"] == "ecg" and rep["physio"]["conditioning"] == ["hr_bpm"]
    for c in (floor, same):
        hr = c["labels"]["hr"]
        assert hr["verdict"] == "pass" and hr["tested"] == hr["passed"] == 5 and len(hr["absent"]) == 25
    assert moved["labels"]["hr"]["verdict"] == "fail" and moved["labels"]["hr"]["passed"] == 0
    hr = less["labels"]["hr"]
    assert hr["verdict"] == "incomplete" and hr["passed"] == 4
    assert hr["skipped"][top] == {"n_synth": 0, "n_synth_measured": 0, "n_real": 1, "n_real_measured": 1,
                                  "reason": "fewer than 1 measured synthetic windows"}
    md = (out / "report.md").read_text()
    assert "- `same.h5`, `hr`: **pass**: 5 of 5 tested classes" in md
    assert "- `moved.h5`, `hr`: **fail**: 0 of 5" in md and f"skipped: {top} (synthetic 0, 0 measured" in md
    assert md.count("| generated \\ real | ") == 4


def test_eval_conditioning_bad_input(ecg: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nolab = _train_as_synth(ecg, tmp_path / "nolab.h5", no_labels=True)
    _fails(capsys, [*_args(ecg, tmp_path), "--metrics", "conditioning", "--synthetic", str(nolab)],
           tmp_path / "out", "nolab.h5: has no labels for 'hr', which the metrics conditioning need")
    _fails(capsys, [*_args(ecg, tmp_path), "eval.conditioning.features=[baseline_bpm]", "--metrics",
                    "conditioning"], tmp_path / "out", "error: eval.conditioning.features: 'baseline_bpm' is not")
