"""Train the FCN feature extractors (one per label column) that eval.py uses for FCN-FID, FCN-IS, label
accuracy and TRTS.

    python -m evaluation.fcn.train --config configs/ctg/eval.yaml [--force] [key=value ...]

Each FCN is trained on windows of the train patients of the prepared file (eval.prepared, default
data.prepared), early-stopped on the validation patients, and scored on the test patients; it is saved to
<eval.fcn.dir>/<prepared stem>-<label>.safetensors with the data file's sha256 and the label spec. A stored FCN
that matches the data and settings is kept unless --force is given. eval.py trains missing ones itself.
--check trains nothing: exit 0 when every FCN is stored and matches, else exit 1 with one line saying which
(tools/demo.sh runs the FCN metrics only then: training both CTG FCNs costs ~4 CPU minutes).
"""
from __future__ import annotations

import sys
from typing import Sequence

from dataloader.cli import add_config_args, make_parser, run_main, set_threads
from dataloader.errors import UserError


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__.split("\n\n")
    p = make_parser("python -m evaluation.fcn.train", doc[0] + "\n\n" + doc[1], epilog="\n\n".join(doc[2:]))
    add_config_args(p)
    p.add_argument("--force", action="store_true", help="retrain even when a matching FCN is stored")
    p.add_argument("--check", action="store_true", help="train nothing: exit 0 if every FCN is stored and "
                                                        "matches the data and settings, else 1")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    a = p.parse_intermixed_args(argv)
    if a.check and a.force:
        raise UserError("--check", "trains nothing; not with --force")
    from dataloader.config import load_config

    from ..reference import eval_section, label_names, open_reference

    cfg = load_config(a.config, a.overrides)
    ev = eval_section(cfg)
    if a.dry_run:
        print(cfg.yaml(), end="")
        return 0
    pf = open_reference(cfg, ev)
    labels = label_names(pf, ev)
    if not labels:
        print("the prepared file has no label columns: there is no FCN to train "
              "(eval.py then uses an autoencoder's features)", file=sys.stderr)
        return 1 if a.check else 0
    set_threads(a.threads)
    from .store import fcn_path, load_or_train

    if a.check:
        try:
            load_or_train(pf, labels, ev.fcn, train_missing=False)
        except UserError as e:
            print(f"not ready: {e}", file=sys.stderr)
            return 1
        print(f"ready: the FCNs of {', '.join(labels)} ({ev.fcn.dir})")
        return 0
    for label, (_, meta) in load_or_train(pf, labels, ev.fcn, force=a.force).items():
        print(f"{label}: {fcn_path(ev.fcn, pf.path, label)}  test accuracy {meta['test_accuracy']:.3f} "
              f"(majority {meta['test_majority_share']:.3f}, balanced {meta['test_balanced_accuracy']:.3f}, "
              f"macro-F1 {meta['test_macro_f1']:.3f}; {meta['n_test']} windows, {meta['test_patients']} patients)")
    return 0


if __name__ == "__main__":
    run_main(main)
