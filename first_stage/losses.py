"""Reconstruction losses of the learned first stages: L1 / L2 and the focal frequency loss, per channel.

Every loss here normalises each channel by its own scale (the RMS of the target over the batch and time),
so that a channel with a small amplitude (UC rest tone, a flat ECG lead) weighs as much as a large one.

Focal frequency loss (Jiang et al. 2021, "Focal Frequency Loss for Image Reconstruction and Synthesis"),
1-D: the spectra of reconstruction and target (rfft along time, orthonormal) are compared bin by bin; each
bin's squared distance is weighted by its own distance to the power `alpha`, normalised to [0, 1] by the
largest weight of that (window, channel) spectrum and detached (the weight says where to look, it is not
optimised). So the loss concentrates on the frequencies the model still gets wrong.
Per-channel spectral normalisation (ours): each channel's squared spectral distance is divided by that
channel's power spectrum (the target's, averaged over the batch, smoothed over neighbouring bins and floored
at 1 % of its mean). Physiological spectra fall steeply with frequency, so an error at a frequency where the
signal has little power counts as much as a proportionally equal error where it has much: small
high-frequency detail (FHR variability, QRS complexes) is no longer swamped by the low-frequency content that
dominates a plain L2 loss.
"""
from __future__ import annotations

import torch
from torch import nn


def channel_scale(target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """(B, C, L) -> (1, C, 1): RMS of each channel's deviation from its per-window mean over batch and
    time, floored at `eps` (a flat channel must not blow the loss up). Detached."""
    t = target.detach()
    dev = t - t.mean(dim=-1, keepdim=True)
    return dev.pow(2).mean(dim=(0, 2), keepdim=True).sqrt().clamp_min(eps)


def channel_spectrum(target: torch.Tensor, smooth: int = 9, floor: float = 1e-2) -> torch.Tensor:
    """(B, C, L) -> (1, C, L // 2 + 1): each channel's power spectrum (orthonormal rfft, mean over the batch),
    smoothed by a `smooth`-bin moving average and floored at `floor` x its mean over bins. Detached."""
    f = torch.fft.rfft(target.detach().float(), dim=-1, norm="ortho")
    p = (f.real.pow(2) + f.imag.pow(2)).mean(dim=0, keepdim=True)             # (1, C, F)
    k = min(smooth, p.shape[-1]) | 1                                          # odd window, at most F bins
    p = torch.nn.functional.avg_pool1d(p, k, stride=1, padding=k // 2, count_include_pad=False)
    return p.clamp_min(floor * p.mean(dim=-1, keepdim=True).clamp_min(1e-12))


def recon_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean L1 or L2 distance of (B, C, L) tensors, each channel divided by `channel_scale(x)`."""
    s = channel_scale(x)
    d = (x_hat - x) / s
    if kind == "l1":
        return d.abs().mean()
    if kind == "l2":
        return d.pow(2).mean()
    raise ValueError(f"recon loss must be 'l1' or 'l2' (got {kind!r})")


def focal_frequency_loss(x_hat: torch.Tensor, x: torch.Tensor, alpha: float = 1.0,
                         log_weight: bool = False) -> torch.Tensor:
    """Focal frequency loss of (B, C, L) tensors, per channel with per-channel normalisation; a scalar.

    alpha: the focusing exponent of the spectral weight (1 in the paper). log_weight: weight by
    log(1 + distance) instead (the paper's `log_matrix` option; flattens the focus).
    Zero if and only if x_hat == x.
    """
    # float32 FFT even under autocast (bf16 FFTs are unsupported or inaccurate)
    diff = torch.fft.rfft((x_hat - x).float(), dim=-1, norm="ortho")          # (B, C, F) complex
    dist = diff.real.pow(2) + diff.imag.pow(2)                                # squared spectral distance
    with torch.no_grad():
        dist = dist / channel_spectrum(x)                                      # per-channel normalisation
    with torch.no_grad():
        w = dist.sqrt().pow(alpha)
        if log_weight:
            w = torch.log1p(w)
        w = w / w.amax(dim=-1, keepdim=True).clamp_min(1e-12)                 # per (window, channel) spectrum
        w = torch.nan_to_num(w, nan=0.0).clamp(0, 1)
    # mean over bins, windows and channels: about 1 when the error is as large as the signal at every frequency
    return (w * dist).mean()


class ReconstructionLoss(nn.Module):
    """`kind` (l1 / l2) distance + `ffl_weight` x focal frequency loss; returns their parts by name."""

    def __init__(self, kind: str = "l1", ffl_weight: float = 1.0, ffl_alpha: float = 1.0) -> None:
        super().__init__()
        if kind not in ("l1", "l2"):
            raise ValueError(f"recon loss must be 'l1' or 'l2' (got {kind!r})")
        self.kind, self.ffl_weight, self.ffl_alpha = kind, float(ffl_weight), float(ffl_alpha)

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"rec": distance, "ffl": focal frequency loss (0 when its weight is 0)} for (B, C, L) tensors."""
        out = {"rec": recon_loss(x_hat, x, self.kind)}
        out["ffl"] = focal_frequency_loss(x_hat, x, self.ffl_alpha) if self.ffl_weight > 0 else x.new_zeros(())
        return out
