"""`model.type: wgan_gp`: conditional Wasserstein GAN with gradient penalty (Gulrajani et al. 2017, Algorithm 1).

The critic D maximises E[D(real)] - E[D(fake)] under a soft 1-Lipschitz constraint: the penalty
lambda * E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per window
(lambda = `gp_weight`, 10 in the paper). Each step: `n_critic` critic updates (5 in the paper), each on a new batch,
then one generator update minimising -E[D(fake)]. The critic has no batch norm (the penalty is per window);
layer norm as the paper recommends. Adam betas come from train.betas (paper: 0, 0.9; configs use 0.5, 0.9).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from .base import NextBatch
from .gan import GAN


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor) -> torch.Tensor:
    """mean over windows of (||d critic / d x at x_hat||_2 - 1)^2, x_hat = eps * real + (1 - eps) * fake.

    real, fake (B, C, L); eps (B,) in [0, 1]; `critic` maps (B, C, L) -> (B,). The gradient norm is over all of
    a window's C x L values; create_graph=True so the penalty itself can be differentiated (the critic's update).
    """
    e = eps.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


class WGANGP(GAN):
    """Conditional WGAN-GP: `generator` (z, labels) -> x, `discriminator` = the critic (x, labels) -> value."""

    type_name = "wgan_gp"

    disc_norm = "layer"

    def make_optimizers(self, tc: Any) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.adam(self.discriminator.parameters(), tc),
                "generator": self.adam(self.generator.parameters(), tc)}

    def critic_loss(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                    penalty: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(critic loss E[D(fake)] - E[D(real)] + lambda * GP, the Wasserstein estimate E[D(real)] - E[D(fake)])."""
        with torch.no_grad():
            fake = self.fake(y, generator)
        w = self.discriminator(x, y).mean() - self.discriminator(fake, y).mean()
        loss = -w
        if penalty and self.cfg.gp_weight > 0:
            eps = torch.rand(len(x), generator=generator, device=generator.device).to(x.device)
            loss = loss + self.cfg.gp_weight * gradient_penalty(lambda v: self.discriminator(v, y), x, fake, eps)
        return loss, w

    def train_step(self, next_batch: NextBatch, step: int, opts: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator, grad_clip: Optional[float]) -> dict[str, float]:
        for _ in range(self.cfg.n_critic):
            x, y = next_batch()
            d, w = self.critic_loss(x, y, generator)
            self.update(opts["critic"], d, grad_clip)
        _, y = next_batch()
        g = -self.discriminator(self.fake(y, generator), y).mean()
        self.update(opts["generator"], g, grad_clip)
        return {"g_loss": g.item(), "critic_loss": d.item(), "wasserstein": w.item()}

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The critic's Wasserstein estimate E[D(real)] - E[D(fake)] on validation windows (lower: closer)."""
        return self.critic_loss(x, labels, generator, penalty=False)[1]
