"""The field's time-series generation benchmark protocol (TimeGAN, Yoon et al. 2019; Diffusion-TS, Yuan & Qiao
2024), computed as the reference code computes it, on windows `(N, T, C)` min-max scaled to [0, 1].

Scores (each module's docstring lists the reference details it follows and where TimeGAN and Diffusion-TS
differ): `discriminative` (post-hoc GRU classifier, |accuracy - 0.5|), `predictive` (GRU trained on synthetic
windows to predict the last channel one step ahead, MAE on real windows), `correlational` (Diffusion-TS's L1
distance of lag-0 cross-correlation vectors). Each is run `runs` times (default 5, as both references) and
summarised as mean, std (ddof 0) and Diffusion-TS's ± (95 % t-interval half-width).

Context-FID is left out. Diffusion-TS computes it with a TS2Vec encoder (Models/ts2vec: a 10-block dilated
convolutional encoder, 320 output dims, hierarchical contrastive loss on random crops, an SWA-averaged copy
used for encoding, 200 or 600 iterations of batch 8, `encoding_window='full_series'` max-pooling) trained
afresh on the real windows in every run, then the Fréchet distance of the embeddings. A faithful version means
re-implementing TS2Vec's training (crop sampling, masking, loss, averaging) and checking it against the
original; a simplified stand-in would not be comparable with published Context-FID numbers, so there is none.

The real-vs-real row (`real_vs_real=True`): in run r the real windows are shuffled by default_rng([seed, 4, r])
and cut into two disjoint halves A (the first floor(N/2)) and B (the next floor(N/2)); every score is then
computed with A as "real" and B as "synthetic" (discriminative: A vs B, each split 80/20; predictive: trained
on B, MAE on A; correlational: the protocol's draws, int(N/runs) windows with replacement from A and from B).
Caveat: stride-1 windows of one series overlap, so most windows of B have a one-step-shifted neighbour in A;
the row is a "same distribution, shared neighbours" floor, lower than independent data would give.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from dataloader.errors import UserError

from . import discriminative as disc
from . import predictive as pred
from .common import (check_pair, check_real_range, check_windows, reference_hidden, run_rngs, summarize,
                     torch_threads)
from .correlational import correlational_runs

METRICS = ("discriminative", "predictive", "correlational")


def real_halves(n: int, runs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The real-vs-real draw: per run, a permutation of n windows cut into halves A, B `(R, n // 2)` each."""
    perms = np.stack([g.permutation(n) for g in run_rngs(seed, "real_vs_real", runs)])
    return perms[:, : n // 2], perms[:, n // 2: 2 * (n // 2)]


def _one_score(name: str, real: np.ndarray, synth: np.ndarray, pools: tuple[np.ndarray, np.ndarray], runs: int,
               seed: int, opts: dict[str, Any]) -> dict[str, Any]:
    """Score `name` with per-run pools (real_pools, synth_pools) of window indices into real and synth."""
    pr, ps = pools
    rngs = run_rngs(seed, name, runs)
    if name == "discriminative":
        res = disc.discriminative_runs(real, synth, pr, ps, rngs, opts["hidden"], opts["disc_iterations"],
                                       opts["batch"])
        return {**summarize(res.pop("scores")), **res}
    if name == "predictive":
        res = pred.predictive_runs(real, synth, ps, pr, rngs, opts["hidden"], opts["pred_iterations"],
                                   opts["batch"])
        return {**summarize(res.pop("maes")), **res}
    size = int(len(real) / runs)
    return {**summarize(correlational_runs(real, synth, pr, ps, rngs, size)), "size": size}


def _check(real: Any, synthetic: Any, metrics: tuple[str, ...], runs: int,
           hidden: int | None) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Checked real and synthetic windows and the GRU width (None when no GRU score is asked for)."""
    where = "score_protocol"
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise UserError(where, f"unknown metric(s) {bad or metrics}; choose from {', '.join(METRICS)}")
    if runs < 1:
        raise UserError(where, f"runs must be >= 1, got {runs}")
    real = check_windows(real, f"{where}: real", max(10, 2 * runs))
    synth = check_windows(synthetic, f"{where}: synthetic", disc.MIN_PER_SET)
    check_pair(real, synth, where)
    check_real_range(real, f"{where}: real")
    if "predictive" in metrics and real.shape[2] < 2:
        raise UserError(where, "the predictive score needs at least 2 channels (it predicts the last from the rest)")
    gru = {"discriminative", "predictive"} & set(metrics)
    return real, synth, reference_hidden(real.shape[2], hidden, where) if gru else None


def score_protocol(real: np.ndarray, synthetic: np.ndarray, runs: int = 5, seed: int = 0, *,
                   metrics: tuple[str, ...] = METRICS, real_vs_real: bool = True,
                   disc_iterations: int = disc.ITERATIONS, pred_iterations: int = pred.ITERATIONS,
                   batch: int = disc.BATCH, hidden: int | None = None, threads: int = 1,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The protocol's scores of synthetic windows `(M, T, C)` against real windows `(N, T, C)` in [0, 1].

    Returns {"scores": {metric: summary}, "real_vs_real": {metric: summary} (if asked), "settings", "seconds":
    {metric: wall seconds of the protocol row}, "synthetic_outside_01": fraction of synthetic values outside
    [0, 1]}. A summary is {"mean", "std", "ci95", "values", ...sizes}. `hidden`, `disc_iterations`,
    `pred_iterations` and `batch` other than the defaults are deviations from the protocol and are flagged in
    "settings". Deterministic for a seed.
    """
    real, synth, h = _check(real, synthetic, tuple(metrics), runs, hidden)
    disc_pred_synth = synth[: len(real)]            # Diffusion-TS: fake[:len(real)] for these two scores
    opts = {"hidden": h, "disc_iterations": disc_iterations, "pred_iterations": pred_iterations, "batch": batch}
    all_r = np.tile(np.arange(len(real)), (runs, 1))
    out: dict[str, Any] = {"scores": {}, "seconds": {}}
    if real_vs_real:
        out["real_vs_real"] = {}
        halves = real_halves(len(real), runs, seed)
    with torch_threads(threads):
        for name in metrics:
            s = synth if name == "correlational" else disc_pred_synth
            t0 = time.perf_counter()
            out["scores"][name] = _one_score(name, real, s, (all_r, np.tile(np.arange(len(s)), (runs, 1))),
                                             runs, seed, opts)
            out["seconds"][name] = round(time.perf_counter() - t0, 2)
            if real_vs_real:
                out["real_vs_real"][name] = _one_score(name, real, real, halves, runs, seed, opts)
            if progress:
                progress(name)
    out["settings"] = settings(real, synth, runs, seed, opts, hidden, batch, disc_iterations, pred_iterations)
    out["synthetic_outside_01"] = float(((synth < 0) | (synth > 1)).mean())
    return out


def settings(real: np.ndarray, synth: np.ndarray, runs: int, seed: int, opts: dict[str, Any], hidden: int | None,
             batch: int, disc_iterations: int, pred_iterations: int) -> dict[str, Any]:
    """What was scored and how, with the deviations from the reference protocol listed."""
    c = real.shape[2]
    reference = {"gru_hidden": (opts["hidden"], int(c / 2)), "batch": (batch, disc.BATCH),
                 "disc_iterations": (disc_iterations, disc.ITERATIONS),
                 "pred_iterations": (pred_iterations, pred.ITERATIONS)}
    dev = [f"{k} {v} (reference {ref})" for k, (v, ref) in reference.items()
           if v != ref and not (k == "gru_hidden" and (hidden is None or v is None))]
    return {"n_real": len(real), "n_synthetic": len(synth), "steps": real.shape[1], "channels": c,
            "runs": runs, "seed": seed, "gru_hidden": opts["hidden"], "batch": batch,
            "disc_iterations": disc_iterations, "pred_iterations": pred_iterations, "train_rate": disc.TRAIN_RATE,
            "deviations_from_reference": dev,
            "real_vs_real_draw": "per run: real windows shuffled by default_rng([seed, 4, r]), halves A = first "
                                 "floor(N/2), B = next floor(N/2); A plays real, B synthetic"}
