"""The training engine and its generic parts, shared by every model kind (diffusion, first stage, baselines).

    engine.py      the loop: run folder, resume and save, clock, log row, progress bar, epoch hooks
    data.py        the prepared file's train / val splits, their description and the batch order
    train_state.py resumable checkpoints (checkpoints/step-XXXXXXX/), the run folder's lock
    model_file.py  the inference file model.safetensors (EMA weights, config, data description)
    train_log.py   log.csv, one row per epoch
    lr_schedule.py warm-up + cosine / plateau / constant learning rate
    ema.py         exponential moving average of the weights
    data_order.py  the seeded, resumable, sharded order of training windows
Imports flow one way: diffusion/, first_stage/ and baselines/ import training/, never the reverse.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from dataloader.errors import UserError

# model.type -> "module:function" of the kind's training entry, called by train.py as
#   entry(cfg, stage, *, retrain, resume, plot_fns, progress) -> [TrainResult, or None for a skipped stage]
# The entries are named, not imported: diffusion/ and baselines/ import training/, so training/ importing them
# would be a circle. tests/test_train_walk.py checks that the names match the config's model types.
_STAGES = "diffusion.stages:run_stages"            # learned first stage(s), diffusion model, super-resolution
_BASELINE = "baselines.train_loop:train_baseline"  # one run of a GAN / VAE baseline
MODEL_KINDS: dict[str, str] = {
    "diffusion": _STAGES,
    "gan": _BASELINE,
    "wgan_gp": _BASELINE,
    "lstm_gan": _BASELINE,
    "timegan": _BASELINE,
    "timevae": _BASELINE,
    "autoencoder": _STAGES,                        # a learned first stage alone
}


def trainer(kind: str) -> Callable[..., list[Any]]:
    """The training entry of model kind `kind` (see MODEL_KINDS); UserError at model.type for another name."""
    if kind not in MODEL_KINDS:
        raise UserError("model.type", f"unknown model type {kind!r}; valid: {', '.join(MODEL_KINDS)}")
    module, name = MODEL_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)
