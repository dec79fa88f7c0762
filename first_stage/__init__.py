"""First stages: compressors with encode/decode that the diffusion model runs behind (docs/design.md section 3).

`build_first_stage(cfg, channels, length)` maps the config's short name to a class (docs/design.md section 7.6).
"""
from __future__ import annotations

from typing import Any, Callable

from dataloader.errors import UserError

from .base import FirstStage
from .identity import IdentityFirstStage
from .learned import LearnedFirstStage
from .sampling import SamplingFirstStage
from .vae import VAEFirstStage
from .vqvae import VQVAEFirstStage

# name -> constructor(cfg, channels, length); model.first_stage.type is checked against these names at load
FIRST_STAGES: dict[str, Callable[[Any, int, int], FirstStage]] = {
    "identity": lambda cfg, c, n: IdentityFirstStage(c, n),
    "sampling": lambda cfg, c, n: SamplingFirstStage(c, n, factor=cfg.factor, interp=cfg.interp),
    "vae": lambda cfg, c, n: VAEFirstStage(c, n, cfg),
    "vqvae": lambda cfg, c, n: VQVAEFirstStage(c, n, cfg),
    "vqgan": lambda cfg, c, n: VQVAEFirstStage(c, n, cfg, gan=True),
}


def build_first_stage(cfg: Any, channels: int, length: int) -> FirstStage:
    """The first stage named by `cfg.type` (a `model.first_stage` config section) for (C, L) signals.

    Raises `UserError` for an unknown name (listing the valid ones) or a length it cannot encode.
    """
    name = getattr(cfg, "type", None)
    if name not in FIRST_STAGES:
        raise UserError("model.first_stage.type", f"unknown first stage {name!r}; valid: {', '.join(FIRST_STAGES)}")
    return FIRST_STAGES[name](cfg, int(channels), int(length))


def load_trained_first_stages(model: Any, channels: Any, fs: float, window_len: int) -> None:
    """Load the trained file of every learned first stage inside `model` (a module) and freeze it; fixed
    stages need nothing. channels: [{"name", ...}] of the data. Raises `UserError` on a mismatch."""
    for m in model.modules():
        if isinstance(m, LearnedFirstStage):
            m.load_trained(channels, fs, window_len)


__all__ = ["FirstStage", "IdentityFirstStage", "SamplingFirstStage", "LearnedFirstStage", "VAEFirstStage",
           "VQVAEFirstStage", "FIRST_STAGES", "build_first_stage", "load_trained_first_stages"]
