"""Membership-inference audit of a diffusion model, per patient (docs/evaluation.md section 2).

    python -m evaluation.privacy --config configs/ctg/privacy.yaml --attack loss|lira|rmia|dcr|domias|attribute
                                 [--shadows K] [--references R] [--out DIR] [key=value ...]

The first run draws the population and the target's members (privacy.out_dir/members.json) and trains the
target model on the members with the config's `model` and `train` sections; `lira` also trains K shadow
models one after another (each on half of the population, each patient in half of them), `rmia` the first R
of those K as its reference models. All of it is reused or resumed by later runs. Writes
DIR/privacy_<attack>.json (schema-checked), .md and _roc.png (log-log ROC); `attribute` (attribute inference
from the synthetic data, not a membership attack) writes DIR/privacy_attribute.json and .md.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dataloader.cli import add_config_args, make_parser, run_main, set_threads
from dataloader.config import Config, load_config
from dataloader.errors import UserError

KNOWLEDGE = {
    "loss": ("white-box loss", "the target's weights and each candidate patient's windows and labels"),
    "lira": ("white-box loss with shadow models (LiRA)", "the target's weights, its training recipe including the "
             "seed (both are in the model file's stored config), and the population's data to train shadow models "
             "on random halves of it"),
    "rmia": ("white-box loss with reference models (RMIA)", "the target's weights, its training recipe including "
             "the seed, the population's data to train 1-4 reference models on random halves of it, and a sample "
             "of patients known to be outside the training data (the audit's non-members, the population z)"),
    "dcr": ("black-box synthetic data", "the synthetic windows and each candidate patient's windows"),
    "domias": ("black-box synthetic data", "the synthetic windows, each candidate patient's windows, and reference "
               "windows of patients outside the training data (privacy.reference_splits)"),
}


def _checks(cfg: Config, attack: str, k: int, refs: int) -> None:
    """Every check that can fail on the user's input, before anything is written."""
    from dataloader.subset import PatientSubset, window_patient_numbers

    from .audit import membership, train_split

    if attack in ("lira", "rmia") and k < 2:
        raise UserError("--shadows", f"LiRA needs at least 2 shadow models (got {k}); a real audit uses 16 or more"
                        if attack == "lira" else f"RMIA's references are taken from at least 2 shadow models (got {k})")
    if attack == "rmia" and not 1 <= refs <= k:
        raise UserError("--references", f"RMIA uses 1 to {k} of the {k} shadow models (--shadows) as references "
                                        f"(got {refs})")
    m = membership(cfg, k if attack in ("lira", "rmia") else 0, write=False)
    if attack == "attribute":
        from .attribute_run import check_attribute

        check_attribute(cfg)
    if cfg.train.dp is not None:
        from diffusion.dp import DPTraining

        sub = PatientSubset(train_split(cfg), m.members, "privacy.members")
        DPTraining(cfg.train, window_patient_numbers(sub), 1, cfg.data.balance_by)


def _cached_losses(path: Path, model_file: Path, key: dict[str, Any], compute: Any) -> np.ndarray:
    """(P, n_levels) per-patient losses of one model, cached beside it under the settings' key."""
    from diffusion.checkpoint import file_sha256

    key = dict(key, model_sha256=file_sha256(model_file))
    tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    f = path / f"loss_scores-{tag}.npy"
    if f.is_file():
        return np.load(f)
    arr = compute()
    tmp = path / f".tmp-loss_scores-{tag}.npy"
    np.save(tmp, arr)
    tmp.rename(f)
    return arr


def _losses(cfg: Config, model_file: Path, ds: Any, rows: np.ndarray, pats: np.ndarray, n: int) -> np.ndarray:
    from diffusion.checkpoint import load_model_file

    from .loss_scores import model_patient_losses

    pc = cfg.privacy
    key = {"rows": hashlib.sha256(rows.tobytes()).hexdigest(), "levels": pc.noise_levels, "draws": pc.draws,
           "seed": pc.seed}

    def compute() -> np.ndarray:
        model, _ = load_model_file(model_file)
        return model_patient_losses(model, ds, rows, pats, n, pc.noise_levels, pc.draws, pc.seed)

    return _cached_losses(model_file.parent, model_file, key, compute)


