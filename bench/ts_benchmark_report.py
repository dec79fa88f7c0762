"""report.md of `python -m bench.ts_benchmark score`: mean ± std per score, the real-vs-real row, settings."""
from __future__ import annotations

from typing import Any

NAMES = {"discriminative": "discriminative (abs(accuracy - 0.5), lower better)",
         "predictive": "predictive (MAE, lower better)",
         "correlational": "correlational (L1 / 10, lower better)"}


def _cell(s: dict[str, Any] | None) -> str:
    return "" if s is None else f"{s['mean']:.4f} ± {s['std']:.4f}"


def _ci(s: dict[str, Any] | None) -> str:
    return "" if s is None else f"{s['mean']:.4f} ± {s['ci95']:.4f}"


def report_markdown(rep: dict[str, Any]) -> str:
    """The report as markdown: one row per score, then inputs, settings and machine."""
    res, st = rep["result"], rep["result"]["settings"]
    rvr = res.get("real_vs_real", {})
    lines = ["# Time-series benchmark protocol (TimeGAN / Diffusion-TS)", "",
             f"Real: `{rep['real']['source']}` ({st['n_real']} windows of {st['steps']} steps x {st['channels']} "
             f"channels); synthetic: `{rep['synthetic']['source']}` ({st['n_synthetic']} windows).", "",
             f"{st['runs']} runs (seed {st['seed']}). mean ± std (ddof 0) over runs; the Diffusion-TS column is "
             "mean ± 95 % t-interval half-width, the form of its published ± numbers.", "",
             "| score | synthetic: mean ± std | synthetic: Diffusion-TS ± | real vs real: mean ± std "
             "| seconds (synthetic row) |",
             "| --- | --- | --- | --- | --- |"]
    for name, s in res["scores"].items():
        lines.append(f"| {NAMES[name]} | {_cell(s)} | {_ci(s)} | {_cell(rvr.get(name))} | "
                     f"{res['seconds'][name]} |")
    dev = st["deviations_from_reference"]
    lines += ["", "Settings: GRU hidden {gru_hidden}, batch {batch}, discriminative iterations {disc_iterations}, "
              "predictive iterations {pred_iterations}, train/test split {train_rate}.".format(**st),
              f"Deviations from the reference protocol: {', '.join(dev) if dev else 'none'}.",
              f"Real vs real: {st['real_vs_real_draw']}." if rvr else "Real vs real: not computed.",
              f"Synthetic values outside [0, 1]: {100 * res['synthetic_outside_01']:.2f} %.",
              "Context-FID: not computed (see evaluation/protocol/__init__.py for why).", "",
              f"Machine: {rep['machine']['cpu']}, {rep['machine']['cores']} cores, torch threads {rep['threads']}, "
              f"torch {rep['machine']['torch']}, commit {rep['machine']['commit'] or '?'}, "
              f"{rep['machine']['utc']}; total {rep['seconds_total']} s.", ""]
    return "\n".join(lines)


def run_markdown(rep: dict[str, Any]) -> str:
    """report.md of `run`: one row per (sampler, NFE) with every score and the roughness ratio per channel."""
    names = list(rep["rows"][0]["scores"]) if rep["rows"] else []
    rvr = rep.get("real_vs_real") or {}
    rough = rep["real_roughness"]
    lines = ["# Time-series benchmark protocol (TimeGAN / Diffusion-TS): train, generate, score", "",
             f"Config `{rep['config']}` {' '.join(rep['overrides'])}; training capped at {rep['train_minutes_cap']} "
             f"min (took {rep['train_s']} s including start-up); {rep['real_windows']} real windows, "
             f"{rep['generated_windows']} generated per cell"
             + ("" if rep["generated_windows"] == rep["real_windows"] else " (capped: fewer than the protocol's)")
             + f". Scores: mean ± std of {rep['runs']} runs, seed {rep['seed']}.", "",
             "Roughness: mean |x[t+1] - x[t]| per channel in [0, 1] units, synthetic / real (1.00 = as smooth as "
             "real; real: " + ", ".join(f"{c} {r:.4f}" for c, r in zip(rep["channels"], rough)) + ").", "",
             "| sampler | steps | NFE | " + " | ".join(names) + " | roughness / real (per channel) |",
             "| --- | --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]
    if rvr:
        lines.append("| real vs real | | | " + " | ".join(_cell(rvr.get(n)) for n in names) + " | 1.00 |")
    for r in rep["rows"]:
        ratio = " ".join(f"{s / max(q, 1e-12):.2f}" for s, q in zip(r["roughness"], rough))
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['nfe'] if r['nfe'] is not None else ''} | "
                     + " | ".join(_cell(r["scores"].get(n)) for n in names) + f" | {ratio} |")
    m = rep["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {rep['threads']}, torch {m['torch']}, "
              f"commit {m['commit'] or '?'}, {m['utc']}.", ""]
    return "\n".join(lines)
