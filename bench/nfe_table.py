"""Quality against network evaluations: `python -m bench.nfe_table REPORT.json ... --out FILE.md`.

Collects the report.json files of `python -m bench.ts_benchmark run --grid ... --nfe ...` (one or several
runs of the same model, e.g. one per NFE so that a partial grid is still usable) into one table per score,
one row per sampler and one column per NFE budget, plus the worst per-channel roughness ratio. The NFE in a
column header is the target; a sampler whose counted NFE differs (k_heun: 2 per step, 1 on the last) shows
its counted NFE beside the value.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from dataloader.atomic import write_text_atomic
from dataloader.cli import make_parser, run_main
from dataloader.errors import UserError

SCORES = ("discriminative", "predictive", "correlational")


def collect(reports: list[dict[str, Any]]) -> tuple[list[str], list[int], dict[tuple[str, int], dict[str, Any]]]:
    """(samplers in first-seen order, NFE targets ascending, (sampler, target) -> row) over all reports."""
    rows = [r for rep in reports for r in rep["rows"] if r.get("nfe_target") is not None]
    if not rows:
        raise UserError("reports", "no row generated for an NFE budget (run ts_benchmark run with --nfe)")
    targets = sorted({int(r["nfe_target"]) for r in rows})
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    return samplers, targets, {(r["sampler"], int(r["nfe_target"])): r for r in rows}


def _table(title: str, samplers: list[str], targets: list[int], cell: Callable[[str, int], str]) -> list[str]:
    """A markdown table: one row per sampler, one column per NFE target, `cell(sampler, target)` in each."""
    lines = [title, "", "| sampler | " + " | ".join(f"NFE {t}" for t in targets) + " |",
             "| --- | " + " | ".join("---" for _ in targets) + " |"]
    return lines + [f"| {s} | " + " | ".join(cell(s, t) for t in targets) + " |" for s in samplers] + [""]


def markdown(reports: list[dict[str, Any]]) -> str:
    """One table per protocol score and one of the worst roughness ratio (sampler x NFE)."""
    samplers, targets, cells = collect(reports)
    rough = reports[0]["real_roughness"]

    def score_cell(score: str) -> Callable[[str, int], str]:
        def cell(s: str, t: int) -> str:
            r = cells.get((s, t))
            v = r and r["scores"].get(score)
            return "" if not v else f"{v['mean']:.4f} ± {v['std']:.4f}" + ("" if r["nfe"] == t else f" ({r['nfe']})")
        return cell

    def rough_cell(s: str, t: int) -> str:
        r = cells.get((s, t))
        return "" if r is None else f"{max(a / max(b, 1e-12) for a, b in zip(r['roughness'], rough)):.2f}"

    out: list[str] = []
    for score in SCORES:
        out += _table(f"### {score} (mean ± std of {reports[0]['runs']} runs; lower is better)",
                      samplers, targets, score_cell(score))
    out += _table("### roughness: worst channel, synthetic / real (1.00 = as smooth as real)",
                  samplers, targets, rough_cell)
    return "\n".join(out[:-1]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m bench.nfe_table", __doc__ or "")
    p.add_argument("reports", nargs="+", help="report.json files of ts_benchmark run")
    p.add_argument("--out", required=True, help="markdown file to write (the tables only)")
    a = p.parse_args(argv)
    reps = []
    for f in a.reports:
        try:
            reps.append(json.loads(Path(f).read_text()))
        except (OSError, ValueError) as e:
            raise UserError(f, f"not a readable report.json ({e})") from None
    text = markdown(reps)
    write_text_atomic(a.out, text, "--out")
    print(text)
    return 0


if __name__ == "__main__":
    run_main(main)
