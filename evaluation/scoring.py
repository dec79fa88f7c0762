"""Score one set of windows against the real reference: every requested metric of docs/evaluation.md section 1.

`EvalContext` holds what every set is compared with (the real reference windows of held-out patients, the
train-patient windows of the floor, the FCNs, the physiological feature plan) and caches the reference's
features. `score_set` runs the metrics on one set; the real-vs-real floor is the same call with the train
patients' windows standing in for the synthetic ones, so floor and model rows are computed identically
(the floor's label accuracy and TRTS are read on the reference windows: the FCN was trained on train
patients, and its held-out accuracy is what a perfect generator would reach).
Distances (DTW, RMSE, PRD, MMD, diversity) are in physical units (bpm, mV, ...), all channels together.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataloader.config.eval_schema import EvalConfig
from dataloader.prepared import PreparedFile

from .discriminative import discriminative_score
from .distance import diversity, dtw_nn, mmd_rbf, nn_rmse_prd
from .fcn import FCN, features_and_proba
from .fid import fid_from_features, inception_score
from .predictive import predictive_score
from .progress import metric_bar
from .real_data import RealSet
from .tstr import macro_f1, train_test


@dataclass
class EvalContext:
    """What every scored set is compared with."""

    ev: EvalConfig
    pf: PreparedFile
    sha: str                                    # sha256 of the prepared file
    labels: list[str]                           # evaluated label columns
    ref: RealSet                                # real reference windows (held-out patients)
    floor: RealSet                              # train-patient windows (the floor's stand-in)
    fcns: dict[str, tuple[FCN, dict[str, Any]]]
    physio: dict[str, Any]                      # setup.physio_plan
    device: str = "cpu"
    _ref_feats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _ref_physio: np.ndarray | None = None

    def col(self, label: str) -> int:
        return self.pf.label_names.index(label)

    def n_classes(self, label: str) -> int:
        return len(self.pf.label_spec[self.col(label)]["classes"])

    def ref_features(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        if label not in self._ref_feats:
            self._ref_feats[label] = fcn_features(self.fcns[label][0], self.ref.x, f"reference: FCN {label}",
                                                  self.device)
        return self._ref_feats[label]

    def ref_physio(self) -> np.ndarray:
        if self._ref_physio is None:
            self._ref_physio = physio_features(self, self.ref.x, "reference: physio features")
        return self._ref_physio


def fcn_features(model: FCN, x: np.ndarray, desc: str, device: str = "cpu",
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Pooled FCN features `(N, 128)` and class probabilities `(N, K)` with a progress bar."""
    fs, ps = [], []
    with metric_bar(desc, len(x), "win") as bar:
        for i in range(0, len(x), chunk):
            f, p = features_and_proba(model, x[i: i + chunk], device=device)
            fs.append(f)
            ps.append(p)
            bar.update(len(f))
    return np.concatenate(fs), np.concatenate(ps)


def physio_features(ctx: EvalContext, x: np.ndarray, desc: str) -> np.ndarray:
    """Per-window physiological features `(N, F)` (CTG or ECG, see setup.physio_plan)."""
    plan = ctx.physio
    rows = []
    with metric_bar(desc, len(x), "win") as bar:
        for i in range(0, len(x), 100):
            xb = x[i: i + 100].astype(np.float64)
            if plan["kind"] == "ctg":
                from .physio_ctg import ctg_features

                rows.append(ctg_features(xb, ctx.pf.fs, plan["fhr"], plan["uc"]))
            else:
                from .physio_ecg import ecg_features

                rows.append(ecg_features(xb, ctx.pf.fs, plan["lead"]))
            bar.update(len(xb))
    return np.concatenate(rows)


def physio_names(ctx: EvalContext) -> tuple[tuple[str, ...], dict]:
    if ctx.physio["kind"] == "ctg":
        from .physio_ctg import CTG_RANGES, FEATURES

        return FEATURES, CTG_RANGES
    from .physio_ecg import ECG_FEATURES, ECG_RANGES

    return ECG_FEATURES, ECG_RANGES


