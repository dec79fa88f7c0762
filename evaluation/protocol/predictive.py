"""Predictive score of the TimeGAN / Diffusion-TS benchmark protocol ("train on synthetic, test on real").

References read and followed: TimeGAN `metrics/predictive_metrics.py` and Diffusion-TS
`Utils/predictive_metric.py` (the same TF1 code; Diffusion-TS only adds a progress bar). One run, windows
`(N, T, C)` in [0, 1]:
- inputs: channels 0..C-2 of steps 0..T-2 (`data[i][:-1, :(dim-1)]`); target: channel C-1 of steps 1..T-1
  (`data[i][1:, (dim-1)]`), so the network reads the other channels up to step t and predicts the last channel
  at step t + 1;
- network: a 1-layer TF1 GRUCell with int(C/2) units (C = all channels, not C - 1), a dense(1) read-out of
  EVERY step's output (`p_outputs`), sigmoid (evaluation/protocol/tf_gru.py); sequence lengths T - 1 for every
  window, so they mask nothing;
- 5,000 iterations, each on 128 synthetic windows drawn without replacement (a permutation, the first 128), one
  Adam step (TF1 defaults) on `tf.losses.absolute_difference` = the mean |y - y_hat| over batch and steps;
- trained on all the synthetic windows it is given, tested on ALL real windows: per window
  `mean_absolute_error` over its T - 1 steps, averaged over windows (= the mean over every real target value,
  since all windows have the same length).
Both references are called with `fake[:len(real)]` or as many fakes as reals; here the first min(M, N)
synthetic windows are used, as Diffusion-TS does.

C = 1 has no input channel (dim - 1 = 0) and int(1/2) = 0 units: the reference network then outputs one
constant, so it is refused here (UserError) rather than reported as a score.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dataloader.errors import UserError

from .common import check_pair, check_windows, reference_hidden, run_rngs, summarize, torch_threads
from .discriminative import draw_batch
from .tf_gru import TFAdam, gru_states, init_gru_dense

ITERATIONS, BATCH = 5000, 128
EVAL_CHUNK = 2048


def split_io(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows `(N, T, C)` -> inputs `(N, T - 1, C - 1)` (channels 0..C-2, steps 0..T-2) and targets `(N, T - 1)`
    (channel C-1, steps 1..T-1)."""
    c = x.shape[2]
    return np.ascontiguousarray(x[:, :-1, : c - 1]), np.ascontiguousarray(x[:, 1:, c - 1])


def step_predictions(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """sigmoid(dense(h_t)) at every step: `(R, B, T')` for inputs `(R, B, T', D)`."""
    states = torch.stack(gru_states(p, x), dim=1)                           # (R, T', H, B)
    logits = torch.einsum("rh,rthb->rbt", p["w_o"][:, :, 0], states) + p["b_o"][:, :, :1]
    return torch.sigmoid(logits)


@torch.no_grad()
def real_mae(p: dict[str, torch.Tensor], x_in: torch.Tensor, y: torch.Tensor, idx: np.ndarray) -> list[float]:
    """Per run, the mean over windows idx[r] of each window's mean |y - y_hat| over its steps."""
    total = torch.zeros(idx.shape[0], dtype=torch.float64)
    for i in range(0, idx.shape[1], EVAL_CHUNK):
        ib = torch.from_numpy(idx[:, i: i + EVAL_CHUNK])
        err = (step_predictions(p, x_in[ib]) - y[ib]).abs().double()        # (R, b, T')
        total += err.mean(dim=2).sum(dim=1)
    return (total / idx.shape[1]).tolist()


def predictive_runs(real: np.ndarray, synth: np.ndarray, train_pools: np.ndarray, test_pools: np.ndarray,
                    rngs: list[np.random.Generator], hidden: int, iterations: int = ITERATIONS,
                    batch: int = BATCH) -> dict[str, Any]:
    """Train one predictor per run on synth[train_pools[r]] and test it on real[test_pools[r]], all runs together.

    real `(N, T, C)`, synth `(M, T, C)`, pools `(R, n)` of window indices. Returns per-run "maes" and sizes.
    """
    s_in, s_y = (torch.from_numpy(a) for a in split_io(synth))
    r_in, r_y = (torch.from_numpy(a) for a in split_io(real))
    p = init_gru_dense(rngs, s_in.shape[2], hidden)
    opt = TFAdam(list(p.values()))
    for _ in range(iterations):
        ib = torch.from_numpy(draw_batch(train_pools, rngs, batch))        # (R, b)
        loss = (step_predictions(p, s_in[ib]) - s_y[ib]).abs().mean(dim=(1, 2))
        loss.sum().backward()                    # sum over runs: each run's gradient is its own p_loss's
        opt.step()
    return {"maes": real_mae(p, r_in, r_y, test_pools), "n_train_synth": train_pools.shape[1],
            "n_test_real": test_pools.shape[1], "batch": min(batch, train_pools.shape[1])}


def predictive_score(real: np.ndarray, synth: np.ndarray, *, runs: int = 5, seed: int = 0,
                     iterations: int = ITERATIONS, batch: int = BATCH, hidden: int | None = None,
                     threads: int = 1) -> dict[str, Any]:
    """Protocol predictive score: GRUs trained on synthetic windows `(M, T, C)`, MAE on real windows `(N, T, C)`,
    both in [0, 1] (the first min(M, N) synthetic windows are used). Lower is better.

    Returns {"mean", "std", "ci95", "values" (one MAE per run), sizes, "hidden", "hidden_is_reference",
    "target_channel", "iterations", "batch", "runs", "seed"}. Deterministic for a seed.
    """
    where = "predictive_score"
    if iterations < 1 or batch < 1 or runs < 1:
        raise UserError(where, f"iterations, batch and runs must be >= 1, got {iterations}, {batch}, {runs}")
    real = check_windows(real, f"{where}: real", 1)
    synth = check_windows(synth, f"{where}: synthetic", 1)
    check_pair(real, synth, where)
    c = real.shape[2]
    if c < 2:
        raise UserError(where, "needs at least 2 channels: the reference predicts the last channel from the "
                               "others (C - 1 = 0 inputs for C = 1)")
    synth = synth[: len(real)]
    h = reference_hidden(c, hidden, where)
    rngs = run_rngs(seed, "predictive", runs)
    with torch_threads(threads):
        res = predictive_runs(real, synth, np.tile(np.arange(len(synth)), (runs, 1)),
                              np.tile(np.arange(len(real)), (runs, 1)), rngs, h, iterations, batch)
    return {**summarize(res.pop("maes")), **res, "hidden": h, "hidden_is_reference": h == int(c / 2),
            "target_channel": c - 1, "iterations": iterations, "runs": runs, "seed": seed}
