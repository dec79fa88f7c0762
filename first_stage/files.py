"""The trained first-stage file `<model.first_stage.out_dir>/first_stage.safetensors`.

safetensors only. Metadata (string -> string):
    format            "physiodiff-first-stage-1"
    first_stage       JSON of the `model.first_stage` config section it was trained with
    data              JSON: channels (name, unit, range), fs, window_len
    scale             the latent scale factor (1 / std of the training latents), also the tensor `scale`
    step, config      training step and the resolved config text of the run
A diffusion model loads it through `LearnedFirstStage.load_trained`, which checks channels, window length
and architecture against the diffusion config (docs/design.md section 6: a `UserError` naming both sides).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from dataloader.tensor_file import save_tensors
from dataloader.errors import UserError

FORMAT = "physiodiff-first-stage-1"
FILE_NAME = "first_stage.safetensors"


def first_stage_file(out_dir: str | os.PathLike) -> Path:
    """The trained file inside a first-stage training folder."""
    return Path(out_dir) / FILE_NAME


def save_first_stage_file(path: str | os.PathLike, weights: dict[str, torch.Tensor], stage_config: dict[str, Any],
                          data: dict[str, Any], scale: float, step: int, config_text: str) -> None:
    """Write the file atomically (temporary name in the same folder, then rename)."""
    meta = {"format": FORMAT, "first_stage": json.dumps(stage_config), "data": json.dumps(data),
            "scale": repr(float(scale)), "step": str(int(step)), "config": config_text}
    save_tensors(path, weights, meta, "model.first_stage.out_dir")


def read_first_stage_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata with parsed JSON fields, weights) of a first-stage file. Missing or foreign: `UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(str(p), "first-stage file not found: train it first (python train.py --config ... "
                                "--stage first_stage)")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(str(p), f"not a readable safetensors file, truncated or damaged? ({e})") from None
    if meta.get("format") != FORMAT:
        raise UserError(str(p), f"not a physiodiff first-stage file (expected metadata format {FORMAT})")
    try:
        meta["first_stage"] = json.loads(meta["first_stage"])
        meta["data"] = json.loads(meta["data"])
        meta["scale"] = float(meta["scale"])
    except (KeyError, ValueError) as e:
        raise UserError(str(p), f"damaged first-stage metadata ({e})") from None
    return meta, weights
