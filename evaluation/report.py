"""The evaluation report: report.json (everything) and report.md (one row per file, the floor first).

Markdown columns: per label column FCN-FID, FCN-IS, accuracy against the generating label (floor: the FCN's
accuracy on the held-out real patients), TSTR accuracy and TRTS macro-F1; then the discriminative and
predictive scores, NN DTW, RMSE, PRD, MMD^2, mean pairwise distance and mode-collapse share. A second table
gives the Wasserstein distance of each physiological feature to the real reference (and the share of windows
in the clinical range). The conditioning section gives, per file and label column, a one-line verdict and the
matrix of Wasserstein-1 distances (generated class x real class, every feature); the label-accuracy lines put the
FCN's accuracy on the generated labels beside its accuracy on the real reference windows.
"""
from __future__ import annotations

import math
from typing import Any


def clean(v: Any) -> Any:
    """JSON-ready copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _f(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 10 ** 4 or abs(v) < 10 ** -nd):
            return f"{v:.2e}"
        return f"{v:.{nd}f}"
    return str(v)


def _pm(d: dict | None, nd: int = 3) -> str:
    return "-" if not d else f"{_f(d.get('mean'), nd)} ± {_f(d.get('std'), nd)}"


def _columns(labels: list[str], metrics: list[str]) -> list[tuple[str, Any]]:
    """(header, cell function of a row's metrics) for the metrics that ran."""
    g = lambda m, *keys: (lambda r: _dig(r, m, *keys))  # noqa: E731
    cols: list[tuple[str, Any]] = []
    for lab in labels:
        if "fid" in metrics:
            cols.append((f"FID {lab}", lambda r, lab=lab: _f(_dig(r, "fid", lab), 2)))
        if "is" in metrics:
            cols.append((f"IS {lab}", lambda r, lab=lab: _pm(_dig(r, "is", lab))))
        if "accuracy" in metrics:
            cols.append((f"acc {lab}", lambda r, lab=lab: _f(_dig(r, "accuracy", lab, "accuracy"))))
        if "tstr" in metrics:
            cols.append((f"TSTR acc {lab}", lambda r, lab=lab: _f(_dig(r, "tstr", lab, "accuracy"))))
        if "trts" in metrics:
            cols.append((f"TRTS F1 {lab}", lambda r, lab=lab: _f(_dig(r, "trts", lab, "macro_f1"))))
    if "discriminative" in metrics:
        cols.append(("disc.", lambda r: _pm(r.get("discriminative"))))
    if "predictive" in metrics:
        cols.append(("pred. MAE", lambda r: _pm(r.get("predictive"))))
    if "dtw" in metrics:
        cols.append(("NN DTW", lambda r: _f(g("dtw", "mean")(r), 2)))
    if "rmse_prd" in metrics:
        cols += [("RMSE", lambda r: _f(g("rmse_prd", "rmse")(r), 2)),
                 ("PRD %", lambda r: _f(g("rmse_prd", "prd")(r), 2))]
    if "mmd" in metrics:
        cols.append(("MMD²", lambda r: _f(g("mmd", "mmd2")(r), 4)))
    if "diversity" in metrics:
        cols += [("pairwise", lambda r: _f(g("diversity", "synth_mean_pairwise")(r), 2)),
                 ("collapse", lambda r: _f(g("diversity", "mode_collapse_share")(r), 3))]
    return cols


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def markdown(report: dict[str, Any]) -> str:
    """The tables of report.md."""
    rows = report["rows"]
    cols = _columns(report["labels"], report["metrics"])
    lines = ["| file | n | " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        lines.append(f"| {r['name']} | {r['n']} | " + " | ".join(fn(r["metrics"]) for _, fn in cols) + " |")
    out = ["\n".join(lines)]
    phys = [r for r in rows if (r["metrics"].get("physio") or {}).get("features")]
    if phys:
        feats = list(phys[0]["metrics"]["physio"]["features"])
        ph = ["file"] + feats
        pl = ["| " + " | ".join(ph) + " |", "|" + "---|" * len(ph)]
        for r in phys:
            fs = r["metrics"]["physio"]["features"]
            cells = [r["name"]]
            for f in feats:
                row = fs.get(f, {})
                c = f"{_f(row.get('wasserstein'), 2)} ({_f(row.get('synth_mean'), 1)} vs {_f(row.get('real_mean'), 1)})"
                if row.get("synth_in_range") is not None:
                    c += f", in range {_f(row.get('synth_in_range'), 2)}"
                cells.append(c)
            pl.append("| " + " | ".join(cells) + " |")
        out.append("Physiological features: Wasserstein-1 distance to the real reference (mean of this set vs "
                   "mean of the reference), and the share of windows inside the clinical range.\n\n" + "\n".join(pl))
    sig = [r for r in rows if (r["metrics"].get("signal") or {}).get("channels")]
    if sig:
        chans = list(sig[0]["metrics"]["signal"]["channels"])
        sl = ["| file | " + " | ".join(chans) + " |", "|" + "---|" * (len(chans) + 1)]
        for r in sig:
            cs = r["metrics"]["signal"]["channels"]
            sl.append(f"| {r['name']} | " + " | ".join(
                f"{_f(cs[c]['roughness_ratio'], 2)}, touch {_f(cs[c]['touch'], 3)} (real {_f(cs[c]['real_touch'], 3)})"
                for c in chans) + " |")
        tol = sig[0]["metrics"]["signal"]["tolerance"]
        out.append("Signal: step-to-step roughness mean |x[t+1] - x[t]| synthetic / reference (1.00 = as smooth as "
                   f"real), and the share of windows with a sample within {tol:g} of the span from a range limit "
                   "(this set vs the reference).\n\n" + "\n".join(sl))
    out += _conditioning_md(rows) + _accuracy_md(rows, report["labels"])
    return "\n\n".join(out) + "\n"


def _skip_text(name: str, r: dict) -> str:
    return (f"{name} (synthetic {r['n_synth']}, {r['n_synth_measured']} measured; real {r['n_real']}, "
            f"{r['n_real_measured']} measured: {r['reason']})")


def conditioning_verdict(row_name: str, lab: str, c: dict) -> str:
    """One line: the verdict of one label column of one row, how many classes passed, which were skipped."""
    line = (f"- `{row_name}`, `{lab}`: **{c['verdict']}**: {c['passed']} of {c['tested']} tested classes nearest "
            "their own real class on every feature")
    if c["skipped"]:
        line += "; skipped: " + "; ".join(_skip_text(k, v) for k, v in c["skipped"].items())
    if c["absent"]:
        line += f"; no window on either side: {', '.join(c['absent'])}"
    return line


def _conditioning_matrix(c: dict, feats: list[str]) -> str:
    """Rows: generated classes; columns: real classes; cell: W1 of each feature, the own class in bold."""
    cols = c["columns"]
    lines = ["| generated \\ real | " + " | ".join(cols) + " | n | nearest | pass |", "|" + "---|" * (len(cols) + 4)]
    for name, r in c["rows"].items():
        cells = []
        for j, col in enumerate(cols):
            v = " / ".join(_f(r["w1"][f][j], 2) for f in feats)
            cells.append(f"**{v}**" if col == name else v)
        nearest = " / ".join(r["nearest"][f] for f in feats)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['n_synth_measured']} | {nearest} | "
                     f"{'yes' if r['pass'] else 'no'} |")
    return "\n".join(lines)


