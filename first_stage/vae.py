"""The VAE first stage (Kingma & Welling 2014; the KL-regularised autoencoder of Rombach et al. 2022).

The encoder predicts a diagonal Gaussian posterior (mean, log-variance) per latent sample; training decodes
a reparameterised draw and adds `kl_weight` x KL(q(z|x) || N(0, I)) (a small weight, e.g. 1e-6 as in
latent diffusion, keeps the latent close to the data while bounding its scale). `encode` returns the
posterior mean (deterministic: latent diffusion trains on the same latents every epoch).
"""
from __future__ import annotations

from typing import Any

import torch

from .learned import LearnedFirstStage
from .nets import Decoder1D, Encoder1D


class VAEFirstStage(LearnedFirstStage):
    """(B, C, L) <-> (B, latent_channels, L / factor)."""

    def __init__(self, channels: int, length: int, cfg: Any) -> None:
        super().__init__(channels, length, cfg)
        self.kl_weight = float(cfg.kl_weight)
        self.encoder = Encoder1D(channels, 2 * self.latent_channels, cfg.hidden_channels, self.factor,
                                 cfg.num_res_blocks)
        self.decoder = Decoder1D(self.latent_channels, channels, cfg.hidden_channels, self.factor,
                                 cfg.num_res_blocks)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance), each (B, C', L'); log-variance clamped to [-30, 20] as in LDM."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def _encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def loss(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """{"loss", "rec", "ffl", "kl"} on a batch x (B, C, L); the draw uses the global RNG."""
        mean, logvar = self.posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        parts = self.rec(self.decoder(z), x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2)).mean()
        parts["kl"] = kl
        parts["loss"] = parts["rec"] + self.rec.ffl_weight * parts["ffl"] + self.kl_weight * kl
        return parts
