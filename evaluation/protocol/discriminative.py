"""Discriminative score of the TimeGAN / Diffusion-TS benchmark protocol, as the reference code computes it.

References read and followed: TimeGAN `metrics/discriminative_metrics.py` + `utils.py` (jsyoon0823/TimeGAN,
the `tf.compat.v1.nn.rnn_cell.GRUCell` + `dynamic_rnn` version) and Diffusion-TS `Utils/discriminative_metric.py`
+ `Utils/metric_utils.py` (Y-debug-sys/Diffusion-TS), which is the same algorithm through `tf.compat.v1`.

One run (windows `(N, T, C)` in [0, 1]):
- real and synthetic windows are each split 80/20 on their own (`train_test_divide`: a fresh permutation, the
  first int(0.8 n) train, the rest test), so the two test sets hold n_real - int(0.8 n_real) and
  n_synth - int(0.8 n_synth) windows;
- the classifier: a 1-layer TF1 GRUCell with int(C/2) units (C/2 truncated, exactly), a dense(1) read-out of
  the LAST hidden state (`d_last_states`; every window has length T, so the `sequence_length` argument masks
  nothing), logits -> sigmoid (evaluation/protocol/tf_gru.py);
- 2,000 iterations; each draws 128 real and, independently, 128 synthetic training windows without replacement
  (`batch_generator`: permutation, first 128; fewer if the train set is smaller) and takes one Adam step
  (TF1 defaults) on  mean sigmoid-CE(real logits, 1) + mean sigmoid-CE(synthetic logits, 0);
- accuracy on the two test sets together, a window counted real when sigmoid(logit) > 0.5 (strictly), and the
  score |accuracy - 0.5|. Diffusion-TS also returns the accuracy on each test set alone ("real_acc",
  "fake_acc"); they are returned here too.

Where the two references differ:
- TimeGAN's repository also has a later version of this file that builds the GRU with
  `tf.keras.layers.GRUCell` + `tf.keras.layers.RNN` (TF2 Keras: reset gate after the hidden matmul, orthogonal
  recurrent init, zero biases) and `tf.keras.layers.Dense`; Diffusion-TS kept the TF1 GRUCell version, which
  is the one followed here;
- what they are called with: TimeGAN's `main_timegan.py` scores all real windows against all generated ones
  (10 metric iterations, mean only); Diffusion-TS's `Experiments/metric_tensorflow.ipynb` scores all real
  training windows against `fake[:len(real)]` (the FIRST len(real) synthetic windows), 5 iterations, and prints
  mean ± a 95 % t-interval half-width. Here: `fake[:len(real)]`, 5 runs, mean, std and that interval.
- neither seeds anything (global numpy state, TF graph seeds); here run r draws from its own seeded generator.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dataloader.errors import UserError

from .common import check_pair, check_windows, reference_hidden, run_rngs, summarize, torch_threads
from .tf_gru import TFAdam, dense, gru_states, init_gru_dense

TRAIN_RATE = 0.8          # train_test_divide(train_rate=0.8)
ITERATIONS, BATCH = 2000, 128
MIN_PER_SET = 5           # int(0.8 n) >= 1 train and >= 1 test window per set
EVAL_CHUNK = 2048


def split_pools(pools: np.ndarray, rngs: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
    """train_test_divide for one set, per run: pools `(R, n)` (indices into the set) -> train `(R, int(0.8 n))`,
    test `(R, n - int(0.8 n))`, each run its own permutation."""
    n = pools.shape[1]
    n_train = int(n * TRAIN_RATE)
    perm = np.stack([pool[g.permutation(n)] for pool, g in zip(pools, rngs)])
    return perm[:, :n_train], perm[:, n_train:]


def draw_batch(train: np.ndarray, rngs: list[np.random.Generator], batch: int) -> np.ndarray:
    """batch_generator, per run: min(batch, n) of the run's train indices `(R, n)` without replacement -> `(R, b)`.
    (choice without replacement = the first b of a permutation, in distribution, and much cheaper.)"""
    n = train.shape[1]
    b = min(batch, n)
    return np.stack([row[g.choice(n, b, replace=False)] for row, g in zip(train, rngs)])


@torch.no_grad()
def predict_real(p: dict[str, torch.Tensor], x: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
    """Per run, whether each window x[idx[r]] is called real (sigmoid(logit) > 0.5): bool `(R, n)`."""
    out = []
    for i in range(0, idx.shape[1], EVAL_CHUNK):
        xb = x[torch.from_numpy(idx[:, i: i + EVAL_CHUNK])]                 # (R, b, T, C)
        out.append(torch.sigmoid(dense(p, gru_states(p, xb)[-1])) > 0.5)
    return torch.cat(out, dim=1)


def discriminative_runs(real: np.ndarray, synth: np.ndarray, real_pools: np.ndarray, synth_pools: np.ndarray,
                        rngs: list[np.random.Generator], hidden: int, iterations: int = ITERATIONS,
                        batch: int = BATCH) -> dict[str, Any]:
    """Train and test one classifier per run, all runs together.

    real `(N, T, C)`, synth `(M, T, C)`; real_pools `(R, n_r)` and synth_pools `(R, n_s)`: the windows run r may
    use (all of them for the protocol; disjoint halves of the real windows for the real-vs-real row).
    Returns per-run lists "scores", "accuracy", "real_acc", "fake_acc" and the sizes used.
    """
    xr, xs = torch.from_numpy(real), torch.from_numpy(synth)
    p = init_gru_dense(rngs, real.shape[2], hidden)
    opt = TFAdam(list(p.values()))
    tr_r, te_r = split_pools(real_pools, rngs)
    tr_s, te_s = split_pools(synth_pools, rngs)
    for _ in range(iterations):
        ib_r, ib_s = draw_batch(tr_r, rngs, batch), draw_batch(tr_s, rngs, batch)
        b_r = ib_r.shape[1]
        x = torch.cat([xr[torch.from_numpy(ib_r)], xs[torch.from_numpy(ib_s)]], dim=1)   # (R, b_r + b_s, T, C)
        logit = dense(p, gru_states(p, x)[-1])                                          # (R, b_r + b_s)
        loss_r = F.binary_cross_entropy_with_logits(logit[:, :b_r], torch.ones_like(logit[:, :b_r]),
                                                    reduction="none").mean(dim=1)
        loss_s = F.binary_cross_entropy_with_logits(logit[:, b_r:], torch.zeros_like(logit[:, b_r:]),
                                                    reduction="none").mean(dim=1)
        (loss_r + loss_s).sum().backward()       # sum over runs: each run's gradient is its own d_loss's
        opt.step()
    hit_r = predict_real(p, xr, te_r).double()                                   # (R, n_te_r) 1 = right
    hit_s = (~predict_real(p, xs, te_s)).double()                                # (R, n_te_s) 1 = right
    acc = (hit_r.sum(1) + hit_s.sum(1)) / (hit_r.shape[1] + hit_s.shape[1])
    return {"scores": (acc - 0.5).abs().tolist(), "accuracy": acc.tolist(), "real_acc": hit_r.mean(1).tolist(),
            "fake_acc": hit_s.mean(1).tolist(), "n_train_real": tr_r.shape[1], "n_test_real": te_r.shape[1],
            "n_train_synth": tr_s.shape[1], "n_test_synth": te_s.shape[1],
            "batch_real": min(batch, tr_r.shape[1]), "batch_synth": min(batch, tr_s.shape[1])}


def discriminative_score(real: np.ndarray, synth: np.ndarray, *, runs: int = 5, seed: int = 0,
                         iterations: int = ITERATIONS, batch: int = BATCH, hidden: int | None = None,
                         threads: int = 1) -> dict[str, Any]:
    """Protocol discriminative score of synthetic windows `(M, T, C)` against real windows `(N, T, C)`, both in
    [0, 1]; the first min(M, N) synthetic windows are used, as Diffusion-TS does. Lower is better (0 to 0.5).

    Returns {"mean", "std", "ci95", "values" (one score per run), "accuracy", "real_acc", "fake_acc", sizes,
    "hidden", "hidden_is_reference", "iterations", "batch", "runs", "seed"}. Deterministic for a seed.
    """
    where = "discriminative_score"
    if iterations < 1 or batch < 1 or runs < 1:
        raise UserError(where, f"iterations, batch and runs must be >= 1, got {iterations}, {batch}, {runs}")
    real = check_windows(real, f"{where}: real", MIN_PER_SET)
    synth = check_windows(synth, f"{where}: synthetic", MIN_PER_SET)
    check_pair(real, synth, where)
    synth = synth[: len(real)]
    h = reference_hidden(real.shape[2], hidden, where)
    rngs = run_rngs(seed, "discriminative", runs)
    with torch_threads(threads):
        res = discriminative_runs(real, synth, np.tile(np.arange(len(real)), (runs, 1)),
                                  np.tile(np.arange(len(synth)), (runs, 1)), rngs, h, iterations, batch)
    return {**summarize(res.pop("scores")), **res, "hidden": h,
            "hidden_is_reference": h == int(real.shape[2] / 2), "iterations": iterations, "runs": runs,
            "seed": seed}