def _attack_entry(name: str, attack: str, scores: np.ndarray, is_member: np.ndarray, notes: str = "",
                  **extra: Any) -> dict[str, Any]:
    from .metrics import attack_metrics

    threat, knows = KNOWLEDGE[attack]
    return {"name": name, "threat_model": threat, "attacker_knowledge": knows, **attack_metrics(scores, is_member),
            "notes": notes, **extra}


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__.split("\n\n")
    p = make_parser("python -m evaluation.privacy", doc[0] + "\n\n" + doc[1], epilog="\n\n".join(doc[2:]))
    add_config_args(p)
    p.add_argument("--attack", required=True, choices=ATTACKS, help="which membership-inference attack (attribute: "
                                                                    "attribute inference from the synthetic data)")
    p.add_argument("--shadows", type=int, default=None, help="K shadow models for lira and rmia (default "
                                                              "privacy.shadows)")
    p.add_argument("--references", type=int, default=None, help="R reference models for rmia: the first R of the K "
                                                                 "shadows (default privacy.references)")
    p.add_argument("--out", default=None, help="report folder (default privacy.out_dir)")
    a = p.parse_intermixed_args(argv)
    cfg = load_config(a.config, a.overrides)
    for s in ("privacy", "model", "train"):
        if cfg.get(s) is None:
            raise UserError(a.config, f"an audit needs the `{s}` section (see configs/ctg/privacy.yaml)")
    if a.dry_run:
        print(cfg.yaml(), end="")
        return 0
    pc = cfg.privacy
    k = pc.shadows if a.shadows is None else a.shadows
    refs = pc.references if a.references is None else a.references
    _checks(cfg, a.attack, k, refs)
    set_threads(pc.threads)
    if a.attack == "attribute":
        from .attribute_run import run_attribute

        return run_attribute(cfg, Path(a.out or pc.out_dir))
    return run_attack(cfg, a.attack, k, Path(a.out or pc.out_dir), references=refs)


@dataclass
class _Audit:
    """What every attack of one run shares: the config, the training split `ds`, the membership `m`, the
    audited window rows (W,) and their patient numbers `pats` (W,), the target model file and the log."""
    cfg: Config
    ds: Any
    m: Any
    rows: np.ndarray
    pats: np.ndarray
    target: Path
    log: Any
    references: int = 0

    @property
    def n_patients(self) -> int:
        return len(self.m.population)

    def losses(self, model_file: Path) -> np.ndarray:
        """(P, levels) mean denoising losses of `model_file` on the audited windows."""
        return _losses(self.cfg, model_file, self.ds, self.rows, self.pats, self.n_patients)


def run_attack(cfg: Config, attack: str, k: int, out: Path, log: Any = print, references: int = 0) -> int:
    """Train what the attack needs (reusing what exists), score, write the report."""
    from diffusion.checkpoint import read_model_meta

    from .audit import membership, train_split
    from .loss_scores import audit_windows
    from .models import dp_meta, train_model
    from .report import FORMAT, write_report

    pc = cfg.privacy
    root = Path(pc.out_dir)
    m = membership(cfg, k if attack in ("lira", "rmia") else 0)
    ds = train_split(cfg)
    target = train_model(cfg, root / "target", m.members, log)
    meta = read_model_meta(target)
    rows, pats = audit_windows(ds, m.population, pc.windows_per_patient)
    a = _Audit(cfg, ds, m, rows, pats, target, log, references)
    attacks = _ATTACKS[attack](a, attack, k)
    is_member = m.is_member
    report = {"format": FORMAT, "unit": "patient",
              "population": {"patients": a.n_patients, "members": int(is_member.sum()),
                             "non_members": int((~is_member).sum()),
                             "windows_per_patient": pc.windows_per_patient, "audited_windows": int(len(rows))},
              "members_file": str(root / "members.json"),
              "target": {"model_file": str(target), "step": meta.step, "sha256": meta.sha256,
                         "dp": dp_meta(target)},
              "settings": {"noise_levels": list(pc.noise_levels), "draws": pc.draws, "seed": pc.seed,
                           "prepared": str(cfg.data.prepared)},
              "attacks": attacks}
    path = write_report(out, f"privacy_{attack}", report, f"{attack} attack on {target}")
    for e in attacks:
        t1, t01 = e["tpr_at_fpr"]
        log(f"{e['name']}: AUC {e['auc']:.3f}, best balanced accuracy {e['balanced_accuracy']:.3f}, TPR {t1['tpr']:.3f} "
            f"at {t1['fpr_target']:.1%} FPR, {t01['tpr']:.3f} at {t01['fpr_target']:.1%} FPR "
            f"({e['n_members']} members / {e['n_non_members']} non-members)")
    log(f"report: {path}")
    return 0


def _loss_attack(a: _Audit, attack: str, k: int) -> list[dict[str, Any]]:
    """The loss-threshold attack: score = minus the patient's mean loss."""
    losses, is_member = a.losses(a.target), a.m.is_member
    by_level = {f"t={t}": float(_auc(-losses[:, j], is_member)) for j, t in enumerate(a.cfg.privacy.noise_levels)}
    return [_attack_entry("loss", attack, -losses.mean(axis=1), is_member,
                          "score = minus the patient's mean denoising loss over its windows, the noise "
                          "levels and the fixed draws", auc_by_level=by_level)]


