"""The figures and the markdown table of bench/speed_scaling.py, from its result dict (no measuring here).

Window sweep: windows/s is the median of the timed epochs' log.csv rates; "cost / linear" is the time per
window relative to the shortest length divided by the length ratio (1.0: cost grows in proportion to length;
above 1: faster than linear, e.g. attention). Generation: seconds per window over the whole process and the
marginal cost between consecutive counts; RSS growth from the smallest to the largest count beside the growth
of the output written (bounded memory: RSS grows far less than the output). Data parallel: efficiency per
pair = (windows/s, 2 processes) / (2 x windows/s, 1 process), and its median over the pairs.
"""
from __future__ import annotations

import statistics
from typing import Any, Optional


def window_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per window length: windows/s, s/window, peak RSS, peak RSS per window of the batch, cost / linear."""
    rows = []
    for r in runs:
        rate = statistics.median(r["epoch_rates"])
        rows.append({"window": r["window"], "batch": r["batch"], "windows_per_s": rate, "s_per_window": 1 / rate,
                     "peak_rss_mib": r["peak_rss_mib"], "rss_per_window_mib": r["peak_rss_mib"] / r["batch"]})
    for row in rows:
        first = rows[0]
        row["cost_vs_linear"] = (row["s_per_window"] / first["s_per_window"]) / (row["window"] / first["window"])
    return rows


def generate_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per window count: wall s, s/window, marginal s/window against the previous count, peak RSS, output."""
    rows, prev = [], None
    for r in runs:
        marginal: Optional[float] = None
        if prev is not None and r["count"] > prev["count"]:
            marginal = (r["wall_s"] - prev["wall_s"]) / (r["count"] - prev["count"])
        rows.append({"count": r["count"], "wall_s": r["wall_s"], "s_per_window": r["wall_s"] / r["count"],
                     "marginal_s_per_window": marginal, "peak_rss_mib": r["peak_rss_mib"],
                     "output_mib": r["output_mib"]})
        prev = r
    return rows


