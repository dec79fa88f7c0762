"""The first-stage interface: a compressor the diffusion model runs behind (docs/design.md section 3).

`encode(x (B, C, L)) -> z (B, C', L')`, `decode(z) -> x`, `latent_shape(C, L) -> (C', L')`,
`loss(x) -> dict` of named scalar losses (empty for fixed first stages), `trainable`.
Fixed stages (identity, sampling) have no parameters; learned ones (VAE, VQ-VAE) train on `loss`.
Every stage works on any device and batch size: the device follows the input tensor.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from dataloader.errors import UserError


class FirstStage(nn.Module, ABC):
    """Base class of first stages. Subclasses set `trainable` and implement encode/decode/latent_shape."""

    trainable: bool = False

    def __init__(self, channels: int, length: int) -> None:
        super().__init__()
        self.channels = int(channels)
        self.length = int(length)

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) signal -> (B, C', L') latent."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C', L') latent -> (B, C, L) signal."""

    @abstractmethod
    def latent_shape(self, channels: int, length: int) -> tuple[int, int]:
        """(C', L') of the latent for a (C, L) signal."""

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named training losses on a batch (B, C, L); fixed stages have none."""
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)): the reconstruction (B, C, L)."""
        return self.decode(self.encode(x))


def compressed_length(length: int, factor: int, what: str) -> int:
    """length // factor for a first stage that compresses time by `factor` (`what` names it in the error);
    raises `UserError` at model.first_stage.factor, with lengths that work, when factor does not divide it."""
    if length % factor:
        lo = length // factor * factor
        raise UserError("model.first_stage.factor",
                        f"window length {length} is not divisible by {what} {factor}; lengths that work are "
                        f"multiples of {factor} (e.g. {lo or factor} or {lo + factor})")
    return length // factor