def _lira_attack(a: _Audit, attack: str, k: int) -> list[dict[str, Any]]:
    """LiRA online and offline with `k` shadow models (trained or reused), in both variance modes."""
    from .lira import run_lira
    from .models import shadow_dir, train_shadows

    pc, root, is_member = a.cfg.privacy, Path(a.cfg.privacy.out_dir), a.m.is_member
    shadows = train_shadows(a.cfg, root, [a.m.shadow_patients(j) for j in range(k)], a.log)
    sl = np.stack([a.losses(f) for f in shadows])
    tl = a.losses(a.target)
    res = run_lira(tl, sl, a.m.keep, list(pc.noise_levels), pc.lira_variance)
    other = "per_patient" if pc.lira_variance == "global" else "global"
    res_other = run_lira(tl, sl, a.m.keep, list(pc.noise_levels), other)
    out = []
    for mode in ("online", "offline"):
        sel = res["selection"][mode]
        out.append(_attack_entry(
            f"lira-{mode}", attack, res[mode], is_member,
            f"K={k} shadows, {pc.lira_variance} variance, feature chosen on shadows: {sel['feature']}; with "
            f"{other} variance AUC {_auc(res_other[mode], is_member):.3f}",
            shadows=k, variance=pc.lira_variance, selection=sel,
            auc_other_variance={other: _auc(res_other[mode], is_member)},
            shadow_dirs=[str(shadow_dir(root, k, j)) for j in range(k)]))
    return out


def _synthetic_attack(a: _Audit, attack: str, k: int) -> list[dict[str, Any]]:
    """The attacks on synthetic windows generated with the members' labels: dcr or domias."""
    from .synthetic import target_synthetic

    pc, is_member = a.cfg.privacy, a.m.is_member
    real = a.ds.get_batch(a.rows)[0].numpy()
    member_rows = np.flatnonzero(is_member[a.pats])
    synth, _ = target_synthetic(a.cfg, a.target, a.ds.labels[a.rows[member_rows]], a.ds)
    if attack == "dcr":
        from .dcr import dcr_scores

        sc, _ = dcr_scores(real, a.pats, a.n_patients, synth, a.ds.fs, pc.dcr_max_shift_s, pc.dcr_max_len)
        return [_attack_entry("dcr", attack, sc, is_member,
                              f"{len(synth)} synthetic windows; shifts up to {pc.dcr_max_shift_s:g} s; "
                              "score = minus the smallest DCR over the patient's windows", n_synthetic=len(synth))]
    from dataloader.dataset import WindowDataset

    from .domias import domias_scores, fcn_features_fn
    from .synthetic import domias_fcn

    feats = fcn_features_fn(domias_fcn(a.cfg, a.ds, a.log), a.ds.file.to_physical)
    refs = [WindowDataset(a.ds.file, s) for s in pc.reference_splits]
    ref = np.concatenate([r.get_batch(np.arange(len(r)))[0].numpy() for r in refs])
    sc, _ = domias_scores(feats(real), a.pats, a.n_patients, feats(synth), feats(ref), pc.domias_dims)
    return [_attack_entry("domias", attack, sc, is_member,
                          f"{len(synth)} synthetic, {len(ref)} reference windows; FCN features, "
                          f"PCA {pc.domias_dims} dims, Gaussian KDE; score = mean log density ratio",
                          n_synthetic=len(synth), n_reference=len(ref))]


def _rmia_attack(a: _Audit, attack: str, k: int) -> list[dict[str, Any]]:
    """RMIA online and offline with the first `a.references` of the `k` shadow models as references."""
    from .models import shadow_dir, train_shadows
    from .rmia import run_rmia

    pc, root, is_member, r = a.cfg.privacy, Path(a.cfg.privacy.out_dir), a.m.is_member, a.references
    files = train_shadows(a.cfg, root, [a.m.shadow_patients(j) for j in range(k)], a.log, only=list(range(r)))
    res = run_rmia(a.losses(a.target), np.stack([a.losses(f) for f in files]), a.m.keep[:r], ~is_member,
                   list(pc.noise_levels), pc.rmia_gamma, pc.rmia_offline_a)
    out = []
    for mode in ("online", "offline"):
        sel = res["selection"][mode]
        out.append(_attack_entry(
            f"rmia-{mode}", attack, res[mode], is_member,
            f"R={r} reference models (the first of K={k} shadows), gamma {pc.rmia_gamma:g}, a {sel['a']:g}, "
            f"feature {sel['feature']} (both chosen on the references alone); Pr = exp(-loss); population z = "
            f"the {int((~is_member).sum())} non-members; {sel['fills']} patients had no "
            f"{'IN or OUT' if mode == 'online' else 'OUT'} reference (that side from the linear model)",
            references=r, gamma=pc.rmia_gamma, selection=sel, reference_dirs=[str(shadow_dir(root, k, j))
                                                                              for j in range(r)]))
    return out


# attack name -> runner (a, attack, k) -> report entries
_ATTACKS = {"loss": _loss_attack, "lira": _lira_attack, "rmia": _rmia_attack, "dcr": _synthetic_attack,
            "domias": _synthetic_attack}
ATTACKS = (*_ATTACKS, "attribute")


def _auc(s: np.ndarray, m: np.ndarray) -> float:
    from .metrics import roc_auc

    return roc_auc(s, m)


if __name__ == "__main__":
    run_main(main)
