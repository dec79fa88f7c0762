"""Base class of the learned first stages (VAE, VQ-VAE, VQ-GAN): conv encoder/decoder, reconstruction loss,
latent scale factor, and loading the trained file.

Latent scaling (Rombach et al. 2022, section 4.3.2 and appendix G): `encode` returns z * scale with
scale = 1 / std of the training latents, so the diffusion sees latents of unit variance whatever the
autoencoder learned; `decode` divides it out. The factor is a persistent buffer: it travels in the first-stage
file and inside every diffusion model file built on it.
Training interface (used by first_stage/train_loop.py, which knows no subclass):
    loss(x, step) -> {"loss": total to minimise, other parts for the log}
    disc_loss(x, step) -> {"loss": ...} or {} (adversarial stages), with disc_parameters()
    ae_parameters() -> the autoencoder's trainable parameters
"""
from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import nn

from dataloader.errors import UserError

from .base import FirstStage, compressed_length
from .files import first_stage_file, read_first_stage_file
from .losses import ReconstructionLoss
from .nets import levels_of

# config keys that define the weights' shapes: a file trained with other values cannot be loaded
ARCH_KEYS = ("type", "factor", "latent_channels", "hidden_channels", "num_res_blocks", "codebook_size")


class LearnedFirstStage(FirstStage):
    """Shared parts of VAE and VQ-VAE. Subclasses build `encoder`/`decoder` and implement
    `_encode_raw` / `_decode_raw` / `_loss_parts`."""

    trainable = True

    def __init__(self, channels: int, length: int, cfg: Any) -> None:
        super().__init__(channels, length)
        self.cfg = cfg
        self.factor = int(cfg.factor)
        try:
            levels_of(self.factor)
        except ValueError:
            raise UserError("model.first_stage.factor", f"{cfg.type} needs a power of 2 (got {self.factor})") from None
        self.latent_channels = int(cfg.latent_channels)
        self.out_dir: Optional[str] = cfg.out_dir
        self.latent_shape(channels, length)
        self.rec = ReconstructionLoss(cfg.recon_loss, cfg.ffl_weight, cfg.ffl_alpha)
        self.register_buffer("scale", torch.ones(()))

    # ---- shapes ------------------------------------------------------------------------------------------
    def latent_shape(self, channels: int, length: int) -> tuple[int, int]:
        return self.latent_channels, compressed_length(length, self.factor, "the first stage's factor")

    # ---- encode / decode ---------------------------------------------------------------------------------
    @abstractmethod
    def _encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @abstractmethod
    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) in [-1, 1] -> (B, C', L / factor), scaled to unit variance."""
        return self._encode_raw(x) * self.scale.to(x.dtype)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C', L') scaled latent -> (B, C, L' * factor)."""
        return self._decode_raw(z / self.scale.to(z.dtype))

    # ---- training ----------------------------------------------------------------------------------------
    def ae_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("disc.")]

    def disc_parameters(self) -> list[nn.Parameter]:
        return []

    def disc_loss(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return {}

    @abstractmethod
    def loss(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:  # type: ignore[override]
        raise NotImplementedError

    @torch.no_grad()
    def fit_scale(self, batches: Iterator[torch.Tensor] | Sequence[torch.Tensor]) -> float:
        """Set scale = 1 / std of the unscaled latents of the given (B, C, L) batches; returns it."""
        s1 = s2 = n = 0.0
        for x in batches:
            z = self._encode_raw(x).double()
            s1, s2, n = s1 + float(z.sum()), s2 + float((z * z).sum()), n + z.numel()
        std = max((s2 / n - (s1 / n) ** 2) ** 0.5, 1e-8) if n else 1.0
        self.scale.fill_(1.0 / std)
        return 1.0 / std

    # ---- the trained file --------------------------------------------------------------------------------
    def stage_config(self) -> dict[str, Any]:
        """The config section as a plain dict (stored in the file)."""
        return {k: v for k, v in dataclasses.asdict(self.cfg).items() if k != "train"}

    def load_trained(self, channels: Sequence[dict[str, Any]], fs: float, window_len: int) -> None:
        """Load `<out_dir>/first_stage.safetensors` and freeze. It must have been trained on these channels
        (names, in order), rate and window length, with the same architecture keys; else `UserError`."""
        if not self.out_dir:
            raise UserError("model.first_stage.out_dir", f"{self.cfg.type} needs the folder of its trained file")
        path = first_stage_file(self.out_dir)
        meta, weights = read_first_stage_file(path)
        d = meta["data"]
        have, want = [str(c["name"]) for c in d["channels"]], [str(c["name"]) for c in channels]
        if have != want:
            raise UserError(str(path), f"first stage trained on channels {have}, the diffusion config has {want}")
        if int(d["window_len"]) != int(window_len):
            raise UserError(str(path), f"first stage trained on windows of {d['window_len']} samples, the diffusion "
                                       f"config has {window_len}; train the first stage with this window length")
        if abs(float(d["fs"]) - float(fs)) > 1e-9:
            raise UserError(str(path), f"first stage trained at {float(d['fs']):g} Hz, the diffusion config has "
                                       f"{float(fs):g} Hz")
        mine = self.stage_config()
        diff = [k for k in ARCH_KEYS if meta["first_stage"].get(k) != mine.get(k)]
        if diff:
            k = diff[0]
            raise UserError(str(path), f"first stage trained with {k}={meta['first_stage'].get(k)!r}, the config "
                                       f"has {k}={mine.get(k)!r}")
        weights = {k: v for k, v in weights.items() if not k.startswith("disc.")}
        missing, unexpected = self.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not k.startswith("disc.")]
        if missing or unexpected:
            raise UserError(str(path), f"weights do not fit the first stage (missing {missing[:3]}, "
                                       f"unexpected {unexpected[:3]})")
        self.freeze()

    def freeze(self) -> None:
        """No gradients and eval mode from now on (latent diffusion trains with a fixed first stage)."""
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LearnedFirstStage":
        # a frozen first stage stays in eval mode when its owner (the diffusion model) trains: the codebook
        # must not move and restarts must not happen during diffusion training
        frozen = not any(p.requires_grad for p in self.parameters())
        return super().train(False if frozen else mode)
