"""The sampling first stage: anti-aliased decimation by an integer factor k, decoded by interpolation.

encode: a fixed low-pass FIR (Kaiser-windowed sinc, cut-off at the new Nyquist frequency fs / 2k) applied
as one strided conv1d, so only every k-th output is computed (polyphase-equivalent decimation).
decode: zero-stuffing and an interpolation kernel, as one strided conv_transpose1d:
  - sinc: the same windowed sinc scaled by k (band-limited interpolation: exact, up to the filter's
    transition band, for content below fs / 2k);
  - linear: a triangle kernel (piecewise-linear interpolation through the latent samples);
  - cubic: Keys' cubic convolution kernel, a = -0.5 (Keys 1981).
Latent sample j stands at signal sample j*k (phase 0) for every kernel, so they are interchangeable.
Edges are padded by odd reflection (by replication when the signal is shorter than the filter's half-width).
No parameters; deterministic; the kernels follow the input's device and dtype.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from dataloader.errors import UserError

from .base import FirstStage, compressed_length

HALF_WIDTH = 16      # sinc half-width in latent samples (filter length 2 * 16 * k + 1 taps)
KAISER_BETA = 6.0    # Kaiser window: about -60 dB stop band, transition about fs / 18k wide


def sinc_kernel(k: int, half_width: int = HALF_WIDTH, beta: float = KAISER_BETA) -> np.ndarray:
    """Kaiser-windowed sinc low-pass for decimation by k: (2 * half_width * k + 1,) taps, unit DC gain."""
    n = np.arange(-half_width * k, half_width * k + 1, dtype=np.float64)
    h = np.sinc(n / k) * np.kaiser(len(n), beta)
    return h / h.sum()


def interp_kernel(k: int, kind: str) -> np.ndarray:
    """Interpolation kernel for upsampling by k (odd length, centred, 1 at 0 and 0 at other multiples of k)."""
    if kind == "sinc":
        n = np.arange(-HALF_WIDTH * k, HALF_WIDTH * k + 1, dtype=np.float64)
        return np.sinc(n / k) * np.kaiser(len(n), KAISER_BETA)
    if kind == "linear":
        s = np.abs(np.arange(-k, k + 1, dtype=np.float64) / k)
        return np.clip(1 - s, 0, None)
    if kind == "cubic":
        a = -0.5
        s = np.abs(np.arange(-2 * k, 2 * k + 1, dtype=np.float64) / k)
        near = (a + 2) * s**3 - (a + 3) * s**2 + 1
        far = a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
        return np.where(s <= 1, near, np.where(s < 2, far, 0.0))
    raise UserError("model.first_stage.interp", f"unknown interpolation {kind!r}; valid: sinc, linear, cubic")


def _pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Pad the last axis by p on both sides by odd reflection (2 x[0] - x[i], as scipy's filtfilt does):
    value and slope stay continuous at the edges, so smooth signals get no edge kink to ring on.
    Falls back to replication when the signal is not longer than p."""
    if p == 0:
        return x
    if p >= x.shape[-1]:
        return F.pad(x, (p, p), mode="replicate")
    y = F.pad(x, (p, p), mode="reflect")
    left, right = y[..., :p], y[..., -p:]
    return torch.cat([2 * x[..., :1] - left, x, 2 * x[..., -1:] - right], dim=-1)


class SamplingFirstStage(FirstStage):
    """Decimate by `factor` (anti-aliased) to encode; interpolate back to decode. L must be divisible by k."""

    def __init__(self, channels: int, length: int, factor: int, interp: str = "sinc") -> None:
        super().__init__(channels, length)
        if factor < 1:
            raise UserError("model.first_stage.factor", f"must be >= 1 (got {factor})")
        self.factor = int(factor)
        self.interp = interp
        self.latent_shape(channels, length)  # raises on a bad length
        down = torch.tensor(sinc_kernel(self.factor), dtype=torch.float32).view(1, 1, -1)
        up = torch.tensor(interp_kernel(self.factor, interp), dtype=torch.float32).view(1, 1, -1)
        self.register_buffer("down_kernel", down, persistent=False)
        self.register_buffer("up_kernel", up, persistent=False)

    def latent_shape(self, channels: int, length: int) -> tuple[int, int]:
        return int(channels), compressed_length(length, self.factor, "the sampling factor")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, L / k): low-pass at fs / 2k, keep samples 0, k, 2k, ..."""
        b, c, n = x.shape
        self.latent_shape(c, n)
        w = self.down_kernel.to(device=x.device, dtype=x.dtype)
        half = (w.shape[-1] - 1) // 2
        z = F.conv1d(_pad(x.reshape(b * c, 1, n), half), w, stride=self.factor)
        return z.view(b, c, n // self.factor)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, L') -> (B, C, L' * k): zero-stuff and filter with the interpolation kernel."""
        b, c, m = z.shape
        k = self.factor
        w = self.up_kernel.to(device=z.device, dtype=z.dtype)
        half = (w.shape[-1] - 1) // 2
        p = math.ceil(half / k)  # latent samples of padding the kernel reaches
        y = F.conv_transpose1d(_pad(z.reshape(b * c, 1, m), p), w, stride=k)
        start = p * k + half   # output index of latent sample 0's position
        return y[..., start:start + m * k].reshape(b, c, m * k)
