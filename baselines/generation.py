"""generate.py's part for baselines: which labels, the run's description, and loading the model file.

Sampling and the output file are diffusion/generation.py's `generate_file` (the baselines have the same
`sample(n, labels, seed=, start_index=, batch_size=)` method), so the HDF5 output is the same contract: physical
units, labels, attributes, written batch by batch and continued after an interruption. The attributes say
sampler = the model type, steps = 1 (one generator pass) and guidance 1 (none).

Unconditional baselines (lstm_gan, timegan, timevae) cannot follow labels: `--samples N` writes label code -1
("no class") in every /labels row, and a class CSV is refused (exit 2) rather than written with labels the
samples do not have.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch

from dataloader.class_csv import ConstantPlan, LabelPlan
from dataloader.config import Config
from dataloader.errors import UserError
from training.model_file import ModelMeta, load_model_file
from diffusion.generation import SampleArgs, parse_count, plan_labels

from . import baseline_class, build_baseline
from .base import Baseline


def is_baseline(meta: ModelMeta) -> bool:
    """The model file holds a baseline (its stored model.type is not diffusion)."""
    return meta.config.model.type != "diffusion"


def is_conditional(meta: ModelMeta) -> bool:
    return bool(baseline_class(meta.config.model.type).conditional) and bool(meta.data.label_names)


def plan_baseline_labels(samples: str, meta: ModelMeta, seed: int) -> tuple[LabelPlan, Optional[str]]:
    """The plan of the N label rows for `--samples` and a note to print (None: nothing to say).

    Conditional models: as for diffusion (diffusion.generation.plan_labels). Unconditional ones: rows of -1
    (the same limits on N); a class CSV is a UserError.
    """
    name = meta.config.model.type
    if is_conditional(meta):
        return plan_labels(samples, meta, seed), None
    n = parse_count(samples)
    if n is None:
        raise UserError("--samples", f"{name} is an unconditional model: it cannot generate given classes "
                                     f"(got {str(samples).strip()!r}); give a number of windows (gan and wgan_gp "
                                     "take classes)")
    note = (f"note: {name} is unconditional: /labels holds -1 (no class) for every window"
            if meta.data.label_names else None)
    return ConstantPlan(n, len(meta.data.label_names), -1), note


def baseline_sample_args(meta: ModelMeta, seed: int, batch_size: int) -> SampleArgs:
    """The run's description in the output file: one generator pass, no guidance."""
    return SampleArgs(sampler=meta.config.model.type, steps=1, guidance_scale=1.0, seed=seed, batch_size=batch_size)


def load_baseline_file(path: str | os.PathLike, cfg: Optional[Config] = None,
                       device: str | torch.device = "cpu") -> tuple[Baseline, ModelMeta]:
    """Rebuild a baseline from its model file's stored config and load its (EMA) weights (eval mode)."""
    def build(meta: ModelMeta) -> Any:
        return build_baseline(meta.config, len(meta.data.channels), meta.data.window_len, meta.data.label_classes)

    model, meta = load_model_file(path, cfg, device, build=build)
    return model, meta  # type: ignore[return-value]
