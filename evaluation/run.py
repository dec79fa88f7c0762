"""eval.py's work: check every input, build the context, score the floor (cached) and each synthetic file,
then write report.json, report.md and the figures into the output folder.

Nothing is written before every input has been checked and every score computed (the floor cache aside), so
bad input or a failure leaves no partial report. Files are written atomically.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from dataloader.atomic import check_out_dir, write_text_atomic
from evaluation.config import EvalConfig
from dataloader.errors import UserError

from .context import EvalContext, physio_names
from .floor_cache import cache_file, load_floor, save_floor
from .inputs import SynthSet, load_synthetic
from .metrics import FCN_METRICS, LABEL_METRICS, check_counts, check_metrics
from .plots import figures
from .real_data import data_sha256, real_subset
from .reference import label_names, open_reference, physio_plan, reference_text
from .report import clean, document
from .scoring import score_set


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def evaluate(cfg: Any, ev: EvalConfig, synthetic: list[str], metrics: list[str] | None, out: str | None,
             figures_on: bool = True, device: str = "cpu") -> dict[str, Any]:
    """Evaluate the files `synthetic` (may be empty: the floor row only) and write the report to `out`
    (None: write nothing). Returns the report dict."""
    t_start = time.perf_counter()
    metrics = check_metrics(list(metrics) if metrics is not None else list(ev.metrics))
    out_dir = None
    if out is not None:
        out_dir = Path(out)
        check_out_dir(out_dir / "report.json" if out_dir.is_dir() else out_dir, "--out")
    ctx, sets = build_context(cfg, ev, synthetic, metrics, device)
    floor_row, floor_info = score_floor(ctx, metrics)
    rows, extras = [floor_row], []
    for s in sets:
        row, ex = score_file(ctx, s, metrics)
        rows.append(row)
        extras.append(ex)
    ref = ctx.ref
    report = {
        "prepared": ctx.pf.path, "data_sha256": ctx.sha, "labels": ctx.labels, "metrics": metrics, "seed": ev.seed,
        "reference": {"split": ev.reference, "n": len(ref.x), "patients": ref.n_patients,
                      "held_out": ev.reference != "train", "description": reference_text(ev.reference)},
        "floor": floor_info,
        "fcns": {lab: {k: v for k, v in meta.items() if k not in ("channels", "settings")}
                 for lab, (_, meta) in ctx.fcns.items()},
        "physio": ctx.physio, "config": cfg.raw.get("eval"), "rows": rows,
        "seconds_total": round(time.perf_counter() - t_start, 1),
    }
    report = clean(report)
    if out_dir is not None:
        write_outputs(out_dir, report, ctx, sets, extras, figures_on)
    return report


def build_context(cfg: Any, ev: EvalConfig, synthetic: list[str], metrics: list[str],
                  device: str) -> tuple[EvalContext, list[SynthSet]]:
    """Check every input (reference, floor and synthetic windows against what the metrics need), load or train
    the FCNs, and return the context and the loaded synthetic sets. UserError on bad input."""
    pf = open_reference(cfg, ev)
    labels = label_names(pf, ev)
    if not labels and any(m in FCN_METRICS or m in LABEL_METRICS for m in metrics):
        asked = [m for m in metrics if m in FCN_METRICS or m in LABEL_METRICS]
        raise UserError("--metrics", f"{', '.join(asked)} need label columns, and {pf.path} has none "
                                     "(leave them out with --metrics)")
    plan = physio_plan(pf, ev.physio, ev.conditioning)
    ref = real_subset(pf, ev.reference, ev.n_real, ev.seed)
    check_counts(metrics, len(ref.x), f"{pf.path}: reference split {ev.reference!r}")
    # with reference: train the floor must not reuse the reference's windows (it would score 0 by construction)
    floor_set = real_subset(pf, "train", ev.n_floor, ev.seed, ref.index if ev.reference == "train" else None)
    check_counts(metrics, len(floor_set.x), f"{pf.path}: split 'train'")
    sets: list[SynthSet] = [load_synthetic(p, pf, labels, metrics, ev.n_synthetic) for p in synthetic]
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise UserError("--synthetic", "two files have the same name; rename one so the report rows differ")

    fcns = {}
    if any(m in FCN_METRICS for m in metrics) and labels:
        from .fcn.store import load_or_train

        fcns = load_or_train(pf, labels, ev.fcn, device=device, log=log)
    ctx = EvalContext(ev=ev, pf=pf, sha=data_sha256(pf.path), labels=labels, ref=ref, floor=floor_set, fcns=fcns,
                      physio=plan, device=device)
    return ctx, sets


def score_floor(ctx: EvalContext, metrics: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The real-vs-real floor row, cached per prepared file and settings (only missing metrics are computed),
    and the report's "floor" entry."""
    ev, floor_set = ctx.ev, ctx.floor
    cached = load_floor(ctx)
    todo = [m for m in metrics if m not in cached["results"]]
    t0 = time.perf_counter()
    if todo:
        log(f"real-vs-real floor: {', '.join(todo)}")
        fl_labels = {lab: floor_set.y[:, ctx.col(lab)] for lab in ctx.labels}
        res, secs, _ = score_set(ctx, "floor", floor_set.x, fl_labels, todo, floor=True)
        cached["results"].update(res)
        cached["seconds"].update(secs)
        save_floor(ctx, cached)
    floor_seconds = round(time.perf_counter() - t0, 1)
    floor_name = ("real-vs-real (other train windows vs the train reference)" if ev.reference == "train"
                  else f"real-vs-real (train vs {ev.reference} patients)")
    row = {"name": floor_name, "file": None, "n": len(floor_set.x),
           "metrics": {m: cached["results"][m] for m in metrics if m in cached["results"]},
           "seconds": cached["seconds"], "cached": not todo}
    info = {"split": "train", "n": len(floor_set.x), "patients": floor_set.n_patients, "cached": not todo,
            "cache_file": str(cache_file(ctx)), "seconds_this_run": floor_seconds}
    return row, info


