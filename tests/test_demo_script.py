"""tools/demo.sh (`make demo`) end to end on the tiny project: stage A with a shipped model (made by tools.ship
from a tiny run, found through PHYSIODIFF_MODELS), stage B skipped (DEMO_TRAIN=0); and the branch without a
shipped model. The summary lists only files that exist; the plot has one panel pair per requested class."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_run import make_tiny_project, run_train, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _demo(tmp: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PY": sys.executable, "OMP_NUM_THREADS": "1", "DEMO_OUT": str(tmp / "out"), **env}
    return subprocess.run(["bash", str(ROOT / "tools" / "demo.sh")], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=300)


def _summary_paths(stdout: str) -> list[Path]:
    """The paths the summary after '== done' lists (second column of each '  what   path (note)' line)."""
    tail = stdout.split("== done\n", 1)[1]
    return [Path(m.group(1)) for m in re.finditer(r"^  (?!time:)\S.*?\s{2,}(\S+)", tail, re.M)]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run shipped as models/tiny-demo; returns the project folder (tiny.yaml, models/, ...)."""
    from tools.ship import ship

    root = tmp_path_factory.mktemp("demo-script")
    cfg = make_tiny_project(root)
    run_train(tiny_config(cfg, "train.max_steps=2", "train.epoch_steps=2"))
    (root / "models").mkdir()
    ship(root / "run", "tiny-demo", "test data", root / "models")
    (root / "eval.yaml").write_text(f"include: tiny.yaml\neval:\n  reference: test\n  labels: [grp]\n"
                                    f"  fcn: {{dir: {root}/fcn}}\n")
    (root / "classes.csv").write_text("grp,count\na,3\nb,3\n")
    return root


def test_demo_with_a_shipped_model_and_no_training(shipped: Path, tmp_path: Path) -> None:
    from PIL import Image

    r = _demo(tmp_path, PHYSIODIFF_MODELS=str(shipped / "models"), DEMO_MODEL="tiny-demo", DEMO_TRAIN="0",
              DEMO_CLASSES=str(shipped / "classes.csv"), DEMO_EVAL_CONFIG=str(shipped / "eval.yaml"),
              DEMO_METRICS="mmd diversity")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "(already prepared)" in r.stdout and "== B. skipped (DEMO_TRAIN=0)" in r.stdout
    paths = _summary_paths(r.stdout)
    assert paths and all(p.exists() for p in paths), paths
    a = tmp_path / "out" / "tiny-demo"
    assert {a / "synthetic.h5", a / "generated" / "generated.png", a / "eval" / "report.md"} <= set(paths)
    assert not (tmp_path / "out" / "log.csv").exists()  # nothing trained
    with Image.open(a / "generated" / "generated.png") as im:
        rows = im.text["Description"].splitlines()
    assert len(rows) == 2, rows  # two requested classes: one panel pair each
    for row, grp in zip(rows, ("a", "b")):
        real, syn = row.split(" | ")
        assert syn.startswith(f"synthetic: grp={grp}") and f"grp={grp}" in real and "other class" not in real
    report = (a / "eval" / "report.md").read_text()
    assert "| MMD² |" in report and report.strip() in r.stdout  # the report is printed
    assert re.search(r"^  time: A \(shipped model\): \d+ s$", r.stdout, re.M)


def test_demo_without_a_shipped_model_says_so(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    r = _demo(tmp_path, PHYSIODIFF_MODELS=str(tmp_path / "models"), DEMO_TRAIN="0")
    assert r.returncode == 0, r.stderr[-2000:]
    line = [s for s in r.stdout.splitlines() if s.startswith("== A. skipped")]
    assert len(line) == 1 and "no shipped model 'ctg-4hz'" in line[0] and "tools.ship" in line[0], r.stdout
    assert _summary_paths(r.stdout) == []  # nothing was made, nothing is listed
    assert "prepared" not in r.stdout  # no stage needed the data


def test_demo_refuses_a_bad_train_flag(tmp_path: Path) -> None:
    r = _demo(tmp_path, DEMO_TRAIN="no")
    assert r.returncode == 2 and r.stderr.strip() == "error: DEMO_TRAIN: expected 0 or 1 (got 'no')"


def test_split_check_refuses_another_patient_split(shipped: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's real windows are held out only if the model learned from the same split: else exit 2."""
    import tools.ship
    from dataloader.cli import run_main
    from tools import demo_check

    monkeypatch.setattr(tools.ship, "MODELS_DIR", shipped / "models")
    other = make_tiny_project(tmp_path / "other", n_patients=12)  # 12 patients: another manifest
    assert demo_check.check_split("tiny-demo", str(shipped / "prepared.h5"))
    with pytest.raises(SystemExit) as e:
        run_main(demo_check.main, ["split", "tiny-demo", str(other.parent / "prepared.h5")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run_main(demo_check.main, ["model", "no-such-model"])
    assert e.value.code == 1
