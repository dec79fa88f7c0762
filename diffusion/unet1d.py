"""UNet-1D denoiser network: `(x (B, C, L), noise_level (B,), labels (B, n_labels)) -> (B, C_out, L)`.

The ADM layout of Dhariwal & Nichol 2021 (itself from Ho 2020) in one dimension: per level, residual blocks
(GroupNorm + SiLU + conv, the noise/label embedding applied as a per-channel scale and shift after the
second norm, "AdaGN") with optional self-attention; strided-conv downsampling; nearest upsampling + conv;
skip connections concatenated on the channel axis; a zero-initialised output conv.

The noise level is embedded with sinusoids (Vaswani 2017, as in Ho 2020); the network does not know what it
means (precond.py passes the discrete timestep, or for edm ln(sigma) / 4 mapped onto [0, 1000]). Each label
column has its own embedding table with one extra null entry (index = number of classes of that column) used for
classifier-free guidance (Ho & Salimans 2022); `null_labels(B)` gives an all-null batch.

Speed on CPU (docs/design.md section 9): the time is in conv1d (oneDNN) and in memory-bound elementwise passes
(GroupNorm, SiLU, adds); `_norm_film` keeps those to three passes per norm. Measurements (FLOPs, fraction of
peak) are in bench/model_flops.py and bench/results/model_flops.md.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dataloader.errors import UserError


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim) of a float noise level (Ho 2020, after Vaswani 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _norm_film(x: torch.Tensor, norm: nn.GroupNorm, scale: Optional[torch.Tensor] = None,
               shift: Optional[torch.Tensor] = None) -> torch.Tensor:
    """SiLU(GroupNorm(x) * (1 + scale) + shift) for x (B, C, L), scale/shift (B, C) (AdaGN, Dhariwal & Nichol 2021).

    group_norm is one fused kernel; the scale and shift are one `addcmul` pass; SiLU runs in place when no
    gradient is recorded (sampling). Folding the statistics into the multiply by hand (var_mean + addcmul)
    measured 4x slower on this CPU: var_mean over a strided view is a slow kernel.
    """
    h = norm(x)
    if scale is not None:
        h = torch.addcmul(shift[:, :, None], h, (1 + scale)[:, :, None])
    return F.silu(h, inplace=not torch.is_grad_enabled())


class ResBlock(nn.Module):
    """GN-SiLU-conv, embedding scale/shift (AdaGN), GN-SiLU-dropout-conv (zero init), residual (1x1 if needed)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv1d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv1d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x (B, Cin, L), emb (B, E) already passed through SiLU -> (B, Cout, L)."""
        h = self.conv1(_norm_film(x, self.norm1))
        scale, shift = self.emb(emb).chunk(2, dim=1)
        h = self.conv2(self.dropout(_norm_film(h, self.norm2, scale, shift)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the length axis with a residual (GN, 1x1 qkv, SDPA, 1x1 out, zero init)."""

    def __init__(self, ch: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.out = nn.Conv1d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, L)."""
        b, c, n = x.shape
        # contiguous (B, 3, H, L, D): SDPA then takes its fused CPU kernel (3x faster than on strided views)
        qkv = self.qkv(self.norm(x)).view(b, 3, self.heads, c // self.heads, n).transpose(-1, -2).contiguous()
        h = F.scaled_dot_product_attention(qkv[:, 0], qkv[:, 1], qkv[:, 2])  # (B, H, L, D)
        return x + self.out(h.transpose(-1, -2).reshape(b, c, n))


class Level(nn.Module):
    """Residual blocks (each optionally followed by attention) at one resolution."""

    def __init__(self, chans: Sequence[tuple[int, int]], emb_dim: int, groups: int, dropout: float,
                 attention: bool, heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(a, b, emb_dim, groups, dropout) for a, b in chans)
        self.attn = nn.ModuleList(Attention(b, heads, groups) if attention else nn.Identity() for _, b in chans)


class UNet1D(nn.Module):
    """UNet over (B, C, L) with noise-level and label conditioning. L must be divisible by 2**(levels-1)."""

    @classmethod
    def from_config(cls, u: Any, in_channels: int, out_channels: int, label_classes: Sequence[int]) -> "UNet1D":
        """The UNet of a resolved `model.unet` section (`ModelConfig.resolved_unet()`)."""
        return cls(in_channels, out_channels, base_channels=u.base_channels, channel_mult=u.channel_mult,
                   num_res_blocks=u.num_res_blocks, attention_levels=u.attention_levels,
                   attention_heads=u.attention_heads, dropout=u.dropout, norm_groups=u.norm_groups,
                   label_classes=label_classes, label_embed=u.label_embed)

    def __init__(self, in_channels: int, out_channels: int, base_channels: int = 64,
                 channel_mult: Sequence[int] = (1, 2, 4, 4), num_res_blocks: int = 2,
                 attention_levels: Sequence[int] = (3,), attention_heads: int = 4, dropout: float = 0.0,
                 norm_groups: int = 32, label_classes: Sequence[int] = (), label_embed: str = "sum") -> None:
        super().__init__()
        chans = [base_channels * m for m in channel_mult]
        for ch in chans:
            if ch % norm_groups:
                raise UserError("model.unet.norm_groups", f"{norm_groups} groups do not divide {ch} channels")
        if label_embed not in ("sum", "concat"):
            raise UserError("model.unet.label_embed", f"expected sum or concat (got {label_embed!r})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.levels = len(chans)
        self.label_classes = [int(n) for n in label_classes]
        self.label_embed = label_embed
        emb = 4 * base_channels
        self.base_channels = base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        # one table per label column; the last entry of each (index n_classes) is the null label
        self.label_tables = nn.ModuleList(nn.Embedding(n + 1, emb) for n in self.label_classes)
        self.label_proj = (nn.Linear(emb * len(self.label_classes), emb)
                           if label_embed == "concat" and self.label_classes else None)
        self.register_buffer("null_index", torch.tensor(self.label_classes, dtype=torch.long), persistent=False)

        self.inp = nn.Conv1d(in_channels, chans[0], 3, padding=1)
        attn = set(attention_levels)
        down, skips, ch = [], [chans[0]], chans[0]
        for i, c in enumerate(chans):
            pairs = []
            for _ in range(num_res_blocks):
                pairs.append((ch, c))
                ch = c
                skips.append(ch)
            down.append(Level(pairs, emb, norm_groups, dropout, i in attn, attention_heads))
            if i < self.levels - 1:
                skips.append(ch)
        self.down = nn.ModuleList(down)
        self.downsample = nn.ModuleList(nn.Conv1d(c, c, 3, stride=2, padding=1) for c in chans[:-1])
        deep = self.levels - 1 in attn
        self.mid1 = ResBlock(ch, ch, emb, norm_groups, dropout)
        self.mid_attn = Attention(ch, attention_heads, norm_groups) if deep else nn.Identity()
        self.mid2 = ResBlock(ch, ch, emb, norm_groups, dropout)
        up = []
        for i, c in reversed(list(enumerate(chans))):
            pairs = []
            for _ in range(num_res_blocks + 1):
                pairs.append((ch + skips.pop(), c))
                ch = c
            up.append(Level(pairs, emb, norm_groups, dropout, i in attn, attention_heads))
        self.up = nn.ModuleList(up)
        self.upsample = nn.ModuleList(nn.Conv1d(c, c, 3, padding=1) for c in reversed(chans[1:]))
        self.out_norm = nn.GroupNorm(norm_groups, ch)
        self.out = nn.Conv1d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def length_multiple(self) -> int:
        """Lengths L the network accepts are multiples of this (2**(levels-1))."""
        return 2 ** (self.levels - 1)

    def check_length(self, length: int) -> None:
        """Raise `UserError` naming the lengths that work when `length` is not a multiple of 2**(levels-1)."""
        m = self.length_multiple
        if length % m or length <= 0:
            lo = length // m * m
            raise UserError("model.unet.channel_mult",
                            f"length {length} does not work with {self.levels} levels: the UNet needs a multiple "
                            f"of {m} (e.g. {lo or m} or {lo + m})")

    def null_labels(self, batch: int) -> torch.Tensor:
        """(B, n_labels) int64 of null entries (unconditional), on the network's device."""
        return self.null_index.expand(batch, -1).clone()

    def embed(self, noise_level: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        """(B,) noise level and (B, n_labels) labels -> (B, E) conditioning vector (after SiLU)."""
        e = self.time_mlp(timestep_embedding(noise_level, self.base_channels))
        if self.label_classes:
            if labels is None:
                raise ValueError("this network has label columns: pass labels (use null_labels(B) for none)")
            parts = [tab(labels[:, j]) for j, tab in enumerate(self.label_tables)]
            if self.label_proj is not None:
                e = e + self.label_proj(torch.cat(parts, dim=1))
            else:
                e = e + torch.stack(parts).sum(0)
        return F.silu(e)

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor,
                labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, C_in, L), noise_level (B,) float, labels (B, n_labels) int64 -> (B, C_out, L)."""
        self.check_length(x.shape[-1])
        emb = self.embed(noise_level, labels)
        h = self.inp(x)
        hs = [h]
        for i, level in enumerate(self.down):
            for block, attn in zip(level.blocks, level.attn):
                h = attn(block(h, emb))
                hs.append(h)
            if i < self.levels - 1:
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for i, level in enumerate(self.up):
            for block, attn in zip(level.blocks, level.attn):
                h = attn(block(torch.cat([h, hs.pop()], dim=1), emb))
            if i < self.levels - 1:
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))
