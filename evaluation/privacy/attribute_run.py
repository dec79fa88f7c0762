"""`python -m evaluation.privacy --attack attribute`: attribute inference from the target's synthetic data
(attribute.py) for each label column, written as privacy_attribute.json (schema-checked) and .md.

The synthetic data is privacy.synthetic_file (a generate.py file, with its labels) or the target's own sample
(privacy.synthetic windows generated with labels drawn from the members' windows, cached beside the target,
shared with dcr and domias). The audited windows and the members are those of the membership attacks.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dataloader.atomic import write_text_atomic
from dataloader.config import Config
from dataloader.errors import UserError

from .report import validate_report

FORMAT = "physiodiff-privacy-attribute-1"
THREAT = "black-box synthetic data"
KNOWS = ("the synthetic windows with the labels they were generated with, and each candidate patient's windows "
         "(not its labels)")

_PROB = {"type": "number", "minimum": 0, "maximum": 1}
_CI = {"type": "array", "items": _PROB, "minItems": 2}
_GROUP = {"type": "object",
          "required": ["n", "accuracy", "accuracy_ci95", "balanced_accuracy", "balanced_accuracy_ci95", "base_rate",
                       "base_rate_ci95", "chance_balanced_accuracy"],
          "properties": {"n": {"type": "integer", "minimum": 1}, "accuracy": _PROB, "accuracy_ci95": _CI,
                         "balanced_accuracy": _PROB, "balanced_accuracy_ci95": _CI, "base_rate": _PROB,
                         "base_rate_ci95": _CI, "chance_balanced_accuracy": _PROB}}
SCHEMA = {
    "type": "object",
    "required": ["format", "unit", "threat_model", "attacker_knowledge", "population", "members_file", "target",
                 "synthetic", "labels"],
    "properties": {
        "format": {"type": "string", "enum": [FORMAT]}, "unit": {"type": "string", "enum": ["patient"]},
        "threat_model": {"type": "string", "enum": [THREAT]},
        "population": {"type": "object", "required": ["patients", "members", "non_members"]},
        "target": {"type": "object", "required": ["model_file", "dp"]},
        "synthetic": {"type": "object", "required": ["source", "windows"]},
        "labels": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["label", "classes", "n_synthetic", "members", "non_members",
                                           "member_advantage"],
            "properties": {"members": _GROUP, "non_members": _GROUP}}}}}


def attribute_labels(cfg: Config, ds: Any) -> list[str]:
    """The label columns to infer (privacy.attribute_labels or all); an unknown or absent one is a `UserError`."""
    names = list(ds.label_names)
    want = list(cfg.privacy.attribute_labels or names)
    bad = [n for n in want if n not in names]
    if bad or not want:
        raise UserError("privacy.attribute_labels", f"unknown label(s) {', '.join(bad)}; the data's labels: "
                                                    f"{', '.join(names) or 'none'}" if bad else
                        "the data has no label columns: attribute inference needs labels")
    return want


def _file_synthetic(cfg: Config, ds: Any, labels: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """privacy.synthetic_file: physical windows (M, C, L) and codes per label, checked against the data."""
    from evaluation.inputs import load_synthetic

    path = cfg.privacy.synthetic_file
    s = load_synthetic(path, ds.file, labels, [], None)
    missing = [n for n in labels if n not in s.labels]
    if missing:
        raise UserError(f"privacy.synthetic_file {path}", f"has no labels for {', '.join(missing)} (attribute "
                                                          "inference trains on the generated labels)")
    return s.x, s.labels


def check_attribute(cfg: Config) -> None:
    """Everything of `--attack attribute` that can fail on the user's input, before anything is written:
    the label columns, the synthetic file, and a known label for some member and some non-member."""
    from .attribute import patient_truth
    from .audit import membership, train_split
    from .loss_scores import audit_windows

    ds = train_split(cfg)
    labels = attribute_labels(cfg, ds)
    if cfg.privacy.synthetic_file:
        _file_synthetic(cfg, ds, labels)
    m = membership(cfg, 0, write=False)
    rows, pats = audit_windows(ds, m.population, cfg.privacy.windows_per_patient)
    for name in labels:
        j = ds.label_names.index(name)
        known = patient_truth(ds.labels[rows][:, j], pats, len(m.population), len(ds.class_names[j])) >= 0
        if not (known & m.is_member).any() or not (known & ~m.is_member).any():
            raise UserError("privacy.attribute_labels", f"label {name!r} is missing for every member or every "
                                                        "non-member of the audit population")


def markdown(rep: dict[str, Any]) -> str:
    """One table row per (label, group)."""
    def cell(v: float, ci: list[float]) -> str:
        return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"

    pop = rep["population"]
    lines = [f"# Attribute inference from synthetic data ({rep['synthetic']['source']})", "",
             f"Unit: patient. Population {pop['patients']}: {pop['members']} members, {pop['non_members']} "
             f"non-members. Threat model: {rep['threat_model']} ({rep['attacker_knowledge']}).", "",
             "| label | group | patients | accuracy [95% CI] | base rate [95% CI] | balanced accuracy [95% CI] | "
             "chance bal. acc. |", "|---|---|---|---|---|---|---|"]
    for e in rep["labels"]:
        for g in ("members", "non_members"):
            s = e[g]
            lines.append(f"| {e['label']} | {g.replace('_', '-')} | {s['n']} | "
                         f"{cell(s['accuracy'], s['accuracy_ci95'])} | {cell(s['base_rate'], s['base_rate_ci95'])} | "
                         f"{cell(s['balanced_accuracy'], s['balanced_accuracy_ci95'])} | "
                         f"{s['chance_balanced_accuracy']:.3f} |")
    lines += ["", "Base rate: the share of the group's most frequent class (the best constant guess). Member "
                  "advantage (member minus non-member accuracy, 95% bootstrap interval): "
              + "; ".join(f"{e['label']} {e['member_advantage']['accuracy']:+.3f} "
                          f"[{e['member_advantage']['ci95'][0]:+.3f}, {e['member_advantage']['ci95'][1]:+.3f}]"
                          for e in rep["labels"] if e["member_advantage"]["accuracy"] is not None), ""]
    return "\n".join(lines) + "\n"


def write_attribute_report(out: Path, rep: dict[str, Any]) -> Path:
    """Validate, then write privacy_attribute.json and .md into `out`; returns the JSON path."""
    validate_report(rep, SCHEMA)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "privacy_attribute.md", markdown(rep), "--out")
    write_text_atomic(out / "privacy_attribute.json", json.dumps(rep, indent=1) + "\n", "--out")
    return out / "privacy_attribute.json"


def run_attribute(cfg: Config, out: Path, log: Callable[[str], None] = print) -> int:
    """Train (or reuse) the target, take its synthetic data, infer every label, write the report."""
    from diffusion.checkpoint import read_model_meta

    from .attribute import infer_attribute, patient_truth
    from .audit import membership, train_split
    from .loss_scores import audit_windows
    from .models import dp_meta, train_model
    from .synthetic import target_synthetic

    pc, root = cfg.privacy, Path(cfg.privacy.out_dir)
    m, ds = membership(cfg, 0), train_split(cfg)
    labels = attribute_labels(cfg, ds)
    target = train_model(cfg, root / "target", m.members, log)
    rows, pats = audit_windows(ds, m.population, pc.windows_per_patient)
    is_member, codes = m.is_member, ds.labels[rows]
    if pc.synthetic_file:
        xs, ys = _file_synthetic(cfg, ds, labels)
    else:
        x, lab = target_synthetic(cfg, target, codes[is_member[pats]], ds)
        xs, ys = ds.file.to_physical(x).astype(np.float32), {n: lab[:, ds.label_names.index(n)] for n in labels}
    real = ds.file.to_physical(ds.get_batch(rows)[0].numpy()).astype(np.float32)
    entries = []
    for name in labels:
        j = ds.label_names.index(name)
        classes = list(ds.class_names[j])
        truth = patient_truth(codes[:, j], pats, len(m.population), len(classes))
        log(f"attribute {name}: FCN on {len(xs)} synthetic windows ({pc.attribute_steps} steps)")
        res = infer_attribute(xs, ys[name], real, pats, truth, is_member, len(classes), steps=pc.attribute_steps,
                              seed=pc.seed, downsample=max(1, ds.window_len // 512), where=f"attribute {name}")
        entries.append({"label": name, "classes": classes, **res})
    meta = read_model_meta(target)
    rep = {"format": FORMAT, "unit": "patient", "threat_model": THREAT, "attacker_knowledge": KNOWS,
           "population": {"patients": len(m.population), "members": int(is_member.sum()),
                          "non_members": int((~is_member).sum()), "windows_per_patient": pc.windows_per_patient},
           "members_file": str(root / "members.json"),
           "target": {"model_file": str(target), "step": meta.step, "sha256": meta.sha256, "dp": dp_meta(target)},
           "synthetic": {"source": pc.synthetic_file or "target sample", "windows": int(len(xs))},
           "settings": {"steps": pc.attribute_steps, "seed": pc.seed}, "labels": entries}
    path = write_attribute_report(out, rep)
    for e in entries:
        s, t = e["members"], e["non_members"]
        if s["n"] and t["n"]:
            log(f"{e['label']}: accuracy members {s['accuracy']:.3f} (base rate {s['base_rate']:.3f}), non-members "
                f"{t['accuracy']:.3f} (base rate {t['base_rate']:.3f})")
    log(f"report: {path}")
    return 0