def _conditioning_md(rows: list[dict]) -> list[str]:
    done = [r for r in rows if (r["metrics"].get("conditioning") or {}).get("labels")]
    if not done:
        return []
    first = done[0]["metrics"]["conditioning"]
    feats = first["features"]
    parts = [f"Conditioning: Wasserstein-1 of each physiological feature ({' / '.join(feats)}) between the windows "
             "of each generated class (rows; floor: train windows with their true labels) and the real reference "
             "windows of each class (columns); a row passes when its own class is strictly nearest for every "
             f"feature; classes need {first['min_windows']} measured windows on each side."]
    for r in done:
        for lab, c in r["metrics"]["conditioning"]["labels"].items():
            parts.append(conditioning_verdict(r["name"], lab, c) + ("\n\n" + _conditioning_matrix(c, feats)
                                                                      if c["rows"] else ""))
    return parts


def _accuracy_md(rows: list[dict], labels: list[str]) -> list[str]:
    """Per file and label: the FCN's accuracy on the generated labels against its accuracy on the real
    reference windows (conditioning reaches the real data's level when the first is at least the second)."""
    lines = []
    for r in rows[1:]:
        for lab in labels:
            a = _dig(r["metrics"], "accuracy", lab)
            if not a or a.get("reference_accuracy") is None or a.get("accuracy") is None:
                continue
            ok = a["accuracy"] >= a["reference_accuracy"]
            lines.append(f"- `{r['name']}`, `{lab}`: FCN accuracy on the generated labels {_f(a['accuracy'])} "
                         f"{'>=' if ok else '<'} {_f(a['reference_accuracy'])} on the {a['reference_n']} real "
                         f"reference windows: {'yes' if ok else 'no'}")
    return ["Label accuracy against the real reference:\n\n" + "\n".join(lines)] if lines else []


def document(report: dict[str, Any]) -> str:
    """report.md: a header saying what was compared, then the tables."""
    fcn = report.get("fcns") or {}
    fcn_lines = [f"- FCN `{lab}`: test accuracy {_f(m.get('test_accuracy'))} (majority class "
                 f"{_f(m.get('test_majority_share'))}, balanced {_f(m.get('test_balanced_accuracy'))}, macro-F1 "
                 f"{_f(m.get('test_macro_f1'))}) on {m.get('n_test')} windows of {m.get('test_patients')} test "
                 f"patients; trained on {m.get('n_train')} windows, downsample {m.get('downsample')}"
                 for lab, m in fcn.items()]
    ref = report["reference"]
    lines = [f"# Evaluation: {', '.join(r['name'] for r in report['rows'][1:]) or 'real-vs-real floor only'}", "",
             f"Real data: `{report['prepared']}` (sha256 {report['data_sha256'][:12]}), reference = "
             f"{ref['n']} windows of {ref['patients']} {ref['split']} patients; floor row = {report['floor']['n']} "
             f"windows of {report['floor']['patients']} train patients in place of synthetic data"
             f"{' (train windows not in the reference)' if ref['split'] == 'train' else ''} "
             f"({'from the cache' if report['floor'].get('cached') else 'computed in this run'}).",
             f"Metrics: {', '.join(report['metrics'])}. Seed {report['seed']}. Distances in physical units.", ""]
    if ref["split"] == "train":
        lines += ["**The reference is the TRAIN split**: the generator's own training windows (this data set has "
                  "no held-out patients). The scores measure how well the model fits its training data, not how "
                  "it generalises; where windows overlap (a stride below the window length) the floor row is "
                  "optimistic.", ""]
    lines += fcn_lines + [""] if fcn_lines else []
    return "\n".join(lines) + "\n" + markdown(report)
