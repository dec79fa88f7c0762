"""The committed CTG privacy audit: every attack against one target, then a DP target at epsilon 10 and what
DP costs in fidelity. Writes bench/results/privacy_ctg.json, privacy_ctg.md and privacy_ctg_roc.png.

    python -m bench.privacy_audit [--config configs/ctg/privacy.yaml] [--shadows 8] [--epsilon 10]

Non-DP audit: `python -m evaluation.privacy --attack loss|lira|dcr|domias` on privacy.out_dir (trained models
and scores there are reused). DP audit: the same members (privacy.members = the non-DP manifest), the target
retrained with train.dp (per patient, target epsilon, expected batch --dp-batch patients), attacked by loss, DCR
and DOMIAS with the same FCN, and with --dp-lira also by LiRA (K more shadows trained the same DP way). Fidelity: FCN-FID (features of that FCN) and the TimeGAN discriminative score
of each target's synthetic sample against the non-member patients' real windows (patients neither model saw).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dataloader.atomic import write_text_atomic
from dataloader.cli import make_parser, run_main, set_threads
from dataloader.config import load_config

from .machine import machine_info

HERE = Path(__file__).parent


def _report(cfg: Any, attack: str, k: int) -> dict[str, Any]:
    from evaluation.privacy.__main__ import run_attack

    out = Path(cfg.privacy.out_dir)
    t = time.time()
    run_attack(cfg, attack, k, out)
    rep = json.loads((out / f"privacy_{attack}.json").read_text())
    rep["wall_s"] = round(time.time() - t, 1)
    return rep


def _fidelity(cfg: Any, synth_file: Path, fcn: Any, real_phys: np.ndarray, disc_iters: int, disc_runs: int
              ) -> dict[str, Any]:
    from dataloader.dataset import WindowDataset
    from evaluation.metrics.discriminative import discriminative_score
    from evaluation.fcn.model import features
    from evaluation.fcn.fid import fid_from_features

    cache = synth_file.with_name(f"fidelity-{disc_iters}x{disc_runs}-{len(real_phys)}.json")
    if cache.is_file() and cache.stat().st_mtime > synth_file.stat().st_mtime:   # computed from this sample
        return json.loads(cache.read_text())
    ds = WindowDataset(cfg.data.prepared, "train")
    syn = ds.file.to_physical(np.load(synth_file)).astype(np.float32)
    t = time.time()
    fid = fid_from_features(features(fcn, syn), features(fcn, real_phys))
    disc = discriminative_score(real_phys, syn, iterations=disc_iters, runs=disc_runs, seed=0, workers=1)
    out = {"fcn_fid": fid, "discriminative": {"mean": disc["mean"], "std": disc["std"], "runs": disc_runs,
                                              "iterations": disc_iters, "n_per_set": disc["n_per_set"]},
            "n_synthetic": len(syn), "n_real": len(real_phys), "wall_s": round(time.time() - t, 1)}
    write_text_atomic(cache, json.dumps(out) + "\n")
    return out


def _row(rep: dict[str, Any], model: str) -> list[dict[str, Any]]:
    rows = []
    for a in rep["attacks"]:
        rows.append({"model": model, "attack": a["name"], "threat_model": a["threat_model"], "auc": a["auc"],
                     "balanced_accuracy": a["balanced_accuracy"], "tpr_at_fpr": a["tpr_at_fpr"],
                     "n_members": a["n_members"], "n_non_members": a["n_non_members"], "notes": a.get("notes", ""),
                     "roc": a["roc"]})
    return rows


def _markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    dp = r["dp"]["model"]
    L = ["# CTG privacy audit (bench/privacy_audit.py)", "",
         f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; torch {m['torch']}; commit "
         f"{m['commit']}; {m['utc']}. CPU only, two cores shared with other jobs (timings are noisy).", "",
         f"Setup: {r['setup']}", "",
         "| model | attack | threat model | AUC | best bal. acc. | TPR @ 1% FPR [95% CI] | TPR @ 0.1% FPR [95% CI] |",
         "|---|---|---|---|---|---|---|"]
    for row in r["attacks"]:
        cells = [f"{t['tpr']:.3f} [{t['tpr_ci95'][0]:.3f}, {t['tpr_ci95'][1]:.3f}]" for t in row["tpr_at_fpr"]]
        L.append(f"| {row['model']} | {row['attack']} | {row['threat_model']} | {row['auc']:.3f} | "
                 f"{row['balanced_accuracy']:.3f} | {cells[0]} | {cells[1]} |")
    n0 = r["attacks"][0]["n_non_members"]
    L += ["", f"{r['attacks'][0]['n_members']} member and {n0} non-member patients: the smallest non-zero FPR is "
              f"1/{n0} = {1 / n0:.3f}, so both TPR columns are the TPR at zero false positives; the Clopper-Pearson "
              "intervals are over the members.", "",
          f"DP target: DP-SGD per patient, epsilon {dp['epsilon']:.3f} spent (target {dp['target_epsilon']:g}) at "
          f"delta {dp['delta']:.2g}, noise multiplier {dp['noise_multiplier']:.3f}, sample rate "
          f"{dp['sample_rate']:.3f} ({dp['expected_batch_size']} of {dp['patients']} patients per step), "
          f"{dp['steps']} steps, clip {dp['max_grad_norm']:g}, accountant {dp['accountant']}.", "",
          "| model | FCN-FID (lower is better) | discriminative score (0 best, 0.5 worst) |", "|---|---|---|"]
    for name, f in r["fidelity"].items():
        L.append(f"| {name} | {f['fcn_fid']:.3f} | {f['discriminative']['mean']:.3f} +/- "
                 f"{f['discriminative']['std']:.3f} |")
    fl = r["fidelity_floor"]
    L += ["", f"Floor (real member windows against real non-member windows): FCN-FID {fl['fcn_fid']:.3f}. "
              f"{r['fidelity_note']}", ""]
    return "\n".join(L) + "\n"


def _parser() -> Any:
    p = make_parser("python -m bench.privacy_audit", __doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/ctg/privacy.yaml")
    p.add_argument("--shadows", type=int, default=8)
    p.add_argument("--epsilon", type=float, default=10.0, help="DP target epsilon")
    p.add_argument("--dp-batch", type=int, default=16, help="expected patients per DP step")
    p.add_argument("--dp-lira", action="store_true", help="also LiRA against the DP target (K DP shadow models)")
    p.add_argument("--disc-iterations", type=int, default=1000)
    p.add_argument("--disc-runs", type=int, default=3)
    p.add_argument("--out", default=str(HERE / "results" / "privacy_ctg"))
    return p


def _fidelity_of_both(cfg: Any, root: Path, fcn_file: Path, a: Any) -> tuple[dict[str, Any], dict[str, float], Any]:
    """(fidelity of the non-DP and DP targets' synthetic windows against the non-member patients' windows,
    the member-vs-non-member FCN FID floor, the membership) on the audited windows."""
    from dataloader.dataset import WindowDataset
    from evaluation.fcn.model import features
    from evaluation.fcn.weights import load_extractor
    from evaluation.fcn.fid import fid_from_features
    from evaluation.privacy.audit import membership
    from evaluation.privacy.loss_scores import audit_windows

    fcn = load_extractor(fcn_file)[0]
    ds = WindowDataset(cfg.data.prepared, "train")
    mem = membership(cfg, 0, write=False)
    rows, pats = audit_windows(ds, mem.population, cfg.privacy.windows_per_patient)
    x = ds.file.to_physical(ds.get_batch(rows)[0].numpy()).astype(np.float32)
    non = ~mem.is_member[pats]
    pc = cfg.privacy
    name = f"synthetic-{pc.synthetic}-{pc.sampler}-{pc.steps}-{pc.seed}.npy"
    fidelity = {"non-DP": _fidelity(cfg, root / "target" / name, fcn, x[non], a.disc_iterations, a.disc_runs),
                f"DP eps {a.epsilon:g}": _fidelity(cfg, Path(f"{root}-dp") / "target" / name, fcn, x[non],
                                                   a.disc_iterations, a.disc_runs)}
    floor = {"fcn_fid": fid_from_features(features(fcn, x[~non]), features(fcn, x[non]))}
    return fidelity, floor, mem


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    set_threads(1)
    t0 = time.time()
    cfg = load_config(a.config)
    reps = {att: _report(cfg, att, a.shadows) for att in ("lira", "loss", "dcr", "domias")}
    root = Path(cfg.privacy.out_dir)
    fcn_file = sorted(root.glob("fcn-*.safetensors"))[0]
    dp_over = [f"train.dp={{target_epsilon: {a.epsilon}, unit: per_patient, accountant: prv}}",
               f"train.batch_size={a.dp_batch}", f"privacy.out_dir={root}-dp", f"privacy.members={root / 'members.json'}",
               f"privacy.fcn={fcn_file}"]
    cfg_dp = load_config(a.config, dp_over)
    dp_attacks = (("lira",) if a.dp_lira else ()) + ("loss", "dcr", "domias")
    dp_reps = {att: _report(cfg_dp, att, a.shadows) for att in dp_attacks}
    fidelity, floor, mem = _fidelity_of_both(cfg, root, fcn_file, a)
    pc = cfg.privacy
    result = {
        "machine": machine_info(), "config": a.config, "shadows": a.shadows,
        "setup": (f"CTU-UHB CTG at 1 Hz (data/ctg-1hz.h5), windows 2 x 2048 (34 min). Population: "
                  f"{len(mem.population)} train-split patients drawn at random, members = a random half. Target and "
                  f"{a.shadows} shadows: tiny UNet (0.13 M parameters) on the 8x decimated latent, 600 steps of 32 "
                  f"windows, trained by train.py's function on CPU. Scores on up to {pc.windows_per_patient} windows "
                  f"per patient, noise levels t = {pc.noise_levels} of 1000, {pc.draws} fixed draws. Black box: "
                  f"{pc.synthetic} synthetic windows ({pc.sampler}, {pc.steps} steps), DOMIAS reference = val + test "
                  "patients, FCN (pH) trained on them."),
        "attacks": [r for att in ("lira", "loss", "dcr", "domias") for r in _row(reps[att], "non-DP")]
        + [r for att in dp_attacks for r in _row(dp_reps[att], f"DP eps {a.epsilon:g}")],
        "dp": {"model": dp_reps["loss"]["target"]["dp"], "members_file": str(root / "members.json")},
        "fidelity": fidelity, "fidelity_floor": floor,
        "fidelity_note": (f"Discriminative score: {a.disc_iterations} iterations x {a.disc_runs} runs (the spec's "
                          "2000 x 5 cut for CPU time); FCN: the DOMIAS FCN (pH, trained on the reference patients)."),
        "reports": {"non-DP": {k: str(root / f"privacy_{k}.json") for k in reps},
                    "DP": {k: f"{root}-dp/privacy_{k}.json" for k in dp_reps}},
        "wall_s": round(time.time() - t0, 1),
    }
    _write(Path(a.out), result)
    return 0


def _write(out: Path, result: dict[str, Any]) -> None:
    """out_roc.png, out.json and out.md (also printed)."""
    from evaluation.privacy.report import plot_roc

    curves = [dict(r, name=f"{r['model']}: {r['attack']}") for r in result["attacks"]]
    plot_roc(out.with_name(out.name + "_roc.png"), curves, "CTG membership inference, per patient (log-log ROC)")
    write_text_atomic(out.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    write_text_atomic(out.with_suffix(".md"), _markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    run_main(main)
