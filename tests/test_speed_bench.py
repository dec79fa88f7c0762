"""bench/speed_side_by_side.py's own logic (not its timings): pair ratios, figures, the table, the names,
the Makefile's allocator setting; and, marked slow, one quick end-to-end run with the base worktree."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import speed_side_by_side as sbs

ROOT = Path(__file__).resolve().parents[1]


def _child(rate: float, bare: float, opt: float, ev: float, rss: float) -> dict:
    """A measurement as bench/speed_child.py prints it (numbers chosen by the test)."""
    return {"batch": 16, "train_windows_per_s": rate, "train_steps_s": [16 / rate] * 3,
            "bare_step_s": [bare, bare * 2, bare / 2],
            "optimizer_s": [opt] * 3, "train_gflop": 100.0, "matmul_gflops_per_s": 200.0,
            "peak_rss_train_mib": rss, "peak_rss_mib": rss * 2, "eval_s": {"16": [ev] * 3},
            "eval_gflop": {"16": 20.0}}


def test_figures_and_pair_ratios() -> None:
    a = _child(rate=4.0, bare=2.0, opt=0.5, ev=0.5, rss=1000)
    b = _child(rate=8.0, bare=1.0, opt=0.05, ev=0.25, rss=500)
    f = sbs.figures(a)
    assert f["full_step_s"] == pytest.approx(4.0) and f["full_over_bare"] == pytest.approx(2.0)
    assert f["optimizer_share"] == pytest.approx(0.25)
    assert f["train_fraction_of_peak"] == pytest.approx(100 / 2 / 200)
    assert f["eval_fraction_of_peak_b16"] == pytest.approx(20 / 0.5 / 200)
    s = sbs.summarise([(a, b), (a, b), (a, _child(rate=2.0, bare=4.0, opt=0.5, ev=1.0, rss=2000))])
    # rates B/A, times and memory A/B: the median pair is the (a, b) one
    assert s["speedup_B_over_A"]["train_windows_per_s"] == pytest.approx(2.0)
    assert s["speedup_B_over_A"]["bare_step_s"] == pytest.approx(2.0)
    assert s["speedup_B_over_A"]["optimizer_s"] == pytest.approx(10.0)
    assert s["speedup_B_over_A"]["peak_rss_mib"] == pytest.approx(2.0)
    assert s["speedup_B_over_A"]["train_fraction_of_peak"] == pytest.approx(2.0)
    assert s["pair_ratios_train"] == pytest.approx([2.0, 2.0, 0.5])
    assert s["B"]["train_windows_per_s"] == pytest.approx(8.0)


def test_markdown_names_and_settings() -> None:
    a, b = _child(4.0, 2.0, 0.5, 0.5, 1000), _child(8.0, 1.0, 0.05, 0.25, 500)
    runs = [dict(a, side="A", pair=0, loadavg_before=[1.0], loadavg_after=[2.0]),
            dict(b, side="B", pair=0, loadavg_before=[2.0], loadavg_after=[1.5])]
    res = {"machine": {"cpu": "AMD EPYC 7B13", "cores": 2, "memory_gib": 8, "torch": "2", "python": "3",
                       "utc": "now"}, "summary": sbs.summarise([(a, b)]), "threads": 2, "glibc_tunables": "x",
           "mode": dict(sbs.FULL), "pairs": 1, "runs": runs, "quick": False,
           "A": {"label": "81c55ba", "optimizer": "o"}, "B": {"label": "abc1234", "optimizer": "p"}}
    md = sbs.markdown(res)
    assert "| training loop, windows/s | 4.00 | 8.00 | 2.00x |" in md
    assert "A0 1.0/2.0, B0 2.0/1.5" in md
    assert "loop steps took A 4.0-4.0 s, B 2.0-2.0 s" in md
    assert sbs.machine_slug("AMD EPYC 7B13 64-Core Processor") == "amd-epyc-7b13-64-core"
    assert sbs.makefile_tunables().startswith("glibc.malloc.")
    ov = sbs.overrides(Path("/d"), sbs.QUICK)
    assert "data.prepared=/d/ctg-1hz.h5" in ov and "data.window=256" in ov and "model.size=tiny" in ov


def _worktrees() -> set[str]:
    """The paths of the repository's worktrees (other sessions may move their commits meanwhile)."""
    out = subprocess.run(["git", "-C", str(ROOT), "worktree", "list", "--porcelain"], capture_output=True,
                         text=True, check=True).stdout
    return {line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")}


@pytest.mark.slow
def test_quick_run_measures_both_trees(tmp_path: Path) -> None:
    """A quick run with HEAD as the base: A is measured in the temporary worktree (removed afterwards), B here."""
    before = _worktrees()
    subprocess.run([sys.executable, "-m", "bench.speed_side_by_side", "--quick", "--pairs", "1", "--base", "HEAD",
                    "--out", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    (js,) = tmp_path.glob("speed_side_by_side_*-quick.json")
    res = json.loads(js.read_text())
    a, b = res["runs"]
    assert Path(a["imported_from"]) != ROOT and Path(b["imported_from"]) == ROOT
    assert a["train_windows_per_s"] > 0 and b["threads"] == 2 and res["glibc_tunables"]
    assert (tmp_path / js.name.replace(".json", ".md")).exists()
    assert _worktrees() == before
