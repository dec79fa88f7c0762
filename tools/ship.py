"""Package a finished training run as a shipped model: models/<name>/model.safetensors + README.md (its card).

    python -m tools.ship --run runs/ctg-sampling --name ctg-4hz --licence "ODC-By 1.0 (CTU-UHB, PhysioNet)" \\
        [--eval runs/ctg-eval] [--audit runs/privacy/report.json] [--dtype float16] [--out models]

The shipped file is the run's inference file (EMA weights, config, data description) with the weights stored
as float16 by default (half the size; a weight outside float16's range is refused rather than clipped) and
the model card (training/model_card.py: data sha256 and patient manifest, config, steps, windows seen, wall
time, hardware, licence, the eval report and audit when given) in its metadata under `card`. The README is the
same card in markdown, plus the sha256 of the final model.safetensors (`| file sha256 | ... |`), which
generate.py --model and the web app check before they use the file. generate.py loads either dtype (weights
are cast to the model's float32 on loading).
Nothing is written unless every input is valid; both files are written to temporary names and renamed.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Sequence

import torch

from dataloader.atomic import write_text_atomic
from dataloader.cli import make_parser, run_main
from dataloader.config import load_config
from dataloader.errors import UserError
from dataloader.tensor_file import save_tensors

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # a folder name and a --model name: no path, no spaces
# the shipped models: models/ of the repository (PHYSIODIFF_MODELS names another folder)
MODELS_DIR = Path(os.environ.get("PHYSIODIFF_MODELS") or Path(__file__).resolve().parents[1] / "models")
DTYPES = {"float16": torch.float16, "float32": torch.float32}


def _parser():  # type: ignore[no-untyped-def]
    p = make_parser("python -m tools.ship", __doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--run", required=True, metavar="DIR",
                   help="folder of the finished training run (train.out_dir: model.safetensors, config.yaml, "
                        "checkpoints/)")
    p.add_argument("--name", required=True, help="model name: lower-case letters, digits, '.', '_', '-' "
                                                 "(the folder under --out and generate.py --model NAME)")
    p.add_argument("--licence", required=True, help="licence of the data the model learned from (the card says it)")
    p.add_argument("--eval", default=None, metavar="DIR", help="eval.py's output folder for this model "
                                                               "(report.json, report.md) to put in the card")
    p.add_argument("--audit", default=None, metavar="FILE", help="a privacy audit report (JSON) for the card")
    p.add_argument("--notes", default=None, metavar="FILE",
                   help="markdown for the card's 'How it was made' section: the commands that trained and scored "
                        "it, and what its numbers mean")
    p.add_argument("--hardware", default=None, help="where it trained (default: this machine's GPU or CPU)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float16", help="storage type of the weights")
    p.add_argument("--out", default="models", metavar="DIR", help="folder of shipped models")
    return p


def shipped_names(folder: Path | None = None) -> list[str]:
    """The names of the models shipped in `folder` (default MODELS_DIR; each <name>/model.safetensors), sorted."""
    folder = folder or MODELS_DIR
    return sorted(p.parent.name for p in folder.glob("*/model.safetensors")) if folder.is_dir() else []


def shipped_model(name: str, where: str = "--model", folder: Path | None = None) -> Path:
    """models/<name>/model.safetensors of a shipped model, checked against the sha256 its README.md states
    (training.model_card.check_shipped); UserError listing the shipped ones when there is no such model, or
    naming the README when the file is not the one it describes."""
    from training.model_card import check_shipped

    folder = folder or MODELS_DIR
    if not NAME_RE.match(name) or not (folder / name / "model.safetensors").is_file():
        have = ", ".join(shipped_names(folder)) or f"none yet in {folder}"
        raise UserError(where, f"no shipped model {name[:64]!r} (shipped: {have})")
    check_shipped(folder / name / "model.safetensors")
    return folder / name / "model.safetensors"


def cast_weights(weights: dict[str, torch.Tensor], dtype: torch.dtype, where: str) -> dict[str, torch.Tensor]:
    """Floating tensors as `dtype` (others unchanged); a value that `dtype` cannot hold raises UserError."""
    out = {}
    for k, t in weights.items():
        if t.is_floating_point() and t.dtype != dtype:
            if t.numel() and float(t.abs().max()) > torch.finfo(dtype).max:
                raise UserError(where, f"tensor {k!r} holds values beyond {dtype} (max |w| {float(t.abs().max()):g});"
                                       " ship it with --dtype float32")
            t = t.to(dtype)
        out[k] = t
    return out


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    from training.model_file import read_model_meta

    read_model_meta(path, "--run")  # a missing, truncated or foreign file is refused here, naming it
    with safe_open(str(path), framework="pt", device="cpu") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def ship(run: Path, name: str, licence: str, out: Path, dtype: str = "float16", evaluation: Path | None = None,
         audit: Path | None = None, hardware: str | None = None, notes: Path | None = None) -> Path:
    """Write out/name/model.safetensors and out/name/README.md from the run in folder `run`; returns the folder."""
    from training.hardware import detect_hardware
    from training.model_card import build_card, render_card
    from training.model_file import file_sha256

    if not NAME_RE.match(name):
        raise UserError("--name", f"expected lower-case letters, digits, '.', '_', '-' (got {name!r})")
    if not licence.strip():
        raise UserError("--licence", "name the licence of the training data")
    if not out.is_dir():
        raise UserError("--out", f"{out} is not a folder")
    cfg = load_config(run / "config.yaml")
    weights, meta = _read(run / "model.safetensors")
    card = build_card(name, licence.strip(), run, cfg, hardware or detect_hardware(), evaluation, audit,
                      notes)
    weights = cast_weights(weights, DTYPES[dtype], "--dtype")
    folder = out / name
    folder.mkdir(exist_ok=True)
    save_tensors(folder / "model.safetensors", weights, {**meta, "card": json.dumps(card, sort_keys=True)},
                 "--out")
    digest = file_sha256(folder / "model.safetensors")  # the final file, as renamed: what users will check
    write_text_atomic(folder / "README.md", render_card(card, f"model.safetensors ({dtype})", digest), "--out")
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    folder = ship(Path(a.run), a.name, a.licence, Path(a.out), a.dtype, Path(a.eval) if a.eval else None,
                  Path(a.audit) if a.audit else None, a.hardware, Path(a.notes) if a.notes else None)
    size = (folder / "model.safetensors").stat().st_size / 1e6
    print(f"shipped {folder}/model.safetensors ({size:.1f} MB) and {folder}/README.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
