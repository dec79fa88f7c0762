"""eval.py and `python -m evaluation.fcn.train` on the tiny prepared data: report, floor cache, FCN reuse,
and every kind of bad input (one line, exit code 2, no report written)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataloader.prepared import PreparedFile
from dataloader.synthetic import SyntheticWriter

from .tiny_run import make_tiny_project

# small budgets: every score runs, none takes long
FAST = ["eval.fcn.epochs=3", "eval.fcn.patience=2", "eval.discriminative.iterations=200",
        "eval.discriminative.runs=2", "eval.predictive.iterations=30", "eval.predictive.runs=2",
        "eval.tstr.max_steps=5", "eval.tstr.epochs=2", "eval.workers=1", "eval.physio.kind=none"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_project(tmp_path_factory.mktemp("evalproj"))


def write_synth(path: Path, x: np.ndarray, labels: np.ndarray, fs: float, channels: list[dict],
                label_spec: list[dict]) -> Path:
    """A generated-samples file as generate.py writes it (dataloader/synthetic.py), from given windows."""
    attrs = {"fs": fs, "channels": channels, "label_spec": label_spec, "config": "", "sampler": "test",
             "steps": 0, "guidance_scale": 1.0, "seed": 0, "model_sha256": "0" * 64, "package_version": "test"}
    with SyntheticWriter(path, attrs=attrs, run_key="k", labels=labels, n_channels=x.shape[1],
                         length=x.shape[2]) as w:
        w.append(x.astype(np.float32))
        w.finish()
    return path


def real_as_synth(project: Path, path: Path, split: str = "val", n: int | None = None, **change) -> Path:
    """Real windows of `split` written as a synthetic file (labels included); `change` alters attributes."""
    pf = PreparedFile(project.parent / "prepared.h5")
    idx = np.arange(pf.n_windows(split))[:n]
    xs, y, _ = pf.batch(split, idx)
    x = pf.to_physical(xs)
    spec = [{"name": s["name"], "classes": s["classes"]} for s in pf.label_spec]
    chans, fs = pf.channels, pf.fs
    if "channels" in change:
        chans = change["channels"]
    if "fs" in change:
        fs = change["fs"]
    if "length" in change:
        x = x[:, :, : change["length"]]
    if change.get("no_labels"):
        spec, y = [], np.zeros((len(x), 0), np.int64)
    return write_synth(path, x, y, fs, chans, spec)


def run_eval(args: list[str]) -> int:
    import eval as eval_cli

    with pytest.raises(SystemExit) as e:
        from dataloader.cli import run_main

        run_main(eval_cli.main, args)
    return int(e.value.code)


def _two_files(project: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Real windows of the validation patients, and Gaussian noise, both as generated files with labels."""
    pf = PreparedFile(project.parent / "prepared.h5")
    good = real_as_synth(project, tmp_path / "realval.h5", "val")
    rng = np.random.default_rng(0)
    spec = [{"name": s["name"], "classes": s["classes"]} for s in pf.label_spec]
    noise = write_synth(tmp_path / "noise.h5", np.clip(rng.normal(0, 3, size=(60, 2, pf.window_len)), -6, 6),
                        rng.integers(0, 2, (60, 2)), pf.fs, pf.channels, spec)
    return good, noise


