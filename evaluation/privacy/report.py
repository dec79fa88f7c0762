"""The privacy report: JSON checked against a schema, a Markdown summary and a log-log ROC plot.

A report holds one or more attacks; each must state its threat model and carry the full metric set (AUC,
best balanced accuracy, TPR at 1% and 0.1% FPR with 95% Clopper-Pearson intervals, member and non-member
counts, the ROC curve). `validate_report` enforces that with the small JSON-Schema subset below (type,
required, properties, items, minItems, enum, minimum, maximum), so a report with accuracy alone cannot be
written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from dataloader.atomic import atomic_path, write_text_atomic

FORMAT = "physiodiff-privacy-report-1"
THREAT_MODELS = ("white-box loss", "white-box loss with shadow models (LiRA)",
                 "white-box loss with reference models (RMIA)", "black-box synthetic data")

_NUM = {"type": "number"}
_PROB = {"type": "number", "minimum": 0, "maximum": 1}
_TPR = {"type": "object", "required": ["fpr_target", "tpr", "tpr_ci95", "fpr_achieved", "true_positives",
                                       "false_positives"],
        "properties": {"fpr_target": _PROB, "tpr": _PROB, "fpr_achieved": _PROB,
                       "tpr_ci95": {"type": "array", "items": _PROB, "minItems": 2},
                       "true_positives": {"type": "integer", "minimum": 0},
                       "false_positives": {"type": "integer", "minimum": 0}}}
_ATTACK = {
    "type": "object",
    "required": ["name", "threat_model", "attacker_knowledge", "auc", "balanced_accuracy", "tpr_at_fpr", "n_members",
                 "n_non_members", "roc"],
    "properties": {
        "name": {"type": "string"}, "threat_model": {"type": "string", "enum": list(THREAT_MODELS)},
        "attacker_knowledge": {"type": "string"}, "auc": _PROB, "balanced_accuracy": _PROB,
        "n_members": {"type": "integer", "minimum": 1}, "n_non_members": {"type": "integer", "minimum": 1},
        # both FPR targets must be there: 1% and 0.1%
        "tpr_at_fpr": {"type": "array", "items": _TPR, "minItems": 2},
        "roc": {"type": "object", "required": ["fpr", "tpr"],
                "properties": {"fpr": {"type": "array", "items": _PROB, "minItems": 2},
                               "tpr": {"type": "array", "items": _PROB, "minItems": 2}}}}}
SCHEMA = {
    "type": "object",
    "required": ["format", "unit", "population", "members_file", "target", "attacks"],
    "properties": {
        "format": {"type": "string", "enum": [FORMAT]}, "unit": {"type": "string", "enum": ["patient"]},
        "population": {"type": "object", "required": ["patients", "members", "non_members"]},
        "members_file": {"type": "string"},
        "target": {"type": "object", "required": ["model_file", "dp"]},
        "attacks": {"type": "array", "items": _ATTACK, "minItems": 1}}}


class ReportError(ValueError):
    """A report that does not meet the schema (a bug in the code that built it, not user input)."""


def _check(value: Any, schema: dict[str, Any], path: str) -> None:
    t = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t in types and not isinstance(value, types[t]):
        raise ReportError(f"{path}: expected {t}")
    if t == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ReportError(f"{path}: expected a number")
    if t == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ReportError(f"{path}: expected an integer")
    if "enum" in schema and value not in schema["enum"]:
        raise ReportError(f"{path}: {value!r} not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
        raise ReportError(f"{path}: {value} outside [{schema.get('minimum')}, {schema.get('maximum')}]")
    for k in schema.get("required", []):
        if k not in value:
            raise ReportError(f"{path}: missing {k!r}")
    for k, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and k in value:
            _check(value[k], sub, f"{path}.{k}")
    if t == "array":
        if len(value) < schema.get("minItems", 0):
            raise ReportError(f"{path}: needs at least {schema['minItems']} items")
        for i, v in enumerate(value):
            if "items" in schema:
                _check(v, schema["items"], f"{path}[{i}]")


def validate_report(report: dict[str, Any], schema: Optional[dict[str, Any]] = None) -> None:
    """Raise `ReportError` unless `report` meets `schema` (default SCHEMA, the membership report's)."""
    _check(report, SCHEMA if schema is None else schema, "report")


def plot_roc(path: str | os.PathLike, attacks: list[dict[str, Any]], title: str) -> None:
    """Log-log ROC curves of the attacks, with the chance line, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5))
    floor = 1e-3
    for a in attacks:
        fpr, tpr = a["roc"]["fpr"], a["roc"]["tpr"]
        ax.step([max(f, floor) for f in fpr], [max(t, floor) for t in tpr], where="post",
                label=f"{a['name']} (AUC {a['auc']:.3f})")
    ax.plot([floor, 1], [floor, 1], "k--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1.05)
    ax.set_xlabel("false positive rate (non-member patients called members)")
    ax.set_ylabel("true positive rate (member patients found)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", lw=0.3)
    with atomic_path(path, "--out") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def markdown(report: dict[str, Any]) -> str:
    """A human summary of a report: one table row per attack."""
    pop = report["population"]
    dp = report["target"]["dp"]
    lines = [f"# Membership inference audit ({report.get('title', '')})", "",
             f"Unit: patient. Population {pop['patients']} patients: {pop['members']} members (trained the target), "
             f"{pop['non_members']} non-members. Target: `{report['target']['model_file']}`"
             + (f"; DP-SGD epsilon {dp['epsilon']:.2f} at delta {dp['delta']:.2g} ({dp['unit']})" if dp else
                "; no DP") + ".", "",
             "| attack | threat model | AUC | best bal. acc. | TPR @ 1% FPR [95% CI] | TPR @ 0.1% FPR [95% CI] |",
             "|---|---|---|---|---|---|"]
    for a in report["attacks"]:
        cells = []
        for t in a["tpr_at_fpr"]:
            cells.append(f"{t['tpr']:.3f} [{t['tpr_ci95'][0]:.3f}, {t['tpr_ci95'][1]:.3f}]"
                         + ("" if t.get("resolvable", True) else " (FPR not resolvable: 0 FP)"))
        lines.append(f"| {a['name']} | {a['threat_model']} | {a['auc']:.3f} | {a['balanced_accuracy']:.3f} | "
                     f"{cells[0]} | {cells[1]} |")
    lines += ["", "AUC 0.5 = chance. With n non-members the smallest measurable non-zero FPR is 1/n: a TPR "
                  "'at 0.1% FPR' on fewer than 1000 non-members is the TPR at zero false positives.", ""]
    for a in report["attacks"]:
        if a.get("notes"):
            lines.append(f"- {a['name']}: {a['notes']}")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | os.PathLike, stem: str, report: dict[str, Any], title: Optional[str] = None) -> Path:
    """Validate, then write stem.json, stem.md and stem_roc.png into out_dir; returns the JSON path."""
    validate_report(report)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = dict(report, title=title or stem)
    plot_roc(out / f"{stem}_roc.png", report["attacks"], title or stem)
    write_text_atomic(out / f"{stem}.md", markdown(report), "--out")
    write_text_atomic(out / f"{stem}.json", json.dumps(report, indent=1) + "\n", "--out")
    return out / f"{stem}.json"
