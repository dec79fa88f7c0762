"""TimeGAN discriminative score (Yoon et al. 2019; the same protocol in Diffusion-TS), docs/evaluation.md section 1.

A post-hoc 1-layer GRU classifier learns to tell real from synthetic windows; score = |accuracy - 0.5| on
held-out windows (0: indistinguishable, 0.5: perfectly separable).

Protocol (defaults = the spec):
- equal numbers of real and synthetic windows: each run draws n = min(N_real, N_synth) of each at random;
- each set is split 80/20 on its own (TimeGAN's `train_test_divide`); train on the 80%, score on the 20%;
- hidden size int(C/2) as in TimeGAN, but at least 4 (2-channel data would otherwise get 1 unit);
- `iterations` = 2000 Adam steps (lr 1e-3), each on a batch of 128 real + 128 synthetic training windows;
  loss = BCE(real) + BCE(synthetic) on a linear read-out of the last hidden state (TimeGAN's discriminator);
- 5 runs (different draws, splits, initialisations and batches, run r from default_rng([seed, r]));
  mean and std (ddof=0) of the scores;
- windows longer than `max_steps` = 256 samples are read as means of consecutive blocks of
  b = ceil(L / 256) samples (a last partial block is dropped), so the GRU sees at most 256 steps; b is returned;
- every channel is scaled to [0, 1] with the min and max of the REAL windows (after block means); synthetic
  data is scaled with the same numbers, so it may fall outside [0, 1] (TimeGAN scales each set on its own,
  which would hide a level shift).
The runs are trained together as one batched numpy GRU (evaluation/metrics/gru.py) for speed on CPUs, optionally split
over `workers` processes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dataloader.errors import UserError

from . import METRICS
from .gru import Adam, BatchedGRU, init_params, sigmoid_, small_math
from .parallel import map_groups
from .prep import as_windows, block_mean, block_size_for, minmax_apply, minmax_fit, same_shape_tail

MIN_PER_SET = METRICS["discriminative"].min_windows   # 80/20 split must leave at least 2 held-out windows per set


def gru_hidden(channels: int) -> int:
    """TimeGAN's hidden size int(C/2), raised to at least 4 (docs/evaluation.md)."""
    return max(4, int(channels / 2))