def ddp_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per pair the two rates and the efficiency; medians over the pairs; the largest peak RSS per side."""
    by: dict[int, dict[int, dict[str, Any]]] = {}
    for r in runs:
        by.setdefault(r["pair"], {})[r["processes"]] = r
    pairs = []
    for pair, sides in sorted(by.items()):
        one, two = (statistics.median(sides[p]["epoch_rates"]) for p in (1, 2))
        pairs.append({"pair": pair, "windows_per_s_1": one, "windows_per_s_2": two, "efficiency": two / (2 * one)})
    return {"pairs": pairs, "efficiency": statistics.median(p["efficiency"] for p in pairs),
            "windows_per_s_1": statistics.median(p["windows_per_s_1"] for p in pairs),
            "windows_per_s_2": statistics.median(p["windows_per_s_2"] for p in pairs),
            "peak_rss_mib_1": max(r["peak_rss_mib"] for r in runs if r["processes"] == 1),
            "peak_rss_mib_2": max(r["peak_rss_mib"] for r in runs if r["processes"] == 2)}


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    """The figures of every part the result holds."""
    out: dict[str, Any] = {}
    if res.get("window"):
        out["window"] = window_rows(res["window"])
    if res.get("generate"):
        g = generate_rows(res["generate"])
        out["generate"] = g
        out["generate_rss_growth_mib"] = g[-1]["peak_rss_mib"] - g[0]["peak_rss_mib"]
        out["generate_output_growth_mib"] = g[-1]["output_mib"] - g[0]["output_mib"]
    if res.get("ddp"):
        out["ddp"] = ddp_summary(res["ddp"])
    return out


def _loads(runs: list[dict[str, Any]], label: Any) -> str:
    return ", ".join(f"{label(r)} {r['loadavg_before'][0]:.1f}/{r['loadavg_after'][0]:.1f}" for r in runs)


def _window_md(res: dict[str, Any]) -> list[str]:
    p, s = res["plan"], res["summary"]
    lines = ["", f"## Training per window against window length (batch {p['train_batch']}, {p['threads']} threads)",
             "", "| window (samples) | windows/s | s / window | cost / linear | peak RSS, MiB | peak RSS / window "
                 "of the batch, MiB |", "| --- | --- | --- | --- | --- | --- |"]
    for r in s["window"]:
        lines.append(f"| {r['window']} | {r['windows_per_s']:.3f} | {r['s_per_window']:.3f} | "
                     f"{r['cost_vs_linear']:.2f} | {r['peak_rss_mib']:.0f} | {r['rss_per_window_mib']:.0f} |")
    lines += ["", f"Median of {p['epochs']} timed epochs of {p['epoch_steps']} steps (log.csv) after a warm-up "
              "epoch. Peak RSS includes the fixed cost (torch, model, AdamW state). Load (1 min) before/after: "
              + _loads(res["window"], lambda r: f"w{r['window']}") + "."]
    return lines


def _generate_md(res: dict[str, Any]) -> list[str]:
    p, s = res["plan"], res["summary"]
    lines = ["", f"## Generation against window count (window {p['gen_window']}, {p['gen_steps']} sampler steps, "
                 f"batch {p['gen_batch']}, {p['threads']} threads)", "",
             "| windows | wall s (whole process) | s / window | marginal s / window | peak RSS, MiB | output, MiB |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in s["generate"]:
        m = "" if r["marginal_s_per_window"] is None else f"{r['marginal_s_per_window']:.3f}"
        lines.append(f"| {r['count']} | {r['wall_s']:.1f} | {r['s_per_window']:.3f} | {m} | "
                     f"{r['peak_rss_mib']:.0f} | {r['output_mib']:.1f} |")
    lines += ["", f"Peak RSS grew {s['generate_rss_growth_mib']:.0f} MiB from {s['generate'][0]['count']} to "
              f"{s['generate'][-1]['count']} windows while the output grew {s['generate_output_growth_mib']:.1f} MiB "
              "(batches stream to the file). Wall time includes start-up and model loading; the marginal column "
              "does not. Load (1 min) before/after: " + _loads(res["generate"], lambda r: f"n{r['count']}") + "."]
    return lines


def _ddp_md(res: dict[str, Any]) -> list[str]:
    p, d = res["plan"], res["summary"]["ddp"]
    lines = ["", f"## Data parallel: 2 processes against 1 (torchrun, DDP over gloo, window {p['ddp_window']}, "
                 f"global batch {p['ddp_batch']}, 1 thread per process)", "",
             "| pair | windows/s, 1 process | windows/s, 2 processes | efficiency |", "| --- | --- | --- | --- |"]
    for r in d["pairs"]:
        lines.append(f"| {r['pair']} | {r['windows_per_s_1']:.3f} | {r['windows_per_s_2']:.3f} | "
                     f"{r['efficiency']:.0%} |")
    lines += [f"| median | {d['windows_per_s_1']:.3f} | {d['windows_per_s_2']:.3f} | {d['efficiency']:.0%} |", "",
              "Efficiency = (windows/s with 2) / (2 x windows/s with 1), per interleaved pair. Peak RSS of the largest "
              f"process: {d['peak_rss_mib_1']:.0f} MiB (1 process), {d['peak_rss_mib_2']:.0f} MiB (2 processes). "
              "Load (1 min) before/after: " + _loads(res["ddp"], lambda r: f"{r['pair']}:{r['processes']}p") + "."]
    if res["machine"].get("cores", 2) < 2:
        lines.append("This machine has fewer than 2 cores: the 2 processes share one, so the efficiency says little.")
    return lines


def markdown(res: dict[str, Any]) -> str:
    """The result as markdown: machine and settings, one table per part it holds, the command."""
    m, p, v = res["machine"], res["plan"], res["versions"]
    lines = [f"# Cost as work grows ({'QUICK REHEARSAL, not figures to quote; ' if res.get('quick') else ''}"
             f"commit {m['commit']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, GPU {m['gpu'] or 'none'}; Python "
             f"{m['python']}, torch {m['torch']}, numpy {m['numpy']}, "
             + ", ".join(f"{k} {x}" for k, x in v.items() if x) + f"; {m['utc']}. "
             f"Config `{res['config']}`, model.size {p['size']}; GLIBC_TUNABLES=`{res['glibc_tunables']}`, nice "
             f"{res['nice']}. Each point is one child process (train.py, generate.py or torchrun train.py). "
             f"Data: {res['data']}."]
    s = res["summary"]
    if "window" in s:
        lines += _window_md(res)
    if "generate" in s:
        lines += _generate_md(res)
    if "ddp" in s:
        lines += _ddp_md(res)
    lines += ["", f"Command: `nice -n {res['nice']} {res['command']}`.", ""]
    return "\n".join(lines)
