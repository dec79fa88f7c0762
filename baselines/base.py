"""What every baseline shares: the model interface the training loop and generate.py call, label
embeddings, per-sample noise and the registry from `model.type` to a class.

A baseline is an `nn.Module` holding all its networks (generator, discriminator, encoder, ...):

    model = build_baseline(cfg, channels=2, length=2048, label_classes=[3, 2, 2, 2])
    opts = model.make_optimizers(cfg.train)                   # {name: optimizer}, a fixed order
    losses = model.train_step(next_batch, step, opts, generator, grad_clip)   # one "step" of its algorithm
    v = model.validation_loss(x, labels, generator)           # fixed windows + fixed noise -> a number
    x = model.sample(n, labels, seed=0, start_index=0)        # (n, C, L) in [-1, 1]

`train_step` draws as many batches as its algorithm needs (WGAN-GP: n_critic + 1) from `next_batch()`,
which the loop counts, and every random number from `generator`, which the loop checkpoints: that is
what makes resume exact. `sample` draws window i's noise from a stream seeded by (seed, start_index + i)
(SampleNoise below), so the samples do not depend on the batch size, as for diffusion.
Unconditional models (`conditional = False`) ignore the labels.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import math
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from dataloader.errors import UserError
from diffusion.samplers.base import sample_seed

Batch = tuple[torch.Tensor, torch.Tensor]      # x (B, C, L) in [-1, 1], labels (B, n_labels) int64
NextBatch = Callable[[], Batch]

def check_length(length: int, multiple: int, where: str) -> None:
    if length % multiple:
        raise UserError(where, f"the window length {length} must be divisible by {multiple} for this network "
                               f"(choose another data.window or fewer layers)")


class LabelEmbedding(nn.Module):
    """One embedding table per label column, summed: (B, n_labels) int64 -> (B, dim) (the UNet's "sum")."""

    def __init__(self, label_classes: Sequence[int], dim: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(int(n), dim) for n in label_classes)
        self.dim = dim

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(labels.shape[0], self.dim, device=labels.device)
        for j, t in enumerate(self.tables):
            out = out + t(labels[:, j])
        return out


class Baseline(nn.Module, ABC):
    """Base of the GAN / VAE baselines (see the module docstring)."""

    type_name = "baseline"
    conditional = False                         # True: samples follow the given labels

    def __init__(self, channels: int, length: int, label_classes: Sequence[int]) -> None:
        super().__init__()
        self.channels, self.length = channels, length
        self.label_classes = list(label_classes)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- to implement --------------------------------------------------------------------------------
    @abstractmethod
    def make_optimizers(self, tc: Any) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers over the parts' parameters (from train.lr, betas, adam_eps, weight_decay)."""
        raise NotImplementedError

    @abstractmethod
    def train_step(self, next_batch: NextBatch, step: int, opts: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator, grad_clip: Optional[float]) -> dict[str, float]:
        """One step of the algorithm (0-based `step`); returns its losses, the first being the one logged."""
        raise NotImplementedError

    @abstractmethod
    def validation_loss(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A loss on fixed validation windows with fixed noise (comparable across epochs)."""
        raise NotImplementedError

    @abstractmethod
    def generate(self, noise: "SampleNoise", labels: torch.Tensor) -> torch.Tensor:
        """(B, C, L) from this batch's per-sample noise streams and labels (B, n_labels)."""
        raise NotImplementedError

    # ---- shared --------------------------------------------------------------------------------------
    def adam(self, params: Any, tc: Any, betas: Optional[Sequence[float]] = None) -> torch.optim.Optimizer:
        return torch.optim.Adam(list(params), lr=tc.lr, betas=tuple(betas or tc.betas), eps=tc.adam_eps,
                                weight_decay=tc.weight_decay, foreach=True)

    @staticmethod
    def update(opt: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: Optional[float]) -> None:
        """zero_grad, backward, optional global-norm clipping of the optimizer's parameters, step."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], grad_clip)
        opt.step()

    def phase(self, step: int) -> str:
        """Name of the training phase of `step` (TimeGAN has three)."""
        return "train"

    @torch.no_grad()
    def sample(self, n: int, labels: Optional[torch.Tensor] = None, *, seed: int = 0, start_index: int = 0,
               batch_size: Optional[int] = None, **_: Any) -> torch.Tensor:
        """`n` windows (n, C, L), clamped to [-1, 1]; window i's noise depends on (seed, start_index + i) only.

        `labels` (n, n_labels) int64 (conditional models; -1 is not allowed) or None; unconditional
        models ignore them. Extra keyword arguments (sampler, steps, guidance of diffusion) are ignored.
        """
        was = self.training
        self.eval()
        out = []
        bs = batch_size or n
        dev = self.device
        for b in range(0, n, bs):
            m = min(bs, n - b)
            noise = SampleNoise(seed, range(start_index + b, start_index + b + m), dev)
            if labels is None:
                y = torch.zeros(m, len(self.label_classes), dtype=torch.long, device=dev)
                if self.conditional:
                    raise UserError("labels", f"{self.type_name} is conditional: give a label row per window")
            else:
                y = torch.as_tensor(labels[b:b + m], dtype=torch.long, device=dev)
                if self.conditional:
                    hi = torch.tensor(self.label_classes, device=dev).view(1, -1)
                    if y.shape != (m, len(self.label_classes)) or bool(((y < 0) | (y >= hi)).any()):
                        raise UserError("labels", f"expected ({m}, {len(self.label_classes)}) codes in "
                                                  f"0..classes-1 (got shape {tuple(y.shape)})")
            out.append(self.generate(noise, y).clamp(-1, 1))
        self.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.channels, self.length, device=dev)


class SampleNoise:
    """Per-sample random streams for sampling: row i draws from a CPU generator seeded by (seed, index i)
    (diffusion.samplers.base.sample_seed), so a window is the same whatever batch it is drawn in."""

    def __init__(self, seed: int, indices: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.generators = [torch.Generator().manual_seed(sample_seed(seed, int(i))) for i in indices]
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.generators)

    def normal(self, *shape: int) -> torch.Tensor:
        """(B, *shape) standard normal numbers, row i from sample i's stream."""
        rows = torch.empty(len(self.generators), math.prod(shape))
        for row, g in zip(rows, self.generators):
            row.normal_(generator=g)
        return rows.view(len(self.generators), *shape).to(self.device)

    def uniform(self, *shape: int) -> torch.Tensor:
        """(B, *shape) numbers uniform on [0, 1), row i from sample i's stream."""
        rows = torch.empty(len(self.generators), math.prod(shape))
        for row, g in zip(rows, self.generators):
            row.uniform_(generator=g)
        return rows.view(len(self.generators), *shape).to(self.device)


def bce_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant target (1 real, 0 fake), averaged."""
    return nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))
