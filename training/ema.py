"""Exponential moving average of a model's weights (Polyak averaging; used by Ho 2020 with decay 0.9999).

`update(model)` after each optimizer step; `copy_to(model)` before sampling or saving the inference file;
`state_dict` / `load_state_dict` so accelerate's `save_state` can checkpoint it (register_for_checkpointing):
plain tensors and numbers only, loadable with `torch.load(weights_only=True)`.
Warm-up (optional): decay_n = min(decay, (1 + n) / (10 + n)) after n updates, so early averages are not
dominated by the random initialisation (as in TensorFlow's ExponentialMovingAverage num_updates).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class EMA:
    """Shadow copy of a model's floating-point parameters and buffers, updated as s <- d * s + (1 - d) * p."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1] (got {decay})")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in self._tracked(model).items()}

    @staticmethod
    def _tracked(model: nn.Module) -> dict[str, torch.Tensor]:
        """Parameters and floating-point persistent buffers by name."""
        out = {k: p for k, p in model.named_parameters()}
        out.update({k: b for k, b in model.state_dict().items() if k not in out and b.is_floating_point()})
        return out

    def current_decay(self) -> float:
        """The decay the next update uses."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards the model's current weights (call after each optimizer step)."""
        d = self.current_decay()
        tracked = self._tracked(model)
        names = list(self.shadow)
        shadow = [self.shadow[k] for k in names]
        current = [tracked[k].detach().to(self.shadow[k].device, self.shadow[k].dtype) for k in names]
        torch._foreach_lerp_(shadow, current, 1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into `model` (same architecture)."""
        tracked = self._tracked(model)
        for k, v in self.shadow.items():
            tracked[k].copy_(v)

    def to(self, device: Any) -> "EMA":
        """Move the shadow weights (e.g. to the accelerator's device)."""
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        return self

    def state_dict(self) -> dict[str, Any]:
        """Plain data: decay, warmup, num_updates and the shadow tensors under 'shadow.<name>'."""
        out: dict[str, Any] = {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates}
        out.update({f"shadow.{k}": v for k, v in self.shadow.items()})
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; the tensor names must match this EMA's model."""
        names = {k[len("shadow."):] for k in state if k.startswith("shadow.")}
        if names != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - names), sorted(names - set(self.shadow))
            raise KeyError(f"EMA state does not match the model (missing {missing[:5]}, unexpected {extra[:5]})")
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for k in self.shadow:
            self.shadow[k].copy_(state[f"shadow.{k}"])