def prepare_pair(real: np.ndarray, synth: np.ndarray, where: str, max_steps: int | None,
                 min_n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Check, block-mean and min-max scale (with real's per-channel min/max) two window sets `(N, C, L)`.

    Returns real `(N1, C, L')`, synth `(N2, C, L')` as float32 and the block size b (L' = L // b).
    """
    real = as_windows(real, f"{where}: real", min_n)
    synth = as_windows(synth, f"{where}: synthetic", min_n)
    same_shape_tail(real, synth, where)
    block = block_size_for(real.shape[2], max_steps)
    real, synth = block_mean(real, block), block_mean(synth, block)
    lo, rng = minmax_fit(real)
    return (minmax_apply(real, lo, rng).astype(np.float32), minmax_apply(synth, lo, rng).astype(np.float32),
            block)


def _time_major(x: np.ndarray) -> np.ndarray:
    """`(R, B, C, L)` -> `(L, R, C, B)` contiguous, the layout of evaluation/metrics/gru.py."""
    return np.ascontiguousarray(x.transpose(3, 0, 2, 1))


def init_readout(runs: list[int], n_in: int, hidden: int, seed: int) -> tuple[dict[str, np.ndarray],
                                                                                 list[np.random.Generator]]:
    """GRU + linear read-out parameters for the given run numbers, each from its own generator
    default_rng([seed, run]), so a run's numbers do not depend on which runs share its batch or process."""
    rngs = [np.random.default_rng([seed, r]) for r in runs]
    k = 1.0 / np.sqrt(hidden)
    parts = []
    for rng in rngs:
        p = init_params(1, n_in, hidden, rng)
        p["w_out"] = rng.uniform(-k, k, size=(1, hidden)).astype(np.float32)    # torch.nn.Linear init
        p["b_out"] = rng.uniform(-k, k, size=(1,)).astype(np.float32)
        parts.append(p)
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}, rngs


def _disc_runs(run_ids: list[int], xr: np.ndarray, xs: np.ndarray, n: int, iterations: int, batch: int,
               hidden: int, lr: float, seed: int) -> list[float]:
    """Train and score the discriminators of the given runs together; returns their held-out accuracies."""
    runs = len(run_ids)
    n_train = int(0.8 * n)
    p, rngs = init_readout(run_ids, xr.shape[1], hidden, seed)
    # per run: draw n of each set, split each 80/20 on its own
    tr_r, tr_s, te_r, te_s = [], [], [], []
    for rng in rngs:
        pr, ps = rng.choice(len(xr), n, replace=False), rng.choice(len(xs), n, replace=False)
        tr_r.append(pr[:n_train])
        te_r.append(pr[n_train:])
        tr_s.append(ps[:n_train])
        te_s.append(ps[n_train:])
    tr_r, tr_s, te_r, te_s = map(np.asarray, (tr_r, tr_s, te_r, te_s))
    net, opt = BatchedGRU(p), Adam(p, lr=lr)
    bt = min(batch, n_train)
    y = np.concatenate([np.ones(bt), np.zeros(bt)]).astype(np.float32)      # 1 = real, 0 = synthetic
    run_ix = np.arange(runs)[:, None]
    with small_math():
        for _ in range(iterations):
            ib = np.stack([rng.choice(n_train, bt, replace=False) for rng in rngs])    # (R, bt)
            ibs = np.stack([rng.choice(n_train, bt, replace=False) for rng in rngs])
            xb = np.concatenate([xr[tr_r[run_ix, ib]], xs[tr_s[run_ix, ibs]]], axis=1)
            h = net.forward(_time_major(xb))[-1]                             # (R, H, 2bt) last hidden state
            prob = sigmoid_(np.einsum("rh,rhb->rb", p["w_out"], h) + p["b_out"][:, None])
            dlogit = (prob - y[None]) / bt                                   # BCE(real) + BCE(synth), each a mean
            grads = net.backward(dh_last=p["w_out"][:, :, None] * dlogit[:, None, :])
            grads["w_out"] = np.einsum("rb,rhb->rh", dlogit, h)
            grads["b_out"] = dlogit.sum(axis=1)
            opt.step(grads)
        xt = np.concatenate([xr[te_r], xs[te_s]], axis=1)                     # (R, 2 n_test, C, L')
        h = BatchedGRU(p).forward(_time_major(xt))[-1]
    prob = sigmoid_(np.einsum("rh,rhb->rb", p["w_out"], h) + p["b_out"][:, None])
    n_test = n - n_train
    yt = np.concatenate([np.ones(n_test), np.zeros(n_test)])
    return ((prob > 0.5) == (yt[None] > 0.5)).mean(axis=1).tolist()


def discriminative_score(real: np.ndarray, synth: np.ndarray, *, iterations: int = 2000, batch: int = 128,
                         runs: int = 5, max_steps: int | None = 256, hidden: int | None = None, lr: float = 1e-3,
                         seed: int = 0, workers: int = 1) -> dict[str, Any]:
    """TimeGAN discriminative score of synthetic windows `(N2, C, L)` against real windows `(N1, C, L)`.

    `workers` > 1 trains the runs in that many processes (each single-threaded); the result does not depend on
    it. Returns {"mean", "std", "scores" (one per run), "accuracies", "block" (block-mean size b), "steps" (GRU
    sequence length), "hidden", "n_per_set", "n_train", "n_test", "iterations", "batch", "runs", "seed"}.
    Deterministic for a seed.
    """
    where = "discriminative_score"
    if iterations < 1 or batch < 1 or runs < 1:
        raise UserError(where, f"iterations, batch and runs must be >= 1, got {iterations}, {batch}, {runs}")
    xr, xs, block = prepare_pair(real, synth, where, max_steps, MIN_PER_SET)
    n = min(len(xr), len(xs))
    n_train = int(0.8 * n)
    hid = hidden or gru_hidden(xr.shape[1])
    acc = np.asarray(map_groups(_disc_runs, runs, workers, xr, xs, n, iterations, batch, hid, lr, seed))
    scores = np.abs(acc - 0.5)
    return {"mean": float(scores.mean()), "std": float(scores.std()), "scores": scores.tolist(),
            "accuracies": acc.tolist(), "block": block, "steps": int(xr.shape[2]), "hidden": hid,
            "n_per_set": n, "n_train": n_train, "n_test": n - n_train, "iterations": iterations,
            "batch": min(batch, n_train), "runs": runs, "seed": seed,
            "scaling": "per-channel min-max of the real windows"}
