"""Correlational score of the Diffusion-TS benchmark protocol, as its code computes it.

Reference read and followed: Diffusion-TS `Utils/cross_correlation.py` (`cacf_torch`, `CrossCorrelLoss`) and
the cell that calls it in `Experiments/metric_pytorch.ipynb`:
- each set is standardised per channel over ALL its windows and steps together (`dim=(0, 1)`: mean and the
  unbiased std, torch's default, of the N * T values of the channel), each set with its own statistics;
- for every channel pair (i, j) with j <= i (`torch.tril_indices(C, C)`, the diagonal included, row-major order
  (0,0), (1,0), (1,1), (2,0), ...), the lag-0 cross-correlation of a window is mean_t x_i(t) x_j(t)
  (`max_lag=1` keeps only lag 0), then averaged over the set's windows: a vector of C (C + 1) / 2 numbers;
- score = sum |corr(synthetic) - corr(real)| / 10 (`norm_foo = abs(x).sum(0)`, then `loss / 10.`);
- one run draws size = int(N_real / iterations) real windows and as many synthetic windows, each uniformly WITH
  replacement (`np.random.randint`), the synthetic ones from the whole synthetic set (the notebook passes all
  of `fake_data`, not `fake[:len(real)]`); iterations = 5 runs, mean ± 95 % t-interval.
Here `runs` plays the notebook's `iterations` in both places (draw size int(N / runs), and the number of runs).
The diagonal terms are mean x_i^2 = (n - 1) / n for n = size * T standardised values in both sets, so they add
nothing; they are kept because the reference sums over them.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dataloader.errors import UserError

from .common import check_pair, check_windows, run_rngs, summarize

SCALE = 10.0     # CrossCorrelLoss.compute: `return loss / 10.`


def cross_correlation(x: np.ndarray) -> np.ndarray:
    """cacf_torch(x, max_lag=1).mean(0)[0]: lag-0 cross-correlations `(C (C + 1) / 2,)` of windows x `(n, T, C)`,
    the set standardised per channel over (windows, steps) with ddof 1."""
    x = np.asarray(x, dtype=np.float64)
    # a channel that is constant over the drawn windows has std 0: the reference (torch) then gives NaN, and so
    # does this (no warning); the report shows NaN rather than a made-up number
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - x.mean(axis=(0, 1), keepdims=True)) / x.std(axis=(0, 1), ddof=1, keepdims=True)
    rows, cols = np.tril_indices(x.shape[2])               # same order as torch.tril_indices(C, C)
    return (z[:, :, rows] * z[:, :, cols]).mean(axis=1).mean(axis=0)


def correlational_value(real: np.ndarray, synth: np.ndarray) -> float:
    """CrossCorrelLoss(real).compute(synth): sum |cacf(synth) - cacf(real)| / 10 for window sets `(n, T, C)`."""
    return float(np.abs(cross_correlation(synth) - cross_correlation(real)).sum() / SCALE)


def correlational_runs(real: np.ndarray, synth: np.ndarray, real_pools: np.ndarray, synth_pools: np.ndarray,
                       rngs: list[np.random.Generator], size: int) -> list[float]:
    """One value per run: `size` windows drawn with replacement from real[real_pools[r]] and from
    synth[synth_pools[r]] (pools `(R, n)` of window indices)."""
    out = []
    for pr, ps, g in zip(real_pools, synth_pools, rngs):
        ir = pr[g.integers(0, len(pr), size)]
        is_ = ps[g.integers(0, len(ps), size)]
        out.append(correlational_value(real[ir], synth[is_]))
    return out


def correlational_score(real: np.ndarray, synth: np.ndarray, *, runs: int = 5, seed: int = 0) -> dict[str, Any]:
    """Diffusion-TS correlational score of synthetic windows `(M, T, C)` against real windows `(N, T, C)`.
    Lower is better. Returns {"mean", "std", "ci95", "values", "size" (windows drawn per set and run), "runs",
    "seed"}. Deterministic for a seed."""
    where = "correlational_score"
    if runs < 1:
        raise UserError(where, f"runs must be >= 1, got {runs}")
    real = check_windows(real, f"{where}: real", 1)
    synth = check_windows(synth, f"{where}: synthetic", 1)
    check_pair(real, synth, where)
    size = int(len(real) / runs)
    if size < 2:
        raise UserError(where, f"int(N_real / runs) = {size}: need at least 2 windows per draw")
    rngs = run_rngs(seed, "correlational", runs)
    vals = correlational_runs(real, synth, np.tile(np.arange(len(real)), (runs, 1)),
                              np.tile(np.arange(len(synth)), (runs, 1)), rngs, size)
    return {**summarize(vals), "size": size, "runs": runs, "seed": seed}
