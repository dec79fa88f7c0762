"""Min-SNR-gamma loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
Strategy", ICCV): each sample's loss is weighted by its noise level so that the easy, low-noise levels stop
dominating the gradient.

With SNR(sigma) = alpha-bar / (1 - alpha-bar) = 1 / sigma^2 (variance-exploding sigma of schedule.py), the
paper's weight in x0 space is min(SNR, gamma). A network with output F and x0 estimate D = c_skip x + c_out F
has ||D - x0||^2 = c_out^2 ||F - target||^2, so the same weight on the loss of F against its target is

    w = min(SNR, gamma) * c_out^2:   eps: c_out^2 = sigma^2 = 1 / SNR      -> min(SNR, gamma) / SNR
                                      v:   c_out^2 = sigma^2 / (1 + sigma^2) -> min(SNR, gamma) / (SNR + 1)
                                      x0:  c_out^2 = 1                       -> min(SNR, gamma)

(the paper's three cases, section 3.4 and its code), and for edm min(SNR, gamma) * sigma^2 sd^2 / (sigma^2 + sd^2),
which then replaces EDM's own weight lambda c_out^2 = 1. The weights are derived for the squared error; with
`loss: l1` they are applied as they are. The paper uses gamma = 5.
"""
from __future__ import annotations

import torch


def min_snr_weight(sigma: torch.Tensor, c_out: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample weight (B,) from noise levels sigma (B,) and output scalings c_out (B,) or (B, 1, 1)."""
    snr = sigma.double().square().reciprocal()
    w = snr.clamp(max=float(gamma)) * c_out.double().reshape(len(sigma)).square()
    return w.to(sigma.dtype)
