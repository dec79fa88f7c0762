"""`model.type: timevae`: TimeVAE (Desai, Freeman, Wang & Beaver 2021), following the authors' code; unconditional.

Encoder: stride-2 Conv1d + ReLU layers (`hidden_channels`), flatten, linear -> (mu, log var) of z (latent_dim).
Decoder: the sum of interpretable blocks, each a function of z:
    level        dense(z) -> ReLU -> dense -> one value per channel, constant over time
    trend        dense(z) -> P coefficients per channel of the polynomial basis (t / L)**p, p = 1..P
    seasonality  per [m seasons, s samples]: dense(z) -> m values per channel; sample t takes season
                 (t // s) % m (e.g. CTG contractions every few minutes)
    residual     dense(z) -> (channels, L / 2**k) -> transposed convs mirroring the encoder (use_residual_conn)
Loss (per window; the authors sum over the batch): recon_weight * (sum of squared errors + sum over time of
the squared error of the channel mean) + KL(q(z|x) || N(0, I)).
Adaptation: the authors' residual decoder ends in flatten + dense(L * C), which for L = 2048 would hold hundreds
of millions of weights; here its last transposed conv outputs the C channels directly.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn

from .base import Baseline, NextBatch, SampleNoise, check_length


class TimeVAEDecoder(nn.Module):
    """z (B, latent) -> (B, C, L): level + trend + seasonality (+ residual) blocks."""

    def __init__(self, latent: int, channels: int, length: int, hidden: Sequence[int], trend_degree: int,
                 seasons: Sequence[Sequence[int]], residual: bool) -> None:
        super().__init__()
        self.channels, self.length = channels, length
        self.level = nn.Sequential(nn.Linear(latent, channels), nn.ReLU(), nn.Linear(channels, channels))
        self.trend = nn.Linear(latent, channels * trend_degree) if trend_degree else None
        t = torch.arange(length, dtype=torch.float32) / length
        self.register_buffer("poly", torch.stack([t ** p for p in range(1, trend_degree + 1)]) if trend_degree
                             else torch.zeros(0, length), persistent=False)       # (P, L)
        self.season_fc = nn.ModuleList(nn.Linear(latent, channels * m) for m, _ in seasons)
        for i, (m, s) in enumerate(seasons):
            self.register_buffer(f"season_idx{i}", (torch.arange(length) // s) % m, persistent=False)
        self.seasons = [(int(m), int(s)) for m, s in seasons]
        self.res_fc: Optional[nn.Linear] = None
        if residual:
            k = len(hidden)
            self.res_shape = (hidden[-1], length // 2 ** k)
            self.res_fc = nn.Linear(latent, hidden[-1] * self.res_shape[1])
            layers: list[nn.Module] = []
            chans = list(reversed(hidden))            # hidden[-1] ... hidden[0]
            for c_in, c_out in zip(chans, chans[1:]):
                layers += [nn.ConvTranspose1d(c_in, c_out, 4, 2, 1), nn.ReLU()]
            layers.append(nn.ConvTranspose1d(chans[-1], channels, 4, 2, 1))
            self.res_net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, c = len(z), self.channels
        out = self.level(z)[:, :, None].expand(b, c, self.length)
        if self.trend is not None:
            out = out + self.trend(z).view(b, c, -1) @ self.poly
        for i, fc in enumerate(self.season_fc):
            vals = fc(z).view(b, c, self.seasons[i][0])
            out = out + vals[:, :, getattr(self, f"season_idx{i}")]
        if self.res_fc is not None:
            out = out + self.res_net(self.res_fc(z).view(b, *self.res_shape))
        return out


class TimeVAE(Baseline):
    """TimeVAE: conv encoder, interpretable decoder."""

    type_name = "timevae"

    conditional = False

    def __init__(self, cfg: Any, channels: int, length: int, label_classes: Sequence[int]) -> None:
        super().__init__(channels, length, label_classes)
        hidden = list(cfg.hidden_channels)
        check_length(length, 2 ** len(hidden), "baseline.timevae.hidden_channels")
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = channels
        for h in hidden:
            layers += [nn.Conv1d(c_in, h, 3, 2, 1), nn.ReLU()]
            c_in = h
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.to_stats = nn.Linear(hidden[-1] * (length // 2 ** len(hidden)), 2 * cfg.latent_dim)
        self.decoder = TimeVAEDecoder(cfg.latent_dim, channels, length, hidden, cfg.trend_degree, cfg.seasons,
                                      cfg.residual)

    def make_optimizers(self, tc: Any) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.adam(self.parameters(), tc)}

    def losses(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, reconstruction, KL), each per window averaged over the batch; z = mu + sigma * eps."""
        mu, log_var = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        eps = torch.randn(mu.shape, generator=generator, device=generator.device).to(x.device)
        x_rec = self.decoder(mu + torch.exp(0.5 * log_var) * eps)
        rec = ((x - x_rec) ** 2).sum((1, 2)) + ((x.mean(1) - x_rec.mean(1)) ** 2).sum(1)
        kl = -0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum(1)
        return (self.cfg.recon_weight * rec + kl).mean(), rec.mean(), kl.mean()

    def train_step(self, next_batch: NextBatch, step: int, opts: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator, grad_clip: Optional[float]) -> dict[str, float]:
        loss, rec, kl = self.losses(next_batch()[0], generator)
        self.update(opts["vae"], loss, grad_clip)
        return {"loss": loss.item(), "reconstruction": rec.item(), "kl": kl.item()}

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training loss (negative ELBO with the reconstruction weight) on validation windows."""
        return self.losses(x, generator)[0]

    def generate(self, noise: SampleNoise, labels: torch.Tensor) -> torch.Tensor:
        return self.decoder(noise.normal(self.cfg.latent_dim))
