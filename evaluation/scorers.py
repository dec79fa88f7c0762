"""One function per metric of the registry (`evaluation/metrics/__init__.py`): each computes its metric on
one set of windows and returns the report's JSON-ready entry. `SCORERS` maps the metric names to them, in the
registry's order.

The floor row is scored by the same functions with the train patients' windows standing in for the synthetic
ones; its label accuracy and TRTS are read on the reference windows (the FCN was trained on train patients, and
its held-out accuracy is what a perfect generator would reach).
Distances (DTW, RMSE, PRD, MMD, diversity) are in physical units (bpm, mV, ...), all channels together.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .context import EvalContext, fcn_features, physio_features, physio_names
from .fcn.fid import fid_from_features, inception_score
from .metrics import METRICS
from .metrics.discriminative import discriminative_score
from .metrics.distance import diversity, dtw_nn, mmd_rbf, nn_rmse_prd
from .metrics.predictive import predictive_score
from .metrics.tstr import macro_f1, train_test
from .progress import metric_bar


def _r(v: float, k: int = 5) -> float:
    return float(round(float(v), k)) if np.isfinite(v) else float("nan")


@dataclass
class ScoredSet:
    """One set being scored: its windows `(N, C, L)` (physical units), labels {name: (N,)}, and what its
    metrics share (its FCN features, computed once) or hand to the figures (`extras`)."""

    ctx: EvalContext
    name: str
    x: np.ndarray
    labels: dict[str, np.ndarray]
    floor: bool = False
    feats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    _physio: np.ndarray | None = None

    def own_physio(self) -> np.ndarray:
        """Physiological features `(N, F)` of this set's windows (columns: context.physio_names), computed once
        for `physio` and `conditioning`."""
        if self._physio is None:
            self._physio = physio_features(self.ctx, self.x, f"{self.name}: physio features")
        return self._physio

    @property
    def fcn_labels(self) -> list[str]:
        return [lab for lab in self.ctx.labels if lab in self.ctx.fcns]

    def own_features(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """Pooled FCN features `(N, 128)` and class probabilities `(N, K)` of this set's windows."""
        if label not in self.feats:
            self.feats[label] = fcn_features(self.ctx.fcns[label][0], self.x, f"{self.name}: FCN {label} features",
                                             self.ctx.device)
        return self.feats[label]

    def held_out(self, lab: str) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, true) codes for the label metrics: the reference windows for the floor row."""
        if self.floor:
            return self.ctx.ref_features(lab)[1].argmax(axis=1), self.ctx.ref.y[:, self.ctx.col(lab)]
        return self.own_features(lab)[1].argmax(axis=1), self.labels[lab]


def score_fid(s: ScoredSet) -> dict:
    return {lab: _r(fid_from_features(s.own_features(lab)[0], s.ctx.ref_features(lab)[0])) for lab in s.fcn_labels}


def score_is(s: ScoredSet) -> dict:
    out = {}
    for lab in s.fcn_labels:
        m, sd = inception_score(s.own_features(lab)[1], splits=min(10, len(s.x)))
        out[lab] = {"mean": _r(m), "std": _r(sd)}
    return out


def score_accuracy(s: ScoredSet) -> dict:
    """Beside the accuracy on the set's labels, the same FCN's accuracy on the real reference windows (what
    conditioning should reach: `accuracy` >= `reference_accuracy`; equal by construction on the floor row)."""
    out = {}
    for lab in s.fcn_labels:
        pred, y = s.held_out(lab)
        ref_y = s.ctx.ref.y[:, s.ctx.col(lab)]
        ref_acc = float((s.ctx.ref_features(lab)[1].argmax(axis=1) == ref_y).mean())
        out[lab] = {"accuracy": _r(float((pred == y).mean())),
                    "majority_share": _r(np.bincount(y).max() / len(y)), "n": int(len(y)),
                    "reference_accuracy": _r(ref_acc), "reference_n": int(len(ref_y))}
    return out


def score_trts(s: ScoredSet) -> dict:
    out = {}
    for lab in s.fcn_labels:
        pred, y = s.held_out(lab)
        k = s.ctx.n_classes(lab)
        present = [c for c in range(k) if (y == c).any()]
        out[lab] = {"macro_f1": _r(macro_f1(y, pred, k)), "accuracy": _r(float((pred == y).mean())),
                    "balanced_accuracy": _r(float(np.mean([(pred[y == c] == c).mean() for c in present])))}
    return out


def score_tstr(s: ScoredSet) -> dict:
    ctx, ev = s.ctx, s.ctx.ev
    t, ref = ev.tstr, ctx.ref
    out = {}
    with metric_bar(f"{s.name}: TSTR", len(ctx.labels), "label") as bar:
        for lab in ctx.labels:
            r = train_test(s.x, s.labels[lab], ref.x, ref.y[:, ctx.col(lab)], ctx.n_classes(lab),
                           val_frac=t.val_frac, seed=ev.seed, epochs=t.epochs, max_steps=t.max_steps,
                           batch=ev.fcn.batch_size, lr=ev.fcn.lr, patience=t.patience,
                           downsample=ev.fcn.downsample, balanced=ev.fcn.balanced, device=ctx.device)
            out[lab] = {k: (_r(v) if isinstance(v, float) else v) for k, v in r.items()}
            bar.update(1)
    return out


def _gru_score(s: ScoredSet, metric: str, score_fn: Any, keys: tuple[str, ...]) -> dict:
    """The TimeGAN-protocol GRU score `metric` (discriminative or predictive: same settings, same call)."""
    ev = s.ctx.ev
    d = getattr(ev, metric)
    with metric_bar(f"{s.name}: {metric} score ({d.runs} runs x {d.iterations} it)"):
        r = score_fn(s.ctx.ref.x, s.x, iterations=d.iterations, batch=d.batch, runs=d.runs,
                     max_steps=d.max_steps, seed=ev.seed, workers=ev.workers)
    return {k: r[k] for k in keys}


def score_discriminative(s: ScoredSet) -> dict:
    return _gru_score(s, "discriminative", discriminative_score,
                      ("mean", "std", "scores", "block", "steps", "hidden", "n_per_set", "iterations", "runs"))


def score_predictive(s: ScoredSet) -> dict:
    return _gru_score(s, "predictive", predictive_score,
                      ("mean", "std", "maes", "block", "steps", "hidden", "target_channel", "iterations", "runs"))


def score_dtw(s: ScoredSet) -> dict:
    ev, x = s.ctx.ev, s.x
    parts = np.array_split(np.arange(len(x)), min(len(x), 4))
    dist, info = [], {}
    with metric_bar(f"{s.name}: nearest-neighbour DTW", len(x), "win") as bar:
        for p in parts:
            r = dtw_nn(x[p], s.ctx.ref.x, window=ev.dtw_window, max_len=ev.dtw_max_len, workers=ev.workers)
            dist.append(r["distances"])
            info = {k: r[k] for k in ("block", "band", "length")}
            bar.update(len(p))
    d = np.concatenate(dist)
    return {"mean": _r(d.mean()), "median": _r(np.median(d)), **info}


def score_rmse_prd(s: ScoredSet) -> dict:
    with metric_bar(f"{s.name}: nearest-neighbour RMSE / PRD"):
        r = nn_rmse_prd(s.x, s.ctx.ref.x)
    return {"rmse": _r(r["rmse"]), "prd": _r(r["prd"])}


def score_mmd(s: ScoredSet) -> dict:
    with metric_bar(f"{s.name}: MMD"):
        r = mmd_rbf(s.x, s.ctx.ref.x)
    return {"mmd2": _r(r["mmd2"], 7), "bandwidth": _r(r["bandwidth"])}


def score_diversity(s: ScoredSet) -> dict:
    with metric_bar(f"{s.name}: diversity"):
        r = diversity(s.x, s.ctx.ref.x)
    return {k: _r(v) for k, v in r.items()}


def score_physio(s: ScoredSet) -> dict:
    """Also hands the set's feature array `(N, F)` to the figures (extras["physio"])."""
    from .metrics.physio_ctg import compare_features

    ctx = s.ctx
    names, ranges = physio_names(ctx)
    mine = s.own_physio()
    s.extras["physio"] = mine
    cmp = compare_features(ctx.ref_physio(), mine, names, ranges)
    return {"kind": ctx.physio["kind"],
            "features": {f: {k: (_r(v) if isinstance(v, float) else v) for k, v in row.items()}
                         for f, row in cmp.items()}}


