"""bench.nfe_table: the quality-vs-NFE tables collected from ts_benchmark run reports."""
from __future__ import annotations

import json

import pytest

from bench.nfe_table import collect, main, markdown
from dataloader.cli import run_main


def _row(sampler: str, target: int, nfe: int, disc: float, rough: list[float]) -> dict:
    score = {"mean": disc, "std": 0.001}
    return {"sampler": sampler, "steps": nfe, "nfe": nfe, "nfe_target": target, "roughness": rough,
            "scores": {"discriminative": score, "predictive": score, "correlational": score}}


def _report(rows: list[dict]) -> dict:
    return {"runs": 5, "real_roughness": [0.02, 0.01], "rows": rows}


def test_reports_of_one_nfe_each_become_one_table_per_score():
    reps = [_report([_row("ddim", 5, 5, 0.2, [0.02, 0.01]), _row("k_heun", 5, 5, 0.4, [0.04, 0.01])]),
            _report([_row("ddim", 20, 20, 0.05, [0.02, 0.03]), _row("k_heun", 20, 19, 0.1, [0.02, 0.01])])]
    samplers, targets, cells = collect(reps)
    assert samplers == ["ddim", "k_heun"] and targets == [5, 20]
    assert cells[("k_heun", 20)]["nfe"] == 19
    md = markdown(reps)
    lines = md.splitlines()
    disc = lines[lines.index("| sampler | NFE 5 | NFE 20 |") + 2:][:2]
    assert disc[0] == "| ddim | 0.2000 ± 0.0010 | 0.0500 ± 0.0010 |"
    assert disc[1] == "| k_heun | 0.4000 ± 0.0010 | 0.1000 ± 0.0010 (19) |"   # counted NFE shown when it differs
    rough = md.split("### roughness")[1].splitlines()
    assert "| ddim | 1.00 | 3.00 |" in rough and "| k_heun | 2.00 | 1.00 |" in rough   # worst channel


def test_a_report_without_nfe_budgets_is_refused(tmp_path, capsys):
    f = tmp_path / "report.json"
    f.write_text(json.dumps(_report([{**_row("ddim", 5, 5, 0.2, [0.02, 0.01]), "nfe_target": None}])))
    out = tmp_path / "t.md"
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(f), "--out", str(out)])
    assert e.value.code == 2 and not out.exists()
    assert capsys.readouterr().err.startswith("error: reports: no row generated for an NFE budget")


def test_an_unreadable_report_is_one_line(tmp_path, capsys):
    f = tmp_path / "report.json"
    f.write_text("{not json")
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(f), "--out", str(tmp_path / "t.md")])
    assert e.value.code == 2 and "not a readable report.json" in capsys.readouterr().err
