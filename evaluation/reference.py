"""Resolve what an evaluation compares: the eval section (defaults when absent), the prepared real-data file,
its label columns, and the physiological feature set (which channels are FHR, UC or the ECG lead)."""
from __future__ import annotations

from typing import Any

from evaluation.config import ConditioningConfig, EvalConfig, PhysioConfig
from dataloader.errors import UserError
from dataloader.prepared import PreparedFile


def eval_section(cfg: Any) -> EvalConfig:
    """The config's `eval` section, or the defaults when the config has none."""
    return cfg.get("eval") or EvalConfig()


def open_reference(cfg: Any, ev: EvalConfig) -> PreparedFile:
    """The prepared file of the real data: eval.prepared, else data.prepared."""
    path = ev.prepared or cfg.data.prepared
    pf = PreparedFile(path)
    if pf.n_windows(ev.reference) == 0:
        other = [s for s in ("test", "val", "train") if s != ev.reference and pf.n_windows(s) > 0]
        hint = ((f"; set eval.reference to {' or '.join(other)}, or" if other else "; set")
                + " eval.prepared to a prepared file with held-out patients")
        if ev.reference != "train" and "train" in other:
            hint += " (eval.reference: train scores against the generator's own training windows)"
        raise UserError(f"{path}: eval.reference", f"the reference split {ev.reference!r} has no windows{hint}")
    return pf


def reference_text(split: str) -> str:
    """How the report names the reference: held-out patients, or plainly the training data itself."""
    if split == "train":
        return ("TRAIN split: the generator's own training windows (this data set has no held-out patients), "
                "so the scores measure fit to the training data, not generalisation")
    return f"{split} patients (never seen by the generator)"


def label_names(pf: PreparedFile, ev: EvalConfig) -> list[str]:
    """The label columns to evaluate (eval.labels, default all of the file's), checked against the file."""
    names = pf.label_names
    if ev.labels is None:
        return list(names)
    for lab in ev.labels:
        if lab not in names:
            raise UserError("eval.labels", f"unknown label {lab!r}; the prepared file {pf.path} has: "
                                           f"{', '.join(names) or '(no labels)'}")
    return list(ev.labels)


def physio_plan(pf: PreparedFile, pc: PhysioConfig, cc: ConditioningConfig | None = None) -> dict[str, Any]:
    """{"kind": "ctg"|"ecg"|"none", fhr/uc channel indices (ctg) or lead index (ecg), and "conditioning": the
    feature names the conditioning metric compares (checked against the kind's features)}."""
    names = pf.channel_names
    units = [str(c.get("unit", "")).strip().lower() for c in pf.channels]

    def index(name: str, what: str) -> int:
        if name not in names:
            raise UserError(f"eval.physio.{what}", f"no channel {name!r}; channels: {', '.join(names)}")
        return names.index(name)

    kind = pc.kind
    if kind == "auto":
        kind = "ctg" if "bpm" in units else "ecg" if units and all(u == "mv" for u in units) else "none"
    if kind == "ctg":
        if pc.fhr is not None:
            fhr = index(pc.fhr, "fhr")
        elif "bpm" in units:
            fhr = units.index("bpm")
        else:
            raise UserError("eval.physio.fhr", f"no channel in bpm; name the FHR channel (channels: {names})")
        uc = index(pc.uc, "uc") if pc.uc is not None else (names.index("UC") if "UC" in names else None)
        return {"kind": "ctg", "fhr": fhr, "uc": uc, "conditioning": conditioning_features(kind, cc)}
    if kind == "ecg":
        lead = index(pc.lead, "lead") if pc.lead is not None else (names.index("ii") if "ii" in names else 0)
        return {"kind": "ecg", "lead": lead, "lead_name": names[lead], "conditioning": conditioning_features(kind, cc)}
    return {"kind": "none"}


def conditioning_features(kind: str, cc: ConditioningConfig | None) -> list[str]:
    """eval.conditioning.features (default: the kind's CTG_CONDITIONING / ECG_CONDITIONING), each checked to
    be one of the kind's physiological features."""
    if kind == "ctg":
        from .metrics.physio_ctg import CTG_CONDITIONING as default, FEATURES as known
    else:
        from .metrics.physio_ecg import ECG_CONDITIONING as default, ECG_FEATURES as known
    feats = list(default) if cc is None or cc.features is None else list(cc.features)
    if not feats or len(set(feats)) != len(feats):
        raise UserError("eval.conditioning.features", "list each feature once, at least one")
    for f in feats:
        if f not in known:
            raise UserError("eval.conditioning.features",
                            f"{f!r} is not one of the {kind} features: {', '.join(known)}")
    return feats
