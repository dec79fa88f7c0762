"""DCGAN-style 1-D networks (Radford, Metz & Chintala 2016) shared by gan, wgan_gp and lstm_gan.

ConvGenerator: z (B, latent) [+ label embedding] -> linear -> (B, ch, L / 2**n) -> n stride-2 transposed convs
(kernel 4, padding 1: each doubles the length), batch norm + ReLU between them, tanh on the output (C, L).
ConvDiscriminator: (B, C, L) [+ label embedding broadcast over time as extra input channels, the conditional
GAN of Mirza & Osindero 2014] -> n stride-2 convs with LeakyReLU(0.2) -> linear -> one logit (or critic value)
per window. Channels double per layer from `base_channels` (at full length) up to `max_channels`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .base import LabelEmbedding


def channel_plan(n_layers: int, base: int, cap: int) -> list[int]:
    """Channels at lengths L, L/2, ..., L/2**(n_layers-1): base * 2**i capped at `cap`."""
    return [min(cap, base * 2 ** i) for i in range(n_layers)]


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(ch)
    if kind == "layer":  # one group = layer norm over (channels, time) of each window
        return nn.GroupNorm(1, ch)
    return nn.Identity()


class ConvGenerator(nn.Module):
    """z (B, latent_dim) and labels (B, n_labels) -> (B, C, L) in (-1, 1)."""

    def __init__(self, latent_dim: int, channels: int, length: int, n_layers: int, base: int, cap: int,
                 label_classes: Optional[Sequence[int]] = None, label_dim: int = 16) -> None:
        super().__init__()
        ch = channel_plan(n_layers, base, cap)        # ch[i] at length L / 2**i
        self.l0, self.c0 = length // 2 ** n_layers, ch[-1]
        self.embed = LabelEmbedding(label_classes, label_dim) if label_classes is not None else None
        z_in = latent_dim + (label_dim if self.embed is not None else 0)
        self.fc = nn.Linear(z_in, self.c0 * self.l0)
        self.bn0 = nn.Sequential(nn.BatchNorm1d(self.c0), nn.ReLU())
        layers: list[nn.Module] = []
        for i in reversed(range(n_layers)):           # length L / 2**(i+1) -> L / 2**i
            c_in = ch[min(i + 1, n_layers - 1)]
            if i == 0:
                layers += [nn.ConvTranspose1d(c_in, channels, 4, 2, 1), nn.Tanh()]
            else:
                layers += [nn.ConvTranspose1d(c_in, ch[i], 4, 2, 1, bias=False), nn.BatchNorm1d(ch[i]), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        h = self.bn0(self.fc(z).view(len(z), self.c0, self.l0))
        return self.net(h)


class ConvDiscriminator(nn.Module):
    """(B, C, L) and labels (B, n_labels) -> (B,) logits / critic values. `norm`: batch | layer | none."""

    def __init__(self, channels: int, length: int, n_layers: int, base: int, cap: int, norm: str = "batch",
                 label_classes: Optional[Sequence[int]] = None, label_dim: int = 16) -> None:
        super().__init__()
        ch = channel_plan(n_layers, base, cap)
        self.embed = LabelEmbedding(label_classes, label_dim) if label_classes is not None else None
        c_in = channels + (label_dim if self.embed is not None else 0)
        layers: list[nn.Module] = []
        for i in range(n_layers):                     # length L / 2**i -> L / 2**(i+1)
            layers.append(nn.Conv1d(c_in, ch[i], 4, 2, 1, bias=(i == 0 or norm == "none")))
            if i > 0:  # DCGAN: no normalisation on the first layer
                layers.append(_norm(norm, ch[i]))
            layers.append(nn.LeakyReLU(0.2))
            c_in = ch[i]
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(ch[-1] * (length // 2 ** n_layers), 1)

    def forward(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.embed is not None:
            e = self.embed(labels)
            x = torch.cat([x, e[:, :, None].expand(-1, -1, x.shape[-1])], dim=1)
        return self.head(self.net(x).flatten(1)).squeeze(1)