@pytest.mark.slow
def test_eval_every_metric(project: Path, tmp_path: Path) -> None:
    root = project.parent
    good, noise = _two_files(project, tmp_path)
    out = tmp_path / "report"
    assert run_eval(["--config", str(project), *FAST, f"eval.fcn.dir={root}/fcn-all",
                     f"eval.cache_dir={root}/cache-all", "--synthetic", str(good), str(noise), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["rows"][1]["metrics"]) == {"fid", "is", "accuracy", "tstr", "trts", "discriminative",
                                              "predictive", "dtw", "rmse_prd", "mmd", "diversity", "signal"}
    floor, real, noisy = (r["metrics"] for r in rep["rows"])
    assert noisy["discriminative"]["mean"] > 0.3 and floor["discriminative"]["mean"] < noisy["discriminative"]["mean"]
    assert real["predictive"]["mean"] < noisy["predictive"]["mean"]
    for lab in ("grp", "score"):
        assert 0 <= real["tstr"][lab]["accuracy"] <= 1 and real["is"][lab]["mean"] >= 1 - 1e-9
    md = (out / "report.md").read_text()
    assert "disc." in md and "TSTR acc grp" in md


def test_eval_report_floor_cache_and_fcn_reuse(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = project.parent
    good, noise = _two_files(project, tmp_path)
    common = ["--config", str(project), *FAST, f"eval.fcn.dir={root}/fcn", f"eval.cache_dir={root}/cache",
              "--metrics", "fid", "accuracy", "dtw", "mmd"]
    out = tmp_path / "report"
    assert run_eval([*common, "--synthetic", str(good), str(noise), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in rep["rows"]] == ["real-vs-real (train vs test patients)", "realval.h5", "noise.h5"]
    assert set(rep["rows"][1]["metrics"]) == {"fid", "accuracy", "dtw", "mmd"}
    floor, real, noisy = (r["metrics"] for r in rep["rows"])
    for lab in ("grp", "score"):
        # real windows of other patients are close to the reference; noise is far from it
        assert real["fid"][lab] < noisy["fid"][lab]
        assert floor["accuracy"][lab]["n"] == rep["reference"]["n"]      # the floor's accuracy: on test patients
        for row in (real, noisy):        # beside each file's accuracy: the same FCN on the real reference
            assert row["accuracy"][lab]["reference_accuracy"] == floor["accuracy"][lab]["accuracy"]
            assert row["accuracy"][lab]["reference_n"] == rep["reference"]["n"]
    assert real["mmd"]["mmd2"] < noisy["mmd"]["mmd2"] and real["dtw"]["mean"] < noisy["dtw"]["mean"]
    assert rep["reference"]["split"] == "test" and rep["floor"]["cached"] is False
    md = (out / "report.md").read_text()
    assert md.count("| realval.h5 |") == 1 and "| noise.h5 |" in md and "real-vs-real" in md
    assert "- `noise.h5`, `grp`: FCN accuracy on the generated labels " in md and " real reference windows: " in md
    for f in rep["figures"]:
        assert Path(f).is_file() and Path(f).stat().st_size > 1000
    assert any(f.endswith("-grid.png") for f in rep["figures"]) and any("embedding" in f for f in rep["figures"])
    fcns = sorted((root / "fcn").glob("*.safetensors"))
    assert [p.name for p in fcns] == ["prepared-grp.safetensors", "prepared-score.safetensors"]
    mtimes = [p.stat().st_mtime_ns for p in fcns]
    # second run: the floor comes from the cache, the FCNs are reused (not retrained)
    out2 = tmp_path / "report2"
    assert run_eval([*common[:-5], "--metrics", "fid", "mmd", "--synthetic", str(good), "--out", str(out2),
                     "--no-figures"]) == 0
    rep2 = json.loads((out2 / "report.json").read_text())
    assert rep2["floor"]["cached"] is True and [p.stat().st_mtime_ns for p in fcns] == mtimes
    assert rep2["rows"][0]["metrics"]["fid"] == floor["fid"] and rep2["rows"][1]["metrics"]["fid"] == real["fid"]
    # other FCN settings: the stored FCN no longer matches and is retrained
    capsys.readouterr()
    assert run_eval([*common[:-5], "eval.fcn.epochs=1", "eval.labels=[grp]", "--metrics", "fid", "--synthetic",
                     str(good), "--out", str(tmp_path / "r3"), "--no-figures"]) == 0
    assert "trained with other eval.fcn settings" in capsys.readouterr().err


def _fails(capsys: pytest.CaptureFixture, args: list[str], out: Path, expect: str) -> str:
    assert run_eval([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expect in err[0], err
    assert not out.exists(), "a failed evaluation must not write a report"
    return err[0]


@pytest.mark.parametrize("change, expect", [
    ({"channels": [{"name": "A", "unit": "mV", "range": [-2, 2]}, {"name": "X", "unit": "nd", "range": [0, 10]}]},
     "channels A (mV), X (nd) differ from the real data's A (mV), B (nd)"),
    ({"fs": 2.0}, "sampling rate 2 Hz differs from the real data's 1 Hz"),
    ({"length": 16}, "window length 16 samples differs from the real data's 32"),
    ({"no_labels": True}, "has no labels for 'grp', which the metrics accuracy, tstr need"),
])
def test_bad_synthetic_file(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture, change: dict,
                            expect: str) -> None:
    bad = real_as_synth(project, tmp_path / "bad.h5", **change)
    _fails(capsys, ["--config", str(project), *FAST, "--synthetic", str(bad), "--metrics", "fid", "accuracy",
                    "tstr", "mmd"], tmp_path / "out", expect)


def test_no_labels_is_fine_without_label_metrics(project: Path, tmp_path: Path) -> None:
    bad = real_as_synth(project, tmp_path / "nolab.h5", no_labels=True)
    root = project.parent
    # an override after --synthetic's files is read as an override, not as a file
    assert run_eval(["--config", str(project), *FAST, f"eval.cache_dir={root}/cache2", "--synthetic", str(bad),
                     "eval.n_real=30", "--metrics", "mmd", "rmse_prd", "eval.seed=1", "--out", str(tmp_path / "ok"),
                     "--no-figures"]) == 0
    rep = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert rep["reference"]["n"] == 30 and [r["name"] for r in rep["rows"]][1:] == ["nolab.h5"]
    assert rep["seed"] == 1 and rep["metrics"] == ["rmse_prd", "mmd"]


def test_progress_lines_when_stderr_is_not_a_terminal(project: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """capsys's stderr is no terminal: each metric prints `desc: done/total units (pct%) T s` lines."""
    import re

    syn = real_as_synth(project, tmp_path / "val.h5")
    capsys.readouterr()
    assert run_eval(["--config", str(project), *FAST, f"eval.cache_dir={project.parent}/cache-progress",
                     "--synthetic", str(syn), "--metrics", "dtw", "--out", str(tmp_path / "out"),
                     "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^val.h5: nearest-neighbour DTW: (\d+)/\1 wins \(100%\) \d+ s$", err, re.M), err
    assert "\r" not in err


def test_too_few_samples_says_how_many(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    few = real_as_synth(project, tmp_path / "few.h5", n=5)
    line = _fails(capsys, ["--config", str(project), *FAST, "--synthetic", str(few), "--metrics", "mmd",
                           "discriminative"], tmp_path / "out", "few.h5: has 5 windows")
    assert "'discriminative' needs at least 10" in line


def test_unknown_metric_lists_valid_ones(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = _fails(capsys, ["--config", str(project), "--metrics", "fid", "fidd"], tmp_path / "out",
                  "unknown metric 'fidd'")
    assert "valid: fid, is, accuracy, tstr, trts, discriminative, predictive, dtw, rmse_prd, mmd, diversity, physio" \
        in line
    line = _fails(capsys, ["--config", str(project), "eval.metrics=[fid, nope]"], tmp_path / "out", "nope")
    assert "valid:" in line


def test_missing_synthetic_file_and_unknown_label(project: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    _fails(capsys, ["--config", str(project), "--synthetic", str(tmp_path / "nope.h5")], tmp_path / "out",
           "not found")
    _fails(capsys, ["--config", str(project), "eval.labels=[grp, pH]"], tmp_path / "out",
           "unknown label 'pH'; the prepared file")


def test_train_fcn_command(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dataloader.cli import run_main
    from evaluation.fcn import train as train_fcn
    from evaluation.fcn.weights import load_extractor
    from evaluation.real_data import data_sha256

    root = project.parent
    d = tmp_path / "fcn"
    with pytest.raises(SystemExit) as e:
        run_main(train_fcn.main, ["--config", str(project), "eval.fcn.epochs=2", f"eval.fcn.dir={d}",
                                  "eval.labels=[score]"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "score:" in out and "test accuracy" in out
    model, meta = load_extractor(d / "prepared-score.safetensors")
    assert meta["data_sha256"] == data_sha256(str(root / "prepared.h5"))
    assert meta["label"] == "score" and meta["class_names"] == ["low", "high"]
    assert 0.0 <= meta["test_accuracy"] <= 1.0 and meta["n_test"] == 68


def test_train_fcn_check_trains_nothing(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`--check`: exit 1 (saying which) while an FCN is missing or stale, 0 once every one matches; never trains."""
    from dataloader.cli import run_main
    from evaluation.fcn import train as train_fcn

    d = tmp_path / "fcn"
    base = ["--config", str(project), "eval.fcn.epochs=2", f"eval.fcn.dir={d}", "eval.labels=[score]"]

    def code(*extra: str) -> int:
        with pytest.raises(SystemExit) as e:
            run_main(train_fcn.main, [*base, *extra])
        return int(e.value.code)

    assert code("--check") == 1 and not d.exists()
    assert "not ready: " in capsys.readouterr().err
    assert code() == 0  # trains it
    capsys.readouterr()
    assert code("--check") == 0 and "ready: the FCNs of score" in capsys.readouterr().out
    assert code("--check", "eval.fcn.epochs=1") == 1  # other settings: stale
    assert "other eval.fcn settings" in capsys.readouterr().err
    assert code("--check", "--force") == 2