def score_file(ctx: EvalContext, s: SynthSet, metrics: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One synthetic file's report row, and its extras for the figures (see score_set)."""
    log(f"{s.name}: {len(s.x)} windows")
    t0 = time.perf_counter()
    res, secs, ex = score_set(ctx, s.name, s.x, s.labels, metrics)
    secs["total"] = round(time.perf_counter() - t0, 1)
    row = {"name": s.name, "file": s.path, "n": len(s.x), "metrics": res, "seconds": secs,
           **{k: s.attrs.get(k) for k in ("sampler", "steps", "guidance_scale", "seed", "model_sha256")}}
    return row, ex


def write_outputs(out_dir: Path, report: dict[str, Any], ctx: EvalContext, sets: list[SynthSet],
                  extras: list[dict[str, Any]], figures_on: bool) -> None:
    """report.json, report.md and figures/ (figures need the FCN features and physiological features)."""
    out_dir.mkdir(exist_ok=True)
    pngs: list[str] = []
    if figures_on and sets:
        from dataloader.dataset import WindowDataset

        fig_dir = out_dir / "figures"
        fig_dir.mkdir(exist_ok=True)
        real_ds = WindowDataset(ctx.pf, ctx.ev.reference)
        for s, ex in zip(sets, extras):
            stem = figures.stem_for(s.name)
            pngs.append(str(figures.grid_plot(fig_dir / f"{stem}-grid.png", s.path, real_ds, ctx.ev.grid_windows,
                                              ctx.ev.seed)))
            if "physio" in ex:
                names, _ = physio_names(ctx)
                pngs.append(str(figures.physio_histograms(
                    fig_dir / f"{stem}-physio.png", names, ctx.ref_physio(), ex["physio"],
                    f"{s.name}: physiological features vs real {ctx.ev.reference} patients")))
            feats = ex.get("fcn_features") or {}
            if feats:
                lab = next(iter(feats))
                pngs.append(str(figures.embedding_plot(
                    fig_dir / f"{stem}-embedding.png", ctx.ref_features(lab)[0], feats[lab],
                    f"{s.name}: pooled features of the FCN for {lab!r}", seed=ctx.ev.seed)))
    report["figures"] = pngs
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    write_text_atomic(out_dir / "report.md", document(report))
    log(f"wrote {out_dir / 'report.json'}, {out_dir / 'report.md'} and {len(pngs)} figures")


