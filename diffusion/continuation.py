"""Recordings of any length from a model trained on fixed windows: continuation, with no retraining.

    x = sample_long(model, n_samples=28800, labels=[2, 0, 1, 1], sampler="dpm_solver", steps=20,
                    guidance_scale=1.0, seed=0)            # (C, 28800) in data scale ([-1, 1])

The recording is a chain of windows in the latent space of the model's first stage. Window 0 is sampled as
`DiffusionModel.sample` samples window 0 of `seed` (the same noise, so the same window). Window k > 0
shares `shared` latent positions (`overlap` of the window) with window k - 1: the first half of them
(`pinned`) are pinned to window k - 1's values by replacement inside the denoiser (diffusion/inpaint.py,
RePaint; its resampling passes are optional, `resample`), so every sampler of the registry continues a
recording unchanged; the last `ramp` pinned positions are pinned softly (weights from 1 down to 0), so the
hand-over is a ramp, not a step; and window k regenerates the second half, window k - 1's last positions (a
window's edge is rougher than its interior, so the join is placed inside both windows). Each window moves on by `latent_len - shared`
positions; the chain is decoded once (in chunks, `decode_long`) and cut to `n_samples`.

Latent positions and samples: every first stage compresses time by its `factor` with a stride, so latent
position j stands for data samples [j * factor, (j + 1) * factor) (identity: factor 1, the signal itself;
sampling: the decimated sample of that block; VAE / VQ-VAE: the encoder's output after log2(factor)
stride-2 convolutions; a VQ latent is pinned before quantisation, where the diffusion runs, and decode
quantises). Pinning latent positions therefore pins whole blocks of data samples. The decoder is
convolutional and takes any length; decoding the chain (not each window) leaves no edge of a window's own
decode inside the recording.

Randomness: window k's sampler noise is the NoiseSource of (seed, k) (sample_seed), and its replacement noise
a CPU generator seeded by sample_seed(seed, k, PIN_STREAM): the same seed gives the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from dataloader.errors import UserError

from .inpaint import ReplacementDenoiser
from .samplers import CountingDenoiser, NoiseSource, sample as run_sampler, sample_seed

PIN_STREAM = 2            # sample_seed stream of the replacement noise (stream 1 is the Brownian trees')
# resampling passes per denoiser call (RePaint U - 1). 0 by default: in bench/results/seams_ctg.md one pass
# smooths the whole recording (inside |step| about 30 % below the model's own windows) for no gain at the joins
DEFAULT_RESAMPLE = 0
MAX_WINDOWS = 100_000     # windows in one recording (a bound on time and memory, far above any real request)
MAX_VALUES = 500_000_000  # samples x channels of one recording: it is held in memory whole (2 GB of float32)


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of one recording lie. Latent positions are multiples of `factor` data samples."""

    n_samples: int     # data samples of the recording
    factor: int        # data samples per latent position
    latent_len: int    # L': latent positions of one window
    shared: int        # latent positions windows k - 1 and k share (the overlap)
    pinned: int        # the first of them, pinned in window k to window k - 1's values
    ramp: int          # the last `ramp` pinned positions are pinned softly (weights from 1 down to 0)
    n_windows: int

    @property
    def stride(self) -> int:
        """Latent positions from one window's start to the next one's."""
        return self.latent_len - self.shared

    @property
    def total_latent(self) -> int:
        return self.latent_len + (self.n_windows - 1) * self.stride

    def latent_start(self, k: int) -> int:
        """First latent position of window k."""
        return k * self.stride

    def new_start(self, k: int) -> int:
        """First data sample that window k writes (0 for window 0; the start of its soft ramp): where its
        labels take effect."""
        return 0 if k == 0 else (self.latent_start(k) + self.pinned - self.ramp) * self.factor

    def join(self, k: int) -> int:
        """Data sample at the middle of window k's soft ramp (k > 0): where window k - 1 hands over."""
        return (self.latent_start(k) + self.pinned - self.ramp // 2) * self.factor

    def weights(self) -> torch.Tensor:
        """(L',) pinning weights of window k > 0: 1 on the first pinned - ramp positions, a linear ramp
        down over the next `ramp` (exclusive of 1 and 0), 0 after."""
        w = torch.zeros(self.latent_len)
        hard = self.pinned - self.ramp
        w[:hard] = 1.0
        w[hard:self.pinned] = torch.arange(self.ramp, 0, -1, dtype=torch.float32) / (self.ramp + 1)
        return w


def plan_windows(model: Any, n_samples: int, overlap: float = 0.25) -> WindowPlan:
    """The windows of an `n_samples` recording whose consecutive windows share `overlap` (0 < overlap < 1)."""
    c, lat = model.latent_shape
    factor = int(model.length) // int(lat)
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise UserError("duration", f"must be at least one sample (got {n_samples})")
    if not 0.0 < float(overlap) < 1.0:
        raise UserError("overlap", f"must be between 0 and 1, exclusive (got {overlap})")
    shared = min(lat - 1, max(1, int(round(float(overlap) * lat))))
    # a window's last positions are rougher than its interior (the network's edge: in an undertrained tiny
    # CTG model the last 16 samples step 4x as much; bench/results/seams_ctg.md), so only the first half of
    # the shared part is pinned and window k regenerates the rest, where it is inside window k
    pinned = max(1, shared - shared // 2)
    # a hard pin leaves a step at its end (twice the inside steps in that model): the last eighth of the
    # pinned part is a soft ramp, which window k's values fill in
    ramp = pinned // 8
    need = -(-int(n_samples) // factor)                          # latent positions the recording needs
    n_windows = 1 + max(0, -(-(need - lat) // (lat - shared)))
    if int(n_samples) * int(model.channels) > MAX_VALUES:
        raise UserError("duration", f"{n_samples:,} samples x {model.channels} channels exceed the {MAX_VALUES:,} "
                                    "values one recording may hold in memory; ask for a shorter one")
    if n_windows > MAX_WINDOWS:
        raise UserError("duration", f"{n_samples:,} samples need {n_windows:,} windows; at most {MAX_WINDOWS:,}")
    return WindowPlan(int(n_samples), factor, int(lat), shared, pinned, ramp, n_windows)


def decode_long(model: Any, z: torch.Tensor, margin: Optional[int] = None) -> torch.Tensor:
    """Decode a latent chain (C', T') to (C, T' * factor) in chunks of one window, each decoded with
    `margin` latent positions of context on either side (default a quarter window) and cut to its middle,
    so memory stays that of a window and no chunk edge shows (a chain of one window is decoded whole)."""
    lat = int(model.latent_shape[1])
    m = lat // 4 if margin is None else int(margin)
    t = z.shape[-1]
    outs = []
    for a in range(0, t, lat):
        b = min(t, a + lat)
        lo, hi = max(0, a - m), min(t, b + m)
        x = model.decode(z[None, :, lo:hi])[0]
        f = x.shape[-1] // (hi - lo)
        outs.append(x[:, (a - lo) * f:(b - lo) * f])
    return torch.cat(outs, dim=-1)


def _window(model: Any, k: int, row: torch.Tensor, prev: Optional[torch.Tensor], plan: WindowPlan,
            sampler: str, steps: int, guidance_scale: float, seed: int, resample: int,
            quantize: bool, opts: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """Latent of window k (1, C', L') and its network evaluations; `prev` is window k - 1's latent."""
    shape = model.latent_shape
    dtype, device = next(model.parameters()).dtype, model.device

    def base(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return model.denoiser(x, s, row, guidance_scale, quantize)

    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = base
    if prev is not None:
        known = torch.zeros((1, *shape), device=device, dtype=dtype)
        known[..., :plan.pinned] = prev[..., plan.stride:plan.stride + plan.pinned]
        mask = plan.weights().to(device=device, dtype=dtype).view(1, 1, -1)
        g = torch.Generator().manual_seed(sample_seed(seed, k, PIN_STREAM))

        def draw(sh: tuple[int, ...]) -> torch.Tensor:
            return torch.randn(sh, generator=g).to(device=device, dtype=dtype)

        fn = ReplacementDenoiser(base, known, mask, draw, resample=resample)
    counted = CountingDenoiser(fn)
    noise = NoiseSource(seed, [k], shape, device, dtype)
    return run_sampler(sampler, counted, model.schedule, steps, noise, **opts), counted.nfe


@torch.no_grad()
def sample_long(model: Any, n_samples: int, labels: Union[torch.Tensor, np.ndarray, Sequence[int], None],
                sampler: str, steps: int, guidance_scale: float, seed: int, overlap: float = 0.25,
                resample: int = DEFAULT_RESAMPLE, progress: Optional[Callable[[int, int], None]] = None,
                **opts: Any) -> torch.Tensor:
    """One recording of `n_samples` samples, (C, n_samples) in data scale ([-1, 1]), on the model's device.

    labels: (n_labels,) for the whole recording, or (n_windows, n_labels) per window (plan_windows gives
    n_windows and where each window's labels start); -1 = no condition on a column; None = unconditional.
    overlap: fraction of a window shared with the previous one (half of it pinned); resample: RePaint passes per
    denoiser call while pinned; opts: sampler options (eta, sigmas, ...) and `quantize`.
    `progress(done, n_windows)` is called after each window. Non-finite output raises UserError.
    """
    from .model import DiffusionModel

    if not isinstance(model, DiffusionModel):
        raise UserError("--duration", f"continuation needs a diffusion model without super-resolution "
                                      f"(got {type(model).__name__})")
    if int(resample) < 0:
        raise UserError("resample", f"must be >= 0 (got {resample})")
    plan = plan_windows(model, n_samples, overlap)
    rows = model.check_labels(labels, plan.n_windows)
    quantize = bool(opts.pop("quantize", False))
    was_training = model.training
    model.eval()
    try:
        chain = torch.empty((model.latent_shape[0], plan.total_latent), device=model.device,
                            dtype=next(model.parameters()).dtype)
        prev = None
        for k in range(plan.n_windows):
            z, _ = _window(model, k, rows[k:k + 1], prev, plan, sampler, steps, guidance_scale, seed,
                           int(resample), quantize, dict(opts))
            # window k - 1's values stay on the pinned positions (a sampler whose last estimate is not
            # exactly the denoiser's output could differ there by rounding); window k writes the rest,
            # replacing window k - 1's unpinned end
            a = plan.latent_start(k) + (0 if k == 0 else plan.pinned - plan.ramp)
            chain[:, a:plan.latent_start(k) + plan.latent_len] = z[0, :, a - plan.latent_start(k):]
            prev = z
            if progress is not None:
                progress(k + 1, plan.n_windows)
        x = decode_long(model, chain)[:, :plan.n_samples]
    finally:
        model.train(was_training)
    if not torch.isfinite(x).all():
        raise UserError("model output", f"the recording came out non-finite (NaN or inf) with sampler {sampler}, "
                                        f"{steps} steps, guidance {guidance_scale:g}: the model is unusable with "
                                        "these settings")
    return x
