"""Run every benchmark in bench/ (one subprocess each, so one cannot skew another's memory) and
list the result files. Each benchmark writes bench/results/<name>.json and <name>.md itself.

    make bench            # or: python -m bench.run_all [--only NAME ...]
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from dataloader.cli import make_parser, run_main

HERE = Path(__file__).parent
# benchmarks that need arguments: one list of arguments per run, in order (the others run once, bare)
RUNS: dict[str, list[list[str]]] = {
    "baselines_ctg": [["train"], ["generate"], ["score"]],   # train all models, generate from each, score
    "eval_speed": [["--stand-in", "2000"]],                  # 2000 validation-patient windows as the file
}
# commands that score files other steps make, not benchmarks of their own (helper modules have no __main__)
NOT_BENCHMARKS = ("run_all", "__init__", "machine", "ts_benchmark")


def benchmarks() -> list[str]:
    """Names of the benchmark modules (every bench/*.py with a `__main__` block, except this one)."""
    return sorted(p.stem for p in HERE.glob("*.py")
                  if p.stem not in NOT_BENCHMARKS and "__main__" in p.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m bench.run_all", __doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="*", metavar="NAME", choices=benchmarks(), help="run only these benchmarks")
    a = p.parse_args(argv)
    failed = []
    for name in a.only or benchmarks():
        t0 = time.time()
        print(f"== bench.{name}", flush=True)
        rc = 0
        for args in RUNS.get(name, [[]]):
            rc = rc or subprocess.call([sys.executable, "-m", f"bench.{name}", *args])
        print(f"== bench.{name}: exit {rc} in {time.time() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    print("results:", *sorted(str(p) for p in (HERE / "results").glob("*.md")), sep="\n  ")
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
