"""GAN / VAE baselines behind the diffusion models' train.py / generate.py interface (`model.type`):
gan (gan.py), wgan_gp (wgan_gp.py), lstm_gan (lstm_gan.py), timegan (timegan.py), timevae (timevae.py).
The interface is in base.py, the training task in train_loop.py, generate.py's part in generation.py;
hyperparameters in the `baseline` config section (baselines/config.py).

`BASELINES` is the registry (name -> class), as first_stage.FIRST_STAGES: the model files import base.py and
nothing here, so imports flow one way (tests/test_import_graph.py).
"""
from __future__ import annotations

from typing import Any, Sequence

from dataloader.errors import UserError

from .base import Baseline
from .gan import GAN
from .lstm_gan import LSTMGAN
from .timegan import TimeGAN
from .timevae import TimeVAE
from .wgan_gp import WGANGP

# `model.type` -> class; each class's `type_name` is its key
BASELINES: dict[str, type[Baseline]] = {cls.type_name: cls for cls in (GAN, WGANGP, LSTMGAN, TimeGAN, TimeVAE)}


def list_baselines() -> list[str]:
    """The baseline names, sorted."""
    return sorted(BASELINES)


def baseline_class(name: str) -> type[Baseline]:
    """The class of `model.type: name`; raises `UserError` (listing the valid names) for another name."""
    if name not in BASELINES:
        raise UserError("model.type", f"{name!r} is not a baseline; valid: {', '.join(sorted(BASELINES))}")
    return BASELINES[name]


def build_baseline(cfg: Any, channels: int, length: int, label_classes: Sequence[int]) -> Baseline:
    """The baseline `cfg.model.type` with its `cfg.baseline.<type>` hyperparameters (defaults when absent)."""
    from baselines.config import BaselineConfig

    name = cfg.model.type
    cls = baseline_class(name)
    section = cfg.get("baseline") or BaselineConfig()
    return cls(getattr(section, name), int(channels), int(length), [int(n) for n in label_classes])


__all__ = ["BASELINES", "Baseline", "baseline_class", "build_baseline", "list_baselines"]
