"""TimeGAN predictive score (Yoon et al. 2019; the same protocol in Diffusion-TS), docs/evaluation.md section 1.

Train on synthetic, test on real: a post-hoc 1-layer GRU reads channels 0..C-2 up to step t and predicts the
last channel at step t + 1; it is trained on ALL synthetic windows and scored by its mean absolute error on the
real (test-patient) windows. Lower is better; compare with the same score trained on real train windows.

Protocol (defaults = TimeGAN's):
- input x[:, :C-1, :-1], target x[:, C-1, 1:]; for C == 1 the channel predicts its own next step
  (input x[:, 0, :-1], target x[:, 0, 1:]): a one-step-ahead autoregression, since there is no "other" channel;
- hidden size int(C/2) as in TimeGAN, raised to at least 4 like the discriminative score;
- per-step read-out sigmoid(w h_t + b), loss = mean absolute error, Adam lr 1e-3, batch 128,
  `iterations` = 5000 (TimeGAN's and Diffusion-TS's setting);
- MAE per real window (mean over time) averaged over windows; 5 runs (different initialisations and batches,
  run r from default_rng([seed, r])); mean and std (ddof=0);
- the same block-mean rule as the discriminative score (at most `max_steps` = 256 steps; the block size is
  returned) and the same scaling: every channel to [0, 1] with the min and max of the REAL windows, so the
  MAE is in units of each target channel's real range.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dataloader.errors import UserError

from . import METRICS
from .discriminative import gru_hidden, init_readout, prepare_pair
from .gru import Adam, BatchedGRU, sigmoid_, small_math
from .parallel import map_groups

MIN_WINDOWS = METRICS["predictive"].min_windows


def _split_io(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows `(N, C, L)` -> inputs `(N, max(C-1, 1), L-1)` and next-step targets of the last channel `(N, L-1)`."""
    c = x.shape[1]
    inp = x[:, : c - 1, :-1] if c > 1 else x[:, :1, :-1]
    return inp, x[:, c - 1, 1:]


def _predict(p: dict[str, np.ndarray], inp: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Predictions `(R, N, T)` of the R GRUs for the same inputs `(N, D, T)` (in chunks to bound memory)."""
    runs = p["w_out"].shape[0]
    out = []
    net = BatchedGRU(p)
    for i in range(0, len(inp), chunk):
        xb = inp[i: i + chunk]                                               # (b, D, T)
        xt = xb.transpose(2, 1, 0)[:, None]                                  # (T, 1, D, b)
        x = np.ascontiguousarray(np.broadcast_to(xt, (xt.shape[0], runs) + xt.shape[2:]))
        h = net.forward(x)[1:]                                               # (T, R, H, b)
        a = np.einsum("rh,trhb->rbt", p["w_out"], h) + p["b_out"][:, None, None]
        out.append(sigmoid_(a))
    return np.concatenate(out, axis=1)


def _pred_runs(run_ids: list[int], s_in: np.ndarray, s_y: np.ndarray, r_in: np.ndarray, r_y: np.ndarray,
               iterations: int, batch: int, hidden: int, lr: float, seed: int) -> list[float]:
    """Train the predictors of the given runs together on synthetic (s_in, s_y); their MAEs on real (r_in, r_y)."""
    p, rngs = init_readout(run_ids, s_in.shape[1], hidden, seed)
    net, opt = BatchedGRU(p), Adam(p, lr=lr)
    bt = min(batch, len(s_in))
    with small_math():
        for _ in range(iterations):
            ib = np.stack([rng.choice(len(s_in), bt, replace=False) for rng in rngs])     # (R, bt)
            x = np.ascontiguousarray(s_in[ib].transpose(3, 0, 2, 1))                       # (T, R, D, bt)
            y = s_y[ib]                                                                    # (R, bt, T)
            h = net.forward(x)[1:]                                                         # (T, R, H, bt)
            yhat = sigmoid_(np.einsum("rh,trhb->rbt", p["w_out"], h) + p["b_out"][:, None, None])
            # d mean|yhat - y| / d logit, the mean over batch and time (TimeGAN: tf.losses.absolute_difference)
            da = (np.sign(yhat - y) * yhat * (1.0 - yhat) / (bt * y.shape[2])).astype(np.float32)
            grads = net.backward(dh_ext=np.einsum("rh,rbt->trhb", p["w_out"], da))
            grads["w_out"] = np.einsum("rbt,trhb->rh", da, h)
            grads["b_out"] = da.sum(axis=(1, 2))
            opt.step(grads)
        pred = _predict(p, r_in)                                                           # (R, N, T)
    return np.abs(pred - r_y[None]).mean(axis=2).mean(axis=1).tolist()


def predictive_score(real: np.ndarray, synth: np.ndarray, *, iterations: int = 5000, batch: int = 128,
                     runs: int = 5, max_steps: int | None = 256, hidden: int | None = None, lr: float = 1e-3,
                     seed: int = 0, workers: int = 1) -> dict[str, Any]:
    """TimeGAN predictive score: GRUs trained on synthetic windows `(N2, C, L)`, MAE on real windows `(N1, C, L)`.

    Returns {"mean", "std", "maes" (one per run), "block", "steps" (GRU sequence length L' - 1), "hidden",
    "target_channel", "n_train", "n_test", "iterations", "batch", "runs", "seed", "scaling"}.
    To get the real-data reference, pass real train windows as `synth`. `workers` > 1 trains the runs in that
    many processes; the result does not depend on it. Deterministic for a seed.
    """
    where = "predictive_score"
    if iterations < 1 or batch < 1 or runs < 1:
        raise UserError(where, f"iterations, batch and runs must be >= 1, got {iterations}, {batch}, {runs}")
    xr, xs, block = prepare_pair(real, synth, where, max_steps, MIN_WINDOWS)
    if xr.shape[2] < 3:
        raise UserError(where, f"windows need at least 3 steps after block means, got {xr.shape[2]}")
    c = xr.shape[1]
    hid = hidden or gru_hidden(c)
    s_in, s_y = _split_io(xs)
    r_in, r_y = _split_io(xr)
    maes = np.asarray(map_groups(_pred_runs, runs, workers, s_in, s_y, r_in, r_y, iterations, batch, hid, lr,
                                   seed))
    return {"mean": float(maes.mean()), "std": float(maes.std()), "maes": maes.tolist(), "block": block,
            "steps": int(r_in.shape[2]), "hidden": hid, "target_channel": c - 1, "n_train": len(xs),
            "n_test": len(xr), "iterations": iterations, "batch": min(batch, len(xs)), "runs": runs,
            "seed": seed, "scaling": "per-channel min-max of the real windows"}
