"""Vector quantiser of the VQ-VAE (van den Oord et al. 2017), with EMA codebook updates (their appendix;
Razavi et al. 2019) or straight-through codebook learning, and restarts of dead codes.

    q = VectorQuantizer(dim=4, size=512, commitment=0.25, update="ema")
    z_q, losses, codes = q(z_e)        # z_e (B, D, L') -> z_q (B, D, L'), gradients pass straight through

- Nearest code by Euclidean distance; the decoder gets z_e + sg(e - z_e) (straight-through estimator).
- commitment: beta * ||z_e - sg(e)||^2 pulls the encoder towards its codes.
- update="ema": codes are exponential moving averages of the encoder outputs assigned to them (decay
  `decay`, Laplace-smoothed counts); no codebook loss. update="straight_through": the codebook is a
  parameter trained by the codebook loss ||sg(z_e) - e||^2.
- Initialisation: on the first training batch, codes are set to random encoder outputs (so none starts
  far from the data and dead).
- Dead-code restarts (Dhariwal et al. 2020, Jukebox; Zeghidour et al. 2021): a code whose EMA usage count
  falls below `restart_threshold` assignments per batch is moved onto a random encoder output of the batch.
Under DDP the counts and sums are summed over processes and restarts come from process 0, so every
process keeps the same codebook. Random draws use the global RNG (saved in training checkpoints).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _ddp() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class VectorQuantizer(nn.Module):
    """Codebook of `size` vectors of `dim` channels."""

    def __init__(self, dim: int, size: int, commitment: float = 0.25, update: str = "ema", decay: float = 0.99,
                 restart_threshold: float = 1.0, eps: float = 1e-5) -> None:
        super().__init__()
        if update not in ("ema", "straight_through"):
            raise ValueError(f"codebook update must be 'ema' or 'straight_through' (got {update!r})")
        self.dim, self.size, self.commitment, self.update = int(dim), int(size), float(commitment), update
        self.decay, self.restart_threshold, self.eps = float(decay), float(restart_threshold), float(eps)
        init = torch.randn(size, dim) / max(1, dim) ** 0.5
        if update == "ema":
            self.register_buffer("codebook", init)
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("ema_count", torch.ones(size))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) index of the nearest code."""
        e = self.codebook.to(flat.dtype)
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]
        return d.argmin(dim=1)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, L') -> the nearest codes (B, D, L') (no straight-through, no losses: for decoding)."""
        b, d, n = z.shape
        flat = z.permute(0, 2, 1).reshape(-1, d)
        return self.codebook[self.nearest(flat)].to(z.dtype).view(b, n, d).permute(0, 2, 1)

    @torch.no_grad()
    def _random_rows(self, flat: torch.Tensor, n: int) -> torch.Tensor:
        """n rows of flat (N, D) drawn at random (with replacement when N < n); the same on every process."""
        idx = torch.randint(0, flat.shape[0], (n,), device=flat.device)
        rows = flat[idx].clone()
        if _ddp():
            dist.broadcast(rows, 0)
        return rows

    @torch.no_grad()
    def _ema_step(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = F.one_hot(codes, self.size).to(flat.dtype)          # (N, K)
        count, total = onehot.sum(0), onehot.t() @ flat               # (K,), (K, D)
        if _ddp():
            dist.all_reduce(count)
            dist.all_reduce(total)
        self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
        if self.update == "ema":
            self.ema_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (n + self.size * self.eps) * n   # Laplace smoothing
            self.codebook.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor) -> int:
        dead = (self.ema_count < self.restart_threshold).nonzero().flatten()
        if len(dead) == 0:
            return 0
        rows = self._random_rows(flat, len(dead)).to(self.codebook.dtype)
        self.codebook.data[dead] = rows
        if self.update == "ema":
            self.ema_sum[dead] = rows * self.restart_threshold
        self.ema_count[dead] = self.restart_threshold
        return len(dead)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """z_e (B, D, L') -> (straight-through z_q (B, D, L'), {"commit", "codebook", "perplexity",
        "restarts"}, codes (B, L')). Codebook updates and restarts happen in training mode only."""
        b, d, n = z.shape
        flat = z.permute(0, 2, 1).reshape(-1, d)
        if self.training and not bool(self.initialised):
            with torch.no_grad():
                self.codebook.data.copy_(self._random_rows(flat.detach().float(), self.size))
                if self.update == "ema":
                    self.ema_sum.copy_(self.codebook.data)
                self.initialised.fill_(True)
        codes = self.nearest(flat.detach())
        e = self.codebook[codes].to(z.dtype)                          # (N, D)
        losses = {"commit": self.commitment * F.mse_loss(flat, e.detach())}
        losses["codebook"] = (F.mse_loss(e, flat.detach()) if self.update == "straight_through"
                              else z.new_zeros(()))
        restarts = 0
        if self.training:
            self._ema_step(flat.detach().float(), codes)
            restarts = self._restart_dead(flat.detach().float())
        with torch.no_grad():
            p = torch.bincount(codes, minlength=self.size).float() / max(1, codes.numel())
            losses["perplexity"] = torch.exp(-(p * (p + 1e-10).log()).sum())
            losses["restarts"] = torch.tensor(float(restarts))
        z_q = flat + (e - flat).detach()
        return z_q.view(b, n, d).permute(0, 2, 1), losses, codes.view(b, n)
