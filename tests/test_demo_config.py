"""`make demo`: its training budget is counted in steps (configs/ctg/demo.yaml), so the run ends with epoch
rows in log.csv and epoch plots however slow or loaded the machine is; tools/demo.sh and the README use it."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from dataloader.config import load_config
from training.engine import stop_now
from tests.tiny_run import make_tiny_project, run_train, tiny_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "ctg" / "demo.yaml"


def test_demo_budget_is_steps_with_several_epochs() -> None:
    tc = load_config(DEMO).train
    assert tc.max_minutes is None  # a wall-clock cap can end a busy machine's run before its first epoch
    assert tc.epoch_steps is not None and tc.max_steps >= 2 * tc.epoch_steps
    assert 1 <= tc.plot_every <= tc.max_steps // tc.epoch_steps  # at least one epoch plot
    assert load_config(DEMO).model.size == "tiny"
    # an hour of wall clock (a very busy machine) does not stop the demo's run
    assert not stop_now(1, None, tc.max_minutes, start=0.0)


def test_demo_script_and_readme_use_the_demo_config() -> None:
    script = (ROOT / "tools" / "demo.sh").read_text()
    assert "CFG=configs/ctg/demo.yaml" in script and "max_minutes" not in script.replace("no max_minutes", "")
    assert re.search(r"^demo:.*\n\tbash tools/demo.sh", (ROOT / "Makefile").read_text(), re.M)
    out_dir = load_config(DEMO).train.out_dir
    assert f"OUT=${{DEMO_OUT:-{out_dir}}}" in script
    readme = (ROOT / "README.md").read_text()
    for cmd in re.findall(r"^\.venv/bin/python (?:train|generate)\.py [^\n]*", readme, re.M):
        assert "--config configs/ctg/demo.yaml" in cmd, cmd  # generate reads the model where train wrote it
    syn = re.findall(r"--out (\S+\.h5)", readme)
    assert syn and all(s.startswith(out_dir + "/") for s in syn), syn


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_project(tmp_path_factory.mktemp("demo"))


def test_a_step_budget_gives_an_epoch_row_and_plot(project: Path, tmp_path: Path) -> None:
    """The demo's clock on the tiny project (same max_minutes, a budget of whole epochs): log row + plot."""
    tc = load_config(DEMO).train
    cfg = tiny_config(project, f"train.out_dir={tmp_path}/run", "train.max_steps=2", "train.epoch_steps=2",
                      f"train.max_minutes={'null' if tc.max_minutes is None else tc.max_minutes}")
    run_train(cfg, plot=True)
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1"]
    assert (tmp_path / "run" / "plots" / "epoch-0001.png").stat().st_size > 1000
