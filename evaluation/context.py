"""What every scored set is compared with, and the features computed on a set (FCN and physiological).

`EvalContext` holds what every set is compared with (the real reference windows of held-out patients, the
train-patient windows of the floor, the FCNs, the physiological feature plan) and caches the reference's
features; `evaluation/scoring.py:score_set` runs the metrics of one set against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation.config import EvalConfig
from dataloader.prepared import PreparedFile

from .fcn.model import FCN, features_and_proba
from .progress import metric_bar
from .real_data import RealSet


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
    physio: dict[str, Any]                      # reference.physio_plan
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
    """Per-window physiological features `(N, F)` (CTG or ECG, see reference.physio_plan)."""
    plan = ctx.physio
    rows = []
    with metric_bar(desc, len(x), "win") as bar:
        for i in range(0, len(x), 100):
            xb = x[i: i + 100].astype(np.float64)
            if plan["kind"] == "ctg":
                from .metrics.physio_ctg import ctg_features

                rows.append(ctg_features(xb, ctx.pf.fs, plan["fhr"], plan["uc"]))
            else:
                from .metrics.physio_ecg import ecg_features

                rows.append(ecg_features(xb, ctx.pf.fs, plan["lead"]))
            bar.update(len(xb))
    return np.concatenate(rows)


def physio_names(ctx: EvalContext) -> tuple[tuple[str, ...], dict]:
    if ctx.physio["kind"] == "ctg":
        from .metrics.physio_ctg import CTG_RANGES, FEATURES

        return FEATURES, CTG_RANGES
    from .metrics.physio_ecg import ECG_FEATURES, ECG_RANGES

    return ECG_FEATURES, ECG_RANGES
