"""The audited target model and the LiRA shadow models, trained one after another by the project's `train`.

Each model is `diffusion.train_loop.train` on the config's `model` and `train` sections with two keys
replaced: `train.out_dir` (a folder under privacy.out_dir) and `train.patients` (its patients of the
population). A model whose folder already holds a finished model file is reused; one with checkpoints
continues from the latest (exact resume), so an interrupted audit loses at most one epoch of one model.
Shadow k of an audit with K shadows lives in shadows/K{K:02d}-{k:02d} (the keep matrix depends on K).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Optional

from dataloader.config import Config, config_from_text
from dataloader.errors import UserError


def model_config(cfg: Config, out_dir: Path, patients: list[str], dp: bool = True) -> Config:
    """`cfg` with train.out_dir and train.patients replaced (and train.dp dropped when dp=False)."""
    import yaml

    raw = copy.deepcopy(cfg.raw)
    raw["train"]["out_dir"] = str(out_dir)
    raw["train"]["patients"] = list(patients)
    if not dp:
        raw["train"].pop("dp", None)
    return config_from_text(yaml.safe_dump(raw, sort_keys=False), cfg.path or "config")


def finished(out_dir: Path, max_steps: int) -> bool:
    """True when out_dir holds a model file of the last step (read from its metadata)."""
    f = out_dir / "model.safetensors"
    if not f.is_file():
        return False
    from diffusion.checkpoint import read_model_meta

    return read_model_meta(f).step >= max_steps


def train_model(cfg: Config, out_dir: Path, patients: list[str], log: Callable[[str], None] = print,
                dp: bool = True) -> Path:
    """Train (or finish, or reuse) one model on `patients`; returns its model file."""
    from diffusion.train_loop import train
    from training.train_state import list_checkpoints

    mc = model_config(cfg, out_dir, patients, dp)
    if finished(out_dir, mc.train.max_steps):
        stored = (out_dir / "config.yaml").read_text() if (out_dir / "config.yaml").is_file() else ""
        if stored and sorted(config_from_text(stored, str(out_dir)).train.patients or []) != sorted(patients):
            raise UserError(str(out_dir), "holds a model trained on other patients; remove it or choose another "
                                          "privacy.out_dir")
        log(f"{out_dir}: finished model reused")
        return out_dir / "model.safetensors"
    resume = "latest" if list_checkpoints(out_dir) else None
    log(f"{out_dir}: training on {len(patients)} patients" + (" (resuming)" if resume else ""))
    _reset_accelerate()
    train(mc, resume=resume, progress=False)
    return out_dir / "model.safetensors"


def dp_meta(model_file: Path) -> Optional[dict]:
    """The model file's "dp" metadata (epsilon, delta, unit, ... of DP-SGD training) or None."""
    import json

    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("dp", "") or "null")


def shadow_dir(root: Path, n_shadows: int, k: int) -> Path:
    return root / "shadows" / f"K{n_shadows:02d}-{k:02d}"


def train_shadows(cfg: Config, root: Path, keep_rows: list[list[str]], log: Callable[[str], None] = print,
                  only: Optional[list[int]] = None) -> list[Path]:
    """Train the K shadow models one after another (each resumable); returns their model files."""
    K = len(keep_rows)
    files = []
    for k, pats in enumerate(keep_rows):
        if only is not None and k not in only:
            continue
        files.append(train_model(cfg, shadow_dir(root, K, k), pats, log, dp=True))
    return files


def _reset_accelerate() -> None:
    """accelerate keeps process-wide singletons; each model of an audit needs a fresh Accelerator."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()
