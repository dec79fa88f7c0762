"""The identity first stage: the diffusion runs on the signal itself."""
from __future__ import annotations

import torch

from .base import FirstStage


class IdentityFirstStage(FirstStage):
    """z = x. Any length works."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> the same tensor."""
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> the same tensor."""
        return z

    def latent_shape(self, channels: int, length: int) -> tuple[int, int]:
        return int(channels), int(length)
