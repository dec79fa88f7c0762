"""Plumbing shared by the protocol scores: input checks, per-run random streams, the thread setting, summaries."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import scipy.stats
import torch

from dataloader.errors import UserError

RANGE_TOL = 1e-6      # real windows must lie in [0, 1] up to float rounding of the min-max scaling
# one random stream per score (and one for the real-vs-real halves), so that a score's numbers for a seed do
# not depend on which other scores ran or in what order
STREAMS = {"discriminative": 1, "predictive": 2, "correlational": 3, "real_vs_real": 4}


def check_windows(x: Any, where: str, min_n: int) -> np.ndarray:
    """`x` as a finite float32 array `(N, T, C)` with N >= min_n and T >= 2, or UserError."""
    try:
        a = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise UserError(where, "windows must be a numeric array (N, T, C)") from None
    if a.ndim != 3:
        raise UserError(where, f"windows must be an array (N, T, C), got shape {a.shape}")
    if a.shape[0] < min_n or a.shape[1] < 2 or a.shape[2] < 1:
        raise UserError(where, f"need at least {min_n} windows of at least 2 steps and 1 channel, got {a.shape}")
    if not np.isfinite(a).all():
        raise UserError(where, "windows contain NaN or infinite values")
    return a


def check_real_range(real: np.ndarray, where: str) -> None:
    """The protocol scores windows min-max scaled to [0, 1] (the predictors' sigmoid outputs live there)."""
    lo, hi = float(real.min()), float(real.max())
    if lo < -RANGE_TOL or hi > 1 + RANGE_TOL:
        raise UserError(where, f"real windows must be min-max scaled to [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


def check_pair(real: np.ndarray, synth: np.ndarray, where: str) -> None:
    """Same window length and channel count."""
    if real.shape[1:] != synth.shape[1:]:
        raise UserError(where, f"real windows {real.shape[1:]} and synthetic windows {synth.shape[1:]} "
                               "differ in (steps, channels)")


def reference_hidden(channels: int, hidden: int | None, where: str) -> int:
    """The references' GRU width int(C/2), or an explicit override (a deviation, recorded by the callers).

    int(C/2) is 0 for C = 1: TF then builds a 0-unit GRU whose read-out is sigmoid(bias), the same for every
    window, so the classifier labels all test windows alike and the score is |0.5 - 0.5| = 0 whatever the data
    (exactly 0 when the two test sets have equal size). A score that cannot fail is refused instead.
    """
    h = int(channels / 2) if hidden is None else int(hidden)
    if h < 1:
        raise UserError(where, f"the reference GRU width int(C/2) is {h} for C = {channels} channel(s): the "
                               "reference score is then constant (0); pass an explicit hidden size to score "
                               "anyway (reported as a deviation)")
    return h


def run_rngs(seed: int, score: str, runs: int) -> list[np.random.Generator]:
    """Run r of `score` draws everything (initial weights, splits, batches) from default_rng([seed, stream, r])."""
    return [np.random.default_rng([seed, STREAMS[score], r]) for r in range(runs)]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch intra-op threads set to `n` inside the block and restored afterwards (tiny GRUs: 1 is fastest)."""
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def summarize(values: list[float]) -> dict[str, Any]:
    """mean, std (ddof 0) and Diffusion-TS's "±": `display_scores` in Utils/metric_utils.py prints
    mean ± sem * t.ppf(0.975, n - 1) (a 95 % t-interval half-width, sem with ddof 1); its paper's ± are that.
    (Its code hard-codes 5 - 1 degrees of freedom; here n - 1, the same for the standard 5 runs.)"""
    v = np.asarray(values, dtype=np.float64)
    ci = float(scipy.stats.sem(v) * scipy.stats.t.ppf(0.975, len(v) - 1)) if len(v) > 1 else float("nan")
    return {"mean": float(v.mean()), "std": float(v.std()), "ci95": ci, "values": v.tolist()}
