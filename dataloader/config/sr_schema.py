"""Schema of the `sr` section: latent super-resolution after a coarse model (docs/design.md section 3).

The config's `data` / `model` / `train` describe the coarse (low-resolution) model, trained and sampled as
usual. `sr` adds a second diffusion model on the full-rate latent of `sr.model.first_stage`, conditioned on
the latent of the coarse signal interpolated to the full rate (concatenated on the channel axis).
`python train.py --stage sr` trains it; generate.py runs both stages when this section is present.
Rates: the coarse model's rate must divide the full rate (an integer up-sampling factor), and the coarse
window times that factor must be the full-rate window.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import UserError
from .loader import register_section
from .model_schema import ModelConfig
from .typed import limits


@dataclass
class SRTrainConfig:
    """Training of the super-resolution model. Keys left null take the `train` section's value; every other
    training setting comes from `train` too."""

    out_dir: str                                # folder of the SR run (checkpoints/, log.csv, plots/, model.safetensors)
    max_steps: Optional[int] = field(default=None, metadata=limits(gt=0))  # optimizer steps (null: train.max_steps)
    max_minutes: Optional[float] = field(default=None, metadata=limits(gt=0))  # wall-clock cap (null: train.max_minutes)
    batch_size: Optional[int] = field(default=None, metadata=limits(gt=0))  # windows per micro-batch (null: train's)
    lr: Optional[float] = field(default=None, metadata=limits(gt=0))  # peak learning rate (null: train.lr)
    epoch_steps: Optional[int] = field(default=None, metadata=limits(gt=0))  # steps per epoch (null: train's)


@dataclass
class SRConfig:
    """Super-resolution stage: full-rate data, the SR diffusion model and its training run."""

    train: SRTrainConfig                        # where and how long the SR model trains
    # prepared file at the full rate (null: data.prepared, when the coarse model's first stage does the
    # down-sampling, e.g. a sampling first stage on the same 4 Hz windows)
    prepared: Optional[str] = None
    model: ModelConfig = field(default_factory=ModelConfig)  # the SR diffusion model (first stage, UNet, diffusion)

    def check(self, where: str) -> None:
        if self.model.type != "diffusion":
            raise UserError(f"{where}.model.type", f"the SR model is a diffusion model (got {self.model.type!r})")


register_section("sr", SRConfig, required=False)
