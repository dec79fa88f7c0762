"""1-D patch discriminator of the VQ-GAN (Esser et al. 2021; the pix2pix PatchGAN of Isola et al. 2017 in 1-D).

Strided convs with LeakyReLU give one logit per overlapping patch of the input (receptive field grows with
`layers`); the hinge loss is averaged over patches, so the discriminator judges local texture (FHR
variability, QRS shape) rather than the whole window.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator1D(nn.Module):
    """(B, C, L) -> (B, 1, ~L / 2**layers) patch logits."""

    def __init__(self, channels: int, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv1d(channels, hidden, 15, stride=2, padding=7), nn.LeakyReLU(0.2)]
        ch = hidden
        for i in range(1, layers):
            nxt = hidden * min(2 ** i, 8)
            mods += [nn.Conv1d(ch, nxt, 15, stride=2, padding=7), nn.GroupNorm(8 if nxt % 8 == 0 else 1, nxt),
                     nn.LeakyReLU(0.2)]
            ch = nxt
        mods += [nn.Conv1d(ch, ch, 15, padding=7), nn.LeakyReLU(0.2), nn.Conv1d(ch, 1, 15, padding=7)]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss (Lim & Ye 2017), as in taming-transformers."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
