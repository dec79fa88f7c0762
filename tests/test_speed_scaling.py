"""bench/speed_scaling.py's own logic (never its timings): the plan from the command line and its checks, one-line
errors, the measured child's peak RSS and failures, the training log's rates, the figures and the markdown; and,
marked slow, one --quick run end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import speed_scaling as sc
from bench.speed_scaling_report import markdown, summarise
from dataloader.cli import run_main
from training.train_log import TrainLog

ROOT = Path(__file__).resolve().parents[1]


def _plan(*args: str) -> dict:
    return sc.make_plan(sc.build_parser().parse_args(list(args)))


def test_plans_from_the_command_line() -> None:
    assert _plan("--quick") == dict(sc.QUICK, parts=list(sc.PARTS))
    assert _plan() == dict(sc.FULL, parts=list(sc.PARTS))
    assert sc.FULL["windows"] == [2048, 4096, 8192, 16384] and sc.FULL["counts"] == [16, 64, 256, 1024]
    p = _plan("--quick", "--windows", "512", "--pairs", "3", "--parts", "ddp", "window", "ddp")
    assert p["windows"] == [512] and p["pairs"] == 3 and p["parts"] == ["ddp", "window"]
    assert p["size"] == "tiny" and p["counts"] == sc.QUICK["counts"]
    ov = sc.train_overrides(p, Path("/r"), 4, 1)
    assert "train.max_steps=2" in ov and "train.epoch_steps=1" in ov and "train.threads=1" in ov
    assert "train.max_steps=1" in sc.train_overrides(p, Path("/r"), 4, 1, steps=1)
    assert "data.prepared=/d/ctg-1hz-w512.h5" in sc.data_overrides(Path("/d"), 512)


@pytest.mark.parametrize("args, where", [
    (["--ddp-batch", "3"], "--ddp-batch"), (["--windows", "2048", "100"], "--windows"),
    (["--pairs", "0"], "--pairs"), (["--quick", "--gen-window", "258"], "--gen-window"),
    (["--parts", "gpu"], "speed_scaling"), (["--size", "huge"], "model.size"), (["--counts"], "speed_scaling")])
def test_bad_arguments_are_one_line_errors(args: list, where: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        run_main(sc.main, [*args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and where in err
    assert not list(tmp_path.iterdir())


def test_run_measured_reports_the_childs_peak_rss_and_fails_loudly() -> None:
    env = sc.env_for(1, "")
    r = sc.run_measured([sys.executable, "-c", "b = bytearray(96 * 2**20); print('done')"], env, 60)
    assert r["peak_rss_mib"] >= 96 and r["stdout_last"] == "done" and len(r["loadavg_before"]) == 3
    assert r["cmd"][0] == sys.executable
    with pytest.raises(SystemExit, match="exit 3"):
        sc.run_measured([sys.executable, "-c", "raise SystemExit(3)"], env, 60)
    with pytest.raises(SystemExit, match="timed out after 0.5 s"):
        sc.run_measured([sys.executable, "-c", "import time; time.sleep(60)"], env, 0.5)


def test_log_rates_leave_out_the_warm_up_epoch(tmp_path: Path) -> None:
    log = TrainLog(tmp_path / "log.csv")
    for step, rate in ((2, 1.0), (4, 5.0), (6, 7.0)):
        log.append(step=step, epoch=step // 2, train_loss=0.5, windows_per_s=rate)
    assert sc.log_rates(tmp_path) == [5.0, 7.0]


def _result() -> dict:
    load = {"loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [2.0, 1.0, 1.0]}
    return {
        "machine": {"cpu": "AMD EPYC", "cores": 2, "memory_gib": 8, "gpu": None, "python": "3", "torch": "2",
                    "numpy": "1", "commit": "abc1234", "utc": "now"},
        "versions": {"accelerate": "1"}, "plan": dict(sc.FULL), "config": sc.CONFIG, "glibc_tunables": "x",
        "nice": 15, "data": "synthetic", "quick": False, "command": "python -m bench.speed_scaling",
        "window": [dict(load, window=2048, batch=4, epoch_rates=[2.0, 1.0, 4.0], peak_rss_mib=1000.0),
                   dict(load, window=4096, batch=4, epoch_rates=[0.5, 0.5], peak_rss_mib=2000.0)],
        "generate": [dict(load, count=16, wall_s=10.0, peak_rss_mib=500.0, output_mib=0.25),
                     dict(load, count=64, wall_s=34.0, peak_rss_mib=510.0, output_mib=1.0)],
        "ddp": [dict(load, pair=0, processes=1, epoch_rates=[2.0], peak_rss_mib=900.0),
                dict(load, pair=0, processes=2, epoch_rates=[3.0], peak_rss_mib=600.0),
                dict(load, pair=1, processes=1, epoch_rates=[1.0], peak_rss_mib=950.0),
                dict(load, pair=1, processes=2, epoch_rates=[1.0], peak_rss_mib=610.0)]}


def test_figures_and_markdown_of_a_given_result() -> None:
    res = _result()
    s = res["summary"] = summarise(res)
    w = s["window"]
    assert w[0]["windows_per_s"] == 2.0 and w[1]["s_per_window"] == 2.0
    assert w[1]["cost_vs_linear"] == pytest.approx(2.0)  # 4x the time per window for 2x the length
    g = s["generate"]
    assert g[0]["marginal_s_per_window"] is None and g[1]["marginal_s_per_window"] == pytest.approx(0.5)
    assert s["generate_rss_growth_mib"] == 10.0 and s["generate_output_growth_mib"] == 0.75
    d = s["ddp"]
    assert [p["efficiency"] for p in d["pairs"]] == [0.75, 0.5] and d["efficiency"] == pytest.approx(0.625)
    assert d["peak_rss_mib_1"] == 950.0 and d["peak_rss_mib_2"] == 610.0
    md = markdown(res)
    assert "| 4096 | 0.500 | 2.000 | 2.00 | 2000 | 500 |" in md
    assert "| 64 | 34.0 | 0.531 | 0.500 | 510 | 1.0 |" in md
    assert "| 1 | 1.000 | 1.000 | 50% |" in md and "| median | 1.500 | 2.000 | 62% |" in md
    assert "w2048 1.0/2.0" in md and "QUICK" not in md and "`nice -n 15 python -m bench.speed_scaling`" in md
    res["quick"] = True
    assert "QUICK REHEARSAL" in markdown(res)


@pytest.mark.slow
def test_quick_run_writes_json_and_markdown(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "bench.speed_scaling", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                   check=True, capture_output=True)
    (js,) = tmp_path.glob("speed_scaling_*-quick.json")
    res = json.loads(js.read_text())
    assert [r["window"] for r in res["window"]] == sc.QUICK["windows"]
    assert [r["count"] for r in res["generate"]] == sc.QUICK["counts"]
    assert [r["processes"] for r in res["ddp"]] == [1, 2] and res["summary"]["ddp"]["efficiency"] > 0
    assert (tmp_path / js.name.replace(".json", ".md")).exists()