def _rounded(v: Any) -> Any:
    """`v` with every float rounded by _r (lists and dicts walked)."""
    if isinstance(v, float):
        return _r(v)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return v


def score_conditioning(s: ScoredSet) -> dict:
    """Per label column, metrics/conditioning.class_distances on the plan's conditioning features (the floor:
    train windows with their true labels)."""
    from .metrics.conditioning import class_distances

    ctx = s.ctx
    names, _ = physio_names(ctx)
    feats = list(ctx.physio["conditioning"])
    cols = [names.index(f) for f in feats]
    mine, ref = s.own_physio()[:, cols], ctx.ref_physio()[:, cols]
    m = ctx.ev.conditioning.min_windows
    out = {}
    for lab in ctx.labels:
        classes = list(ctx.pf.label_spec[ctx.col(lab)]["classes"])
        out[lab] = _rounded(class_distances(ref, ctx.ref.y[:, ctx.col(lab)], mine, s.labels[lab], feats, classes, m))
    return {"kind": ctx.physio["kind"], "features": feats, "min_windows": m, "labels": out}


def score_signal(s: ScoredSet) -> dict:
    from .metrics.signal_stats import compare_signal

    pf = s.ctx.pf
    return compare_signal(s.ctx.ref.x, s.x, pf.channel_names, pf.lo, pf.hi)


SCORERS: dict[str, Callable[[ScoredSet], Any]] = {
    "fid": score_fid, "is": score_is, "accuracy": score_accuracy, "tstr": score_tstr, "trts": score_trts,
    "discriminative": score_discriminative, "predictive": score_predictive, "dtw": score_dtw,
    "rmse_prd": score_rmse_prd, "mmd": score_mmd, "diversity": score_diversity, "physio": score_physio,
    "conditioning": score_conditioning, "signal": score_signal,
}
if list(SCORERS) != list(METRICS):   # a metric added to the registry without its function (or the reverse)
    raise ImportError(f"evaluation.scorers: SCORERS {list(SCORERS)} differ from the registry {list(METRICS)}")
