"""The diffusion model's inference file: training/model_file.py's format, loaded with `build_diffusion`.

The file format (metadata, checks, `DataSpec`) belongs to every model kind and lives in training/; this
module adds only the diffusion default of `load_model_file`. Its other names are re-exported because
generate.py, evaluation/privacy, superres and the tests read model files through this path.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import torch

from dataloader.config import Config
from training import model_file
from training.model_file import (DataSpec, ModelMeta, check_against_config, file_sha256,  # noqa: F401
                                 package_version, read_model_meta, save_model_file)


def _build_diffusion(meta: ModelMeta) -> torch.nn.Module:
    from .model import build_diffusion

    return build_diffusion(meta.config.model, len(meta.data.channels), meta.data.window_len,
                           meta.data.label_classes)


def load_model_file(path: str | os.PathLike, cfg: Optional[Config] = None,
                    device: str | torch.device = "cpu",
                    build: Optional[Callable[[ModelMeta], torch.nn.Module]] = None) -> tuple[torch.nn.Module, ModelMeta]:
    """`training.model_file.load_model_file` with the diffusion model as the default `build`; returns the
    model in eval mode on `device` and its metadata."""
    return model_file.load_model_file(path, cfg, device, build or _build_diffusion)
