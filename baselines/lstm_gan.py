"""`model.type: lstm_gan`: BiLSTM generator with convolutional output layers and a convolutional discriminator
(after Zhu et al. 2019, "Electrocardiogram generation with a bidirectional LSTM-CNN generative adversarial
network"); unconditional, binary cross-entropy loss (non-saturating generator loss).

Generator: a noise sequence z (B, T, latent_dim), T = L / 2**upsample_layers, through a bidirectional LSTM
(B, T, 2 * hidden), then `upsample_layers` stride-2 transposed convs (batch norm + ReLU) that bring it to length
L, and a final conv to C channels with tanh. The LSTM carries the slow structure (baseline, contractions),
the conv layers the sample-level texture. Discriminator: baselines/conv_nets.ConvDiscriminator.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn

from .base import Baseline, NextBatch, SampleNoise, bce_logits, check_length
from .conv_nets import ConvDiscriminator


class BiLSTMGenerator(nn.Module):
    """z (B, T, latent_dim) -> (B, C, T * 2**upsample_layers) in (-1, 1)."""

    def __init__(self, latent_dim: int, hidden: int, layers: int, upsample: int, conv_ch: int, channels: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(latent_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        convs: list[nn.Module] = [nn.Conv1d(2 * hidden, conv_ch, 3, padding=1), nn.BatchNorm1d(conv_ch), nn.ReLU()]
        for _ in range(upsample):
            convs += [nn.ConvTranspose1d(conv_ch, conv_ch, 4, 2, 1, bias=False), nn.BatchNorm1d(conv_ch), nn.ReLU()]
        convs += [nn.Conv1d(conv_ch, channels, 5, padding=2), nn.Tanh()]
        self.convs = nn.Sequential(*convs)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(z)
        return self.convs(h.transpose(1, 2))


class LSTMGAN(Baseline):
    """Unconditional BiLSTM-CNN GAN."""

    type_name = "lstm_gan"

    conditional = False

    def __init__(self, cfg: Any, channels: int, length: int, label_classes: Sequence[int]) -> None:
        super().__init__(channels, length, label_classes)
        check_length(length, 2 ** max(cfg.upsample_layers, cfg.disc_layers), "baseline.lstm_gan")
        self.cfg = cfg
        self.steps = length // 2 ** cfg.upsample_layers
        self.generator = BiLSTMGenerator(cfg.latent_dim, cfg.hidden, cfg.lstm_layers, cfg.upsample_layers,
                                         cfg.conv_channels, channels)
        self.discriminator = ConvDiscriminator(channels, length, cfg.disc_layers, cfg.disc_channels,
                                               cfg.max_channels, "batch")

    def make_optimizers(self, tc: Any) -> dict[str, torch.optim.Optimizer]:
        return {"discriminator": self.adam(self.discriminator.parameters(), tc),
                "generator": self.adam(self.generator.parameters(), tc)}

    def fake(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        z = torch.randn(n, self.steps, self.cfg.latent_dim, generator=generator, device=generator.device)
        return self.generator(z.to(device))

    def d_loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            fake = self.fake(len(x), generator, x.device)
        return bce_logits(self.discriminator(x), 1.0) + bce_logits(self.discriminator(fake), 0.0)

    def train_step(self, next_batch: NextBatch, step: int, opts: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator, grad_clip: Optional[float]) -> dict[str, float]:
        x, _ = next_batch()
        d = self.d_loss(x, generator)
        self.update(opts["discriminator"], d, grad_clip)
        g = bce_logits(self.discriminator(self.fake(len(x), generator, x.device)), 1.0)
        self.update(opts["generator"], g, grad_clip)
        return {"g_loss": g.item(), "d_loss": d.item()}

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Discriminator BCE on validation windows and as many fixed-noise fakes (low: D wins)."""
        return self.d_loss(x, generator)

    def generate(self, noise: SampleNoise, labels: torch.Tensor) -> torch.Tensor:
        return self.generator(noise.normal(self.steps, self.cfg.latent_dim))
