"""First stages: compressors with encode/decode that the diffusion model runs behind (DESIGN.md section 3).

`build_first_stage(cfg, channels, length)` maps the config's short name to a class (DESIGN.md section 7.6).
"""
from __future__ import annotations

from typing import Any, Callable

from dataloader.errors import UserError

from .base import FirstStage
from .identity import IdentityFirstStage
from .sampling import SamplingFirstStage

# name -> constructor(cfg, channels, length); names must match dataloader.config.model_schema.FIRST_STAGE_TYPES
FIRST_STAGES: dict[str, Callable[[Any, int, int], FirstStage]] = {
    "identity": lambda cfg, c, n: IdentityFirstStage(c, n),
    "sampling": lambda cfg, c, n: SamplingFirstStage(c, n, factor=cfg.factor, interp=cfg.interp),
}


def build_first_stage(cfg: Any, channels: int, length: int) -> FirstStage:
    """The first stage named by `cfg.type` (a `model.first_stage` config section) for (C, L) signals.

    Raises `UserError` for an unknown name (listing the valid ones) or a length it cannot encode.
    """
    name = getattr(cfg, "type", None)
    if name not in FIRST_STAGES:
        raise UserError("model.first_stage.type", f"unknown first stage {name!r}; valid: {', '.join(FIRST_STAGES)}")
    return FIRST_STAGES[name](cfg, int(channels), int(length))


__all__ = ["FirstStage", "IdentityFirstStage", "SamplingFirstStage", "FIRST_STAGES", "build_first_stage"]
