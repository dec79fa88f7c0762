"""`model.type: timegan`: TimeGAN (Yoon, Jarrett & van der Schaar, NeurIPS 2019), following the authors' code.

Five GRU networks on sequences of T steps of F features:
    embedder   X (B, T, F) -> H (B, T, hidden), sigmoid      recovery    H -> X_tilde (B, T, F)
    generator  Z (B, T, z) -> E_hat (B, T, hidden), sigmoid  supervisor  H -> next step's H (layers - 1 GRUs)
    discriminator  H -> per-step logits (B, T)
Losses (authors' code): E_loss_T0 = MSE(X, X_tilde); G_loss_S = MSE(H[:, 1:], supervisor(H)[:, :-1]);
G_loss_U (+ gamma G_loss_U_e) = BCE of the discriminator on H_hat = supervisor(E_hat) (and on E_hat) against 1;
G_loss_V = moment matching of X_hat = recovery(H_hat) and X (std and mean over the batch);
G_loss = G_loss_U + gamma G_loss_U_e + 100 sqrt(G_loss_S) + 100 G_loss_V; E_loss = 10 sqrt(E_loss_T0) + 0.1 G_loss_S;
D_loss = BCE(D(H), 1) + BCE(D(H_hat), 0) + gamma BCE(D(E_hat), 0).
Three phases (one optimizer each, as in the code: E0, GS, then G, E, D):
    1. autoencoding (`embedding_steps`): embedder + recovery minimise 10 sqrt(E_loss_T0);
    2. supervised (`supervised_steps`): generator + supervisor minimise G_loss_S;
    3. joint (the remaining steps): twice (generator + supervisor on G_loss, then embedder + recovery on E_loss,
       each pair on a new batch), then the discriminator on a new batch if D_loss > `d_threshold`.
Adaptations: windows of (C, L) are read as T = L / `patch` steps of F = C * patch features (TimeGAN was built for
~24 steps); the recovery ends in tanh since our data is in [-1, 1] (the paper min-max scales to [0, 1] and uses
a sigmoid); Z ~ U[0, 1) per step, as in the code. Unconditional.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import Baseline, NextBatch, SampleNoise, bce_logits, check_length


class _GRUNet(nn.Module):
    """A stacked GRU and a per-step linear read-out with an optional activation: (B, T, n_in) -> (B, T, n_out)."""

    def __init__(self, n_in: int, hidden: int, layers: int, n_out: int, act: Optional[nn.Module]) -> None:
        super().__init__()
        self.rnn = nn.GRU(n_in, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, n_out)
        self.act = act or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.out(self.rnn(x)[0]))


class TimeGAN(Baseline):
    """TimeGAN with its five networks and three training phases."""

    type_name = "timegan"

    conditional = False

    def __init__(self, cfg: Any, channels: int, length: int, label_classes: Sequence[int]) -> None:
        super().__init__(channels, length, label_classes)
        check_length(length, cfg.patch, "baseline.timegan.patch")
        self.cfg = cfg
        self.steps, self.features = length // cfg.patch, channels * cfg.patch
        h, n = cfg.hidden, cfg.layers
        self.z_dim = cfg.latent_dim or self.features
        self.embedder = _GRUNet(self.features, h, n, h, nn.Sigmoid())
        self.recovery = _GRUNet(h, h, n, self.features, nn.Tanh())
        self.generator = _GRUNet(self.z_dim, h, n, h, nn.Sigmoid())
        self.supervisor = _GRUNet(h, h, max(1, n - 1), h, nn.Sigmoid())
        self.discriminator = _GRUNet(h, h, n, 1, None)

    # ---- shapes --------------------------------------------------------------------------------------
    def to_seq(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, T, C * patch): step t holds samples t*patch .. (t+1)*patch - 1 of every channel."""
        b = len(x)
        return x.reshape(b, self.channels, self.steps, self.cfg.patch).permute(0, 2, 1, 3).reshape(b, self.steps, -1)

    def from_seq(self, s: torch.Tensor) -> torch.Tensor:
        """(B, T, C * patch) -> (B, C, L), the inverse of `to_seq`."""
        b = len(s)
        return s.reshape(b, self.steps, self.channels, self.cfg.patch).permute(0, 2, 1, 3).reshape(b, self.channels, -1)

    # ---- phases --------------------------------------------------------------------------------------
    def phase(self, step: int) -> str:
        if step < self.cfg.embedding_steps:
            return "embedding"
        if step < self.cfg.embedding_steps + self.cfg.supervised_steps:
            return "supervised"
        return "joint"

    def make_optimizers(self, tc: Any) -> dict[str, torch.optim.Optimizer]:
        er = list(self.embedder.parameters()) + list(self.recovery.parameters())
        gs = list(self.generator.parameters()) + list(self.supervisor.parameters())
        return {"embedding": self.adam(er, tc), "supervised": self.adam(gs, tc),
                "generator": self.adam(gs, tc), "embedder": self.adam(er, tc),
                "discriminator": self.adam(self.discriminator.parameters(), tc)}

    # ---- losses (names as in the authors' code) --------------------------------------------------------
    def _z(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.rand(n, self.steps, self.z_dim, generator=generator, device=generator.device).to(device)

    def e_loss_t0(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        H = self.embedder(X)
        return F.mse_loss(self.recovery(H), X), H

    def g_loss_s(self, H: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.supervisor(H)[:, :-1], H[:, 1:])

    def g_loss(self, X: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        H = self.embedder(X)
        E_hat = self.generator(self._z(len(X), generator, X.device))
        H_hat = self.supervisor(E_hat)
        X_hat = self.recovery(H_hat)
        g_u = bce_logits(self.discriminator(H_hat), 1.0)
        g_u_e = bce_logits(self.discriminator(E_hat), 1.0)
        g_s = self.g_loss_s(H)
        v1 = (torch.sqrt(X_hat.var(0, unbiased=False) + 1e-6) - torch.sqrt(X.var(0, unbiased=False) + 1e-6)).abs().mean()
        v2 = (X_hat.mean(0) - X.mean(0)).abs().mean()
        return g_u + self.cfg.gamma * g_u_e + 100 * torch.sqrt(g_s) + 100 * (v1 + v2)

    def d_loss(self, X: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            H = self.embedder(X)
            E_hat = self.generator(self._z(len(X), generator, X.device))
            H_hat = self.supervisor(E_hat)
        return (bce_logits(self.discriminator(H), 1.0) + bce_logits(self.discriminator(H_hat), 0.0)
                + self.cfg.gamma * bce_logits(self.discriminator(E_hat), 0.0))

    # ---- one step of the current phase ---------------------------------------------------------------------
    def train_step(self, next_batch: NextBatch, step: int, opts: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator, grad_clip: Optional[float]) -> dict[str, float]:
        phase = self.phase(step)
        if phase == "embedding":
            e0, _ = self.e_loss_t0(self.to_seq(next_batch()[0]))
            self.update(opts["embedding"], 10 * torch.sqrt(e0), grad_clip)
            return {"e_loss_t0": e0.item()}
        if phase == "supervised":
            with torch.no_grad():
                H = self.embedder(self.to_seq(next_batch()[0]))
            s = self.g_loss_s(H)
            self.update(opts["supervised"], s, grad_clip)
            return {"g_loss_s": s.item()}
        for _ in range(2):  # the authors' code: two generator/embedder rounds per discriminator round
            X = self.to_seq(next_batch()[0])
            g = self.g_loss(X, generator)
            self.update(opts["generator"], g, grad_clip)
            e0, H = self.e_loss_t0(X)
            e = 10 * torch.sqrt(e0) + 0.1 * self.g_loss_s(H)
            self.update(opts["embedder"], e, grad_clip)
        X = self.to_seq(next_batch()[0])
        d = self.d_loss(X, generator)
        if d.item() > self.cfg.d_threshold:  # train the discriminator only while it is not too good
            self.update(opts["discriminator"], d, grad_clip)
        return {"g_loss": g.item(), "e_loss_t0": e0.item(), "d_loss": d.item()}

    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Autoencoder reconstruction MSE (E_loss_T0) of validation windows: the latent space's quality."""
        return self.e_loss_t0(self.to_seq(x))[0]

    def generate(self, noise: SampleNoise, labels: torch.Tensor) -> torch.Tensor:
        z = noise.uniform(self.steps, self.z_dim)
        return self.from_seq(self.recovery(self.supervisor(self.generator(z))))
