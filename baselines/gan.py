"""`model.type: gan`: a conditional DCGAN-style 1-D GAN (Radford et al. 2016; Mirza & Osindero 2014), the classic
baseline of ECG generation. Noise vector z ~ N(0, I) plus the label embedding -> signal; binary cross-entropy
loss with the non-saturating generator loss (Goodfellow et al. 2014): each step updates the discriminator
`d_steps` times on real windows (label 1) and generated ones (label 0), then the generator once on a fresh batch
(its fakes should be classified 1). Networks: baselines/conv_nets.py; hyperparameters: `baseline.gan`.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from .base import Baseline, NextBatch, SampleNoise, bce_logits, check_length
from .conv_nets import ConvDiscriminator, ConvGenerator


class GAN(Baseline):
    """Conditional DCGAN: `generator` (z, labels) -> x, `discriminator` (x, labels) -> logit."""

    type_name = "gan"

    conditional = True
    disc_norm = "batch"

    def __init__(self, cfg: Any, channels: int, length: int, label_classes: Sequence[int]) -> None:
        super().__init__(channels, length, label_classes)
        check_length(length, 2 ** cfg.num_layers, f"baseline.{self.type_name}.num_layers")
        self.cfg = cfg
        self.latent_dim = cfg.latent_dim
        labels = label_classes if label_classes else None  # no label columns: an unconditional GAN
        self.generator = ConvGenerator(cfg.latent_dim, channels, length, cfg.num_layers, cfg.base_channels,
                                       cfg.max_channels, labels, cfg.label_dim)
        self.discriminator = ConvDiscriminator(channels, length, cfg.num_layers, cfg.base_channels,
                                               cfg.max_channels, self.disc_norm, labels, cfg.label_dim)

    def make_optimizers(self, tc: Any) -> dict[str, torch.optim.Optimizer]:
        return {"discriminator": self.adam(self.discriminator.parameters(), tc),
                "generator": self.adam(self.generator.parameters(), tc)}

    def fake(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Generated windows (B, C, L) for `labels`, noise from the training generator."""
        z = torch.randn(len(labels), self.latent_dim, generator=generator, device=generator.device)
        return self.generator(z.to(labels.device), labels)

    def d_loss(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            fake = self.fake(y, generator)
        return bce_logits(self.discriminator(x, y), 1.0) + bce_logits(self.discriminator(fake, y), 0.0)

    def train_step(self, next_batch: NextBatch, step: int, opts: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator, grad_clip: Optional[float]) -> dict[str, float]:
        for _ in range(self.cfg.d_steps):
            x, y = next_batch()
            d = self.d_loss(x, y, generator)
            self.update(opts["discriminator"], d, grad_clip)
        _, y = next_batch()  # the generator learns on the labels of fresh training windows
        g = bce_logits(self.discriminator(self.fake(y, generator), y), 1.0)
        self.update(opts["generator"], g, grad_clip)
        return {"g_loss": g.item(), "d_loss": d.item()}

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Discriminator BCE on validation windows and as many fixed-noise fakes (low: D wins)."""
        return self.d_loss(x, labels, generator)

    def generate(self, noise: SampleNoise, labels: torch.Tensor) -> torch.Tensor:
        return self.generator(noise.normal(self.latent_dim), labels)