def _r(v: float, k: int = 5) -> float:
    return float(round(float(v), k)) if np.isfinite(v) else float("nan")


def score_set(ctx: EvalContext, name: str, x: np.ndarray, labels: dict[str, np.ndarray], metrics: list[str],
              floor: bool = False) -> tuple[dict[str, Any], dict[str, float], dict[str, Any]]:
    """Run `metrics` on windows x `(N, C, L)` (physical units) with their labels {name: (N,)}.

    Returns (results per metric (JSON-ready), seconds per metric, extras for figures: FCN features and
    physiological feature arrays).
    """
    ev, ref = ctx.ev, ctx.ref
    res: dict[str, Any] = {}
    secs: dict[str, float] = {}
    extras: dict[str, Any] = {}
    feats: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def timed(metric: str, fn: Any) -> None:
        t0 = time.perf_counter()
        res[metric] = fn()
        secs[metric] = round(time.perf_counter() - t0, 2)

    def own_features(label: str) -> tuple[np.ndarray, np.ndarray]:
        if label not in feats:
            feats[label] = fcn_features(ctx.fcns[label][0], x, f"{name}: FCN {label} features", ctx.device)
        return feats[label]

    fcn_labels = [lab for lab in ctx.labels if lab in ctx.fcns]
    if any(m in metrics for m in ("fid", "is")) and fcn_labels:
        t0 = time.perf_counter()
        for lab in fcn_labels:
            own_features(lab)
        secs["fcn_features"] = round(time.perf_counter() - t0, 2)
        extras["fcn_features"] = {lab: feats[lab][0] for lab in fcn_labels}
    if "fid" in metrics:
        timed("fid", lambda: {lab: _r(fid_from_features(own_features(lab)[0], ctx.ref_features(lab)[0]))
                              for lab in fcn_labels})
    if "is" in metrics:
        def _is() -> dict:
            out = {}
            for lab in fcn_labels:
                m, s = inception_score(own_features(lab)[1], splits=min(10, len(x)))
                out[lab] = {"mean": _r(m), "std": _r(s)}
            return out
        timed("is", _is)

    def held_out(lab: str) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, true) codes for the label metrics: the reference windows for the floor row."""
        if floor:
            return ctx.ref_features(lab)[1].argmax(axis=1), ref.y[:, ctx.col(lab)]
        return own_features(lab)[1].argmax(axis=1), labels[lab]

    if "accuracy" in metrics:
        def _acc() -> dict:
            out = {}
            for lab in fcn_labels:
                pred, y = held_out(lab)
                out[lab] = {"accuracy": _r(float((pred == y).mean())),
                            "majority_share": _r(np.bincount(y).max() / len(y)), "n": int(len(y))}
            return out
        timed("accuracy", _acc)
    if "trts" in metrics:
        def _trts() -> dict:
            out = {}
            for lab in fcn_labels:
                pred, y = held_out(lab)
                k = ctx.n_classes(lab)
                present = [c for c in range(k) if (y == c).any()]
                out[lab] = {"macro_f1": _r(macro_f1(y, pred, k)), "accuracy": _r(float((pred == y).mean())),
                            "balanced_accuracy": _r(float(np.mean([(pred[y == c] == c).mean() for c in present])))}
            return out
        timed("trts", _trts)
    if "tstr" in metrics:
        def _tstr() -> dict:
            out = {}
            t = ev.tstr
            with metric_bar(f"{name}: TSTR", len(ctx.labels), "label") as bar:
                for lab in ctx.labels:
                    r = train_test(x, labels[lab], ref.x, ref.y[:, ctx.col(lab)], ctx.n_classes(lab),
                                   val_frac=t.val_frac, seed=ev.seed, epochs=t.epochs, max_steps=t.max_steps,
                                   batch=ev.fcn.batch_size, lr=ev.fcn.lr, patience=t.patience,
                                   downsample=ev.fcn.downsample, balanced=ev.fcn.balanced,
                                   device=ctx.device)
                    out[lab] = {k: (_r(v) if isinstance(v, float) else v) for k, v in r.items()}
                    bar.update(1)
            return out
        timed("tstr", _tstr)
    if "discriminative" in metrics:
        def _disc() -> dict:
            d = ev.discriminative
            with metric_bar(f"{name}: discriminative score ({d.runs} runs x {d.iterations} it)"):
                r = discriminative_score(ref.x, x, iterations=d.iterations, batch=d.batch, runs=d.runs,
                                         max_steps=d.max_steps, seed=ev.seed, workers=ev.workers)
            return {k: r[k] for k in ("mean", "std", "scores", "block", "steps", "hidden", "n_per_set",
                                      "iterations", "runs")}
        timed("discriminative", _disc)
    if "predictive" in metrics:
        def _pred() -> dict:
            d = ev.predictive
            with metric_bar(f"{name}: predictive score ({d.runs} runs x {d.iterations} it)"):
                r = predictive_score(ref.x, x, iterations=d.iterations, batch=d.batch, runs=d.runs,
                                     max_steps=d.max_steps, seed=ev.seed, workers=ev.workers)
            return {k: r[k] for k in ("mean", "std", "maes", "block", "steps", "hidden", "target_channel",
                                      "iterations", "runs")}
        timed("predictive", _pred)
    if "dtw" in metrics:
        def _dtw() -> dict:
            parts = np.array_split(np.arange(len(x)), min(len(x), 4))
            dist, info = [], {}
            with metric_bar(f"{name}: nearest-neighbour DTW", len(x), "win") as bar:
                for p in parts:
                    r = dtw_nn(x[p], ref.x, window=ev.dtw_window, max_len=ev.dtw_max_len, workers=ev.workers)
                    dist.append(r["distances"])
                    info = {k: r[k] for k in ("block", "band", "length")}
                    bar.update(len(p))
            d = np.concatenate(dist)
            return {"mean": _r(d.mean()), "median": _r(np.median(d)), **info}
        timed("dtw", _dtw)
    if "rmse_prd" in metrics:
        def _rp() -> dict:
            with metric_bar(f"{name}: nearest-neighbour RMSE / PRD"):
                r = nn_rmse_prd(x, ref.x)
            return {"rmse": _r(r["rmse"]), "prd": _r(r["prd"])}
        timed("rmse_prd", _rp)
    if "mmd" in metrics:
        def _mmd() -> dict:
            with metric_bar(f"{name}: MMD"):
                r = mmd_rbf(x, ref.x)
            return {"mmd2": _r(r["mmd2"], 7), "bandwidth": _r(r["bandwidth"])}
        timed("mmd", _mmd)
    if "diversity" in metrics:
        def _div() -> dict:
            with metric_bar(f"{name}: diversity"):
                r = diversity(x, ref.x)
            return {k: _r(v) for k, v in r.items()}
        timed("diversity", _div)
    if "physio" in metrics and ctx.physio["kind"] != "none":
        def _phys() -> dict:
            from .physio_ctg import compare_features

            names, ranges = physio_names(ctx)
            mine = physio_features(ctx, x, f"{name}: physio features")
            extras["physio"] = mine
            cmp = compare_features(ctx.ref_physio(), mine, names, ranges)
            return {"kind": ctx.physio["kind"],
                    "features": {f: {k: (_r(v) if isinstance(v, float) else v) for k, v in row.items()}
                                 for f, row in cmp.items()}}
        timed("physio", _phys)
    if "signal" in metrics:
        def _sig() -> dict:
            from .signal_stats import compare_signal

            return compare_signal(ref.x, x, ctx.pf.channel_names, ctx.pf.lo, ctx.pf.hi)
        timed("signal", _sig)
    return res, secs, extras
