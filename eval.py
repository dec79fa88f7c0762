"""Score synthetic recordings against real windows of held-out patients (docs/evaluation.md section 1).

    python eval.py --config configs/ctg/eval.yaml --synthetic A.h5 [B.h5 ...] [--metrics fid dtw ...] [--out DIR]

For each generated file (written by generate.py), and for real-vs-real (train-patient windows in place of
synthetic ones: the floor a perfect generator would reach, cached per prepared file), the metrics of the
`eval` section: FCN-FID, FCN-IS, label accuracy, TSTR, TRTS, discriminative and predictive scores,
nearest-neighbour DTW, RMSE, PRD, MMD, diversity / mode collapse, physiological features and signal
statistics. Writes DIR/report.json, DIR/report.md (one row per file) and DIR/figures/*.png. Missing FCNs are
trained first (python -m evaluation.fcn.train does that on its own).

metrics: fid, is, accuracy, tstr, trts, discriminative, predictive, dtw, rmse_prd, mmd, diversity, physio, signal
"""
from __future__ import annotations

from typing import Sequence

from dataloader.cli import add_config_args, make_parser, run_main, set_threads


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__.split("\n\n")
    p = make_parser("eval.py", doc[0] + "\n\n" + doc[1], epilog="\n\n".join(doc[2:]))
    add_config_args(p)
    p.add_argument("--synthetic", nargs="*", default=[], metavar="FILE.h5",
                   help="generated files to score (none: only the real-vs-real floor)")
    p.add_argument("--metrics", nargs="+", default=None, metavar="NAME", help="metrics to run (default: eval.metrics)")
    p.add_argument("--out", default="runs/eval", metavar="DIR", help="output folder (its parent must exist)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    a = p.parse_intermixed_args(argv)
    # `--synthetic A.h5 key=value` (or `--metrics fid key=value`) would read the override as a file (a metric):
    # an argument with "=" that names no file is an override wherever it stands
    import os

    def is_override(s: str) -> bool:
        return "=" in s and not os.path.exists(s)

    a.overrides += [s for s in a.synthetic + (a.metrics or []) if is_override(s)]
    a.synthetic = [s for s in a.synthetic if not is_override(s)]
    if a.metrics is not None:
        a.metrics = [s for s in a.metrics if not is_override(s)]
    from dataloader.config import load_config
    from evaluation.metrics import check_metrics
    from evaluation.reference import eval_section

    cfg = load_config(a.config, a.overrides)
    ev = eval_section(cfg)
    if a.metrics is not None:
        check_metrics(a.metrics)
    if a.dry_run:
        print(cfg.yaml(), end="")
        return 0
    set_threads(a.threads)
    from evaluation.run import evaluate

    report = evaluate(cfg, ev, a.synthetic, a.metrics, a.out, figures_on=not a.no_figures)
    print(f"{len(report['rows']) - 1} file(s) scored in {report['seconds_total']} s; report in {a.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
