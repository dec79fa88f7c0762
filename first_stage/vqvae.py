"""The VQ-VAE first stage (van den Oord et al. 2017) and its adversarial variant, the VQ-GAN (Esser et al. 2021).

encode: the continuous encoder output z_e (before quantisation), scaled. The diffusion model runs on it,
and decode quantises to the nearest codes before the decoder ("VQ-regularised" latent diffusion of
Rombach et al. 2022: the quantiser absorbs small errors of the generated latent).
loss: reconstruction (L1/L2 + focal frequency, first_stage/losses.py) + commitment (+ codebook loss with
straight-through updates); see first_stage/quantizer.py for EMA updates and dead-code restarts.
VQ-GAN (type vqgan): a 1-D patch discriminator (first_stage/discriminator.py), switched on at step
`disc_start`; the generator's adversarial term -mean(D(x_hat)) is weighted adaptively (Esser et al. 2021,
eq. 7): lambda = ||grad_last(L_rec)|| / (||grad_last(L_adv)|| + 1e-4), clamped to [0, 1e4], times
`disc_weight`, where grad_last is the gradient w.r.t. the decoder's last layer, so neither term swamps the other.
"""
from __future__ import annotations

from typing import Any

import torch

from .discriminator import PatchDiscriminator1D, hinge_d_loss
from .learned import LearnedFirstStage
from .nets import Decoder1D, Encoder1D
from .quantizer import VectorQuantizer


class VQVAEFirstStage(LearnedFirstStage):
    """(B, C, L) <-> (B, latent_channels, L / factor); `gan=True` adds the VQ-GAN discriminator."""

    def __init__(self, channels: int, length: int, cfg: Any, gan: bool = False) -> None:
        super().__init__(channels, length, cfg)
        c = self.latent_channels
        self.encoder = Encoder1D(channels, c, cfg.hidden_channels, self.factor, cfg.num_res_blocks)
        self.decoder = Decoder1D(c, channels, cfg.hidden_channels, self.factor, cfg.num_res_blocks)
        self.quantizer = VectorQuantizer(c, cfg.codebook_size, cfg.commitment, cfg.codebook_update,
                                         cfg.codebook_decay, cfg.restart_threshold)
        self.gan = bool(gan)
        self.disc_start, self.disc_weight = int(cfg.disc_start), float(cfg.disc_weight)
        if self.gan:
            self.disc = PatchDiscriminator1D(channels, cfg.disc_channels, cfg.disc_layers)

    def _encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.quantize(z))

    def disc_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.disc.parameters()) if self.gan else []

    def _adaptive_weight(self, rec: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        last = self.decoder.last.weight
        g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
        g_adv = torch.autograd.grad(adv, last, retain_graph=True)[0]
        return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, 1e4).detach() * self.disc_weight

    def loss(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """{"loss", "rec", "ffl", "commit", "codebook", "perplexity", "restarts"[, "adv", "adv_weight"]}."""
        z_q, q, _ = self.quantizer(self.encoder(x))
        x_hat = self.decoder(z_q)
        parts = self.rec(x_hat, x)
        rec_total = parts["rec"] + self.rec.ffl_weight * parts["ffl"]
        total = rec_total + q["commit"] + q["codebook"]
        parts.update(q)
        if self.gan and step >= self.disc_start:
            for p in self.disc.parameters():   # the generator step must not move the discriminator
                p.requires_grad_(False)
            adv = -self.disc(x_hat).mean()
            for p in self.disc.parameters():
                p.requires_grad_(True)
            w = self._adaptive_weight(rec_total, adv) if torch.is_grad_enabled() else x.new_tensor(self.disc_weight)
            total = total + w * adv
            parts["adv"], parts["adv_weight"] = adv.detach(), w
        parts["loss"] = total
        return parts

    def disc_loss(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """{"loss": hinge loss} of the discriminator on real x and detached reconstructions; {} before
        `disc_start` or without GAN."""
        if not self.gan or step < self.disc_start:
            return {}
        with torch.no_grad():
            x_hat = self.decoder(self.quantizer.quantize(self.encoder(x)))
        return {"loss": hinge_d_loss(self.disc(x), self.disc(x_hat))}
