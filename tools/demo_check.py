"""What `make demo` (tools/demo.sh) needs to know before each stage, one question per call.

    python -m tools.demo_check model NAME             # the shipped model's file, found as generate.py --model
                                                      # finds it (PHYSIODIFF_MODELS or models/); exit 1: none
    python -m tools.demo_check prepared CONFIG [k=v]  # the config's data.prepared (what to prepare if missing)
    python -m tools.demo_check split NAME PREPARED    # exit 0 if the model learned from PREPARED's patient split

The split check keeps the demo honest: the plot's real windows and eval.py's reference are the prepared
file's test patients, which are held out only if the model was trained on the same split (the model file
stores the manifest's sha256). A mismatch is one line `error: ...` and exit 2.
"""
from __future__ import annotations

from typing import Sequence

from dataloader.cli import make_parser, run_main
from dataloader.errors import UserError


def _parser():  # type: ignore[no-untyped-def]
    doc = __doc__.split("\n\n")
    p = make_parser("python -m tools.demo_check", doc[0] + "\n\n" + doc[1], epilog=doc[2])
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("model", help="print the shipped model's file; exit 1 when there is none")
    m.add_argument("name")
    c = sub.add_parser("prepared", help="print the config's data.prepared")
    c.add_argument("config")
    c.add_argument("overrides", nargs="*", metavar="key=value")
    s = sub.add_parser("split", help="exit 2 unless the model learned from the prepared file's patient split")
    s.add_argument("name")
    s.add_argument("prepared")
    return p


def check_split(name: str, prepared: str) -> str:
    """The manifest sha256 that the shipped model `name` and the prepared file share; UserError if they differ
    (or if the model file stores none: then nothing says which patients it saw)."""
    from dataloader.prepared import open_prepared
    from tools.ship import shipped_model
    from training.model_file import read_model_meta

    model = shipped_model(name, "split")
    ours = open_prepared(prepared).manifest_sha256
    theirs = read_model_meta(model, "split").data.manifest_sha256
    if theirs != ours:
        raise UserError(str(model), f"learned from the patient split {theirs[:12] or '(not stored)'}..., but "
                                    f"{prepared} has {ours[:12]}...: its test patients are not held out from "
                                    "this model (prepare the data with the model's data section)")
    return ours


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.what == "model":
        from tools.ship import MODELS_DIR, shipped_names

        if a.name not in shipped_names():
            return 1
        print(MODELS_DIR / a.name / "model.safetensors")
    elif a.what == "prepared":
        from dataloader.config import load_config

        print(load_config(a.config, a.overrides).data.prepared)
    else:
        print(f"patient split {check_split(a.name, a.prepared)[:12]}...: the model's and {a.prepared}'s")
    return 0


if __name__ == "__main__":
    run_main(main)
