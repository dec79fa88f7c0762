"""Convolutional encoder and decoder of the learned first stages (VAE, VQ-VAE), 1-D.

Encoder: conv stem, then per level `num_res_blocks` residual blocks (GroupNorm + SiLU + conv3) and a
strided conv (x 1/2), log2(factor) levels, then GroupNorm + SiLU + conv to `out_channels`.
Decoder: the mirror image with nearest-neighbour x 2 upsampling + conv (no transposed convs: they leave
checkerboard ripple, which in a time series is a spurious tone at fs / 2). Fully convolutional: any length
divisible by `factor` works, so training may use crops shorter than the windows.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _groups(ch: int) -> int:
    """GroupNorm groups: 8 when they divide the channels, else 1 (LayerNorm-like)."""
    return 8 if ch % 8 == 0 else 1


class ResBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x)))))), channels kept."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(_groups(ch), ch), nn.SiLU(), nn.Conv1d(ch, ch, 3, padding=1),
                                  nn.GroupNorm(_groups(ch), ch), nn.SiLU(), nn.Conv1d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def levels_of(factor: int) -> int:
    """log2(factor); the factor of a learned first stage must be a power of 2."""
    n = int(round(math.log2(factor))) if factor >= 1 else -1
    if n < 0 or 2 ** n != factor:
        raise ValueError(f"factor must be a power of 2 (got {factor})")
    return n


def _widths(hidden: int, levels: int) -> list[int]:
    """Channels per level: hidden, doubling every level, capped at 4 x hidden."""
    return [hidden * min(2 ** i, 4) for i in range(levels + 1)]


class Encoder1D(nn.Module):
    """(B, C, L) -> (B, out_channels, L / factor)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, factor: int, num_res_blocks: int) -> None:
        super().__init__()
        n = levels_of(factor)
        w = _widths(hidden, n)
        layers: list[nn.Module] = [nn.Conv1d(in_channels, w[0], 7, padding=3)]
        for i in range(n):
            layers += [ResBlock(w[i]) for _ in range(num_res_blocks)]
            layers.append(nn.Conv1d(w[i], w[i + 1], 4, stride=2, padding=1))
        layers += [ResBlock(w[n]) for _ in range(num_res_blocks)]
        layers += [nn.GroupNorm(_groups(w[n]), w[n]), nn.SiLU(), nn.Conv1d(w[n], out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder1D(nn.Module):
    """(B, in_channels, L') -> (B, out_channels, L' * factor). `last` is the final conv (VQ-GAN's adaptive
    weight differentiates through it)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, factor: int, num_res_blocks: int) -> None:
        super().__init__()
        n = levels_of(factor)
        w = _widths(hidden, n)[::-1]
        layers: list[nn.Module] = [nn.Conv1d(in_channels, w[0], 3, padding=1)]
        layers += [ResBlock(w[0]) for _ in range(num_res_blocks)]
        for i in range(n):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(w[i], w[i + 1], 3, padding=1)]
            layers += [ResBlock(w[i + 1]) for _ in range(num_res_blocks)]
        layers += [nn.GroupNorm(_groups(w[n]), w[n]), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.last = nn.Conv1d(w[n], out_channels, 7, padding=3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.last(self.net(z))
