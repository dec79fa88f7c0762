"""Heart-rate control measured (issue 16 point 2): generate windows at target rates with `generate.py --bpm`
and measure their heart rate with neurokit2 (dataloader/heart_rate.py: R-peak rate, the same function as the
derived label and eval.py's ECG physiology).

    python -m bench.heart_rate_control --config configs/ecg/mitdb-heart-rate.yaml [--checkpoint FILE]
        [--targets 60 90 120] [--n 32] [--steps 20] [--out bench/results/heart_rate_control] [key=value ...]

Per target: the share of windows with a measurable rate, the mean and median measured rate, the mean absolute
error to the target, and the share within +/- 3 bpm (the issue's acceptance band), plus the same for the real
test windows of the target's class (what the label itself holds: a 5-bpm bin is at best +/- 2.5 bpm). Writes
OUT.json and OUT.md; the generated files go to a temporary folder and are removed.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def rate_stats(rates: np.ndarray, target: float) -> dict[str, Any]:
    """Summary of measured rates (N,) (NaN = not measurable) against a target (bpm)."""
    ok = rates[np.isfinite(rates)]
    row: dict[str, Any] = {"n": int(len(rates)), "measurable": float(len(ok) / max(1, len(rates)))}
    if len(ok):
        err = np.abs(ok - target)
        row.update(mean_bpm=float(ok.mean()), median_bpm=float(np.median(ok)), mae_bpm=float(err.mean()),
                   within_3bpm=float((err <= 3.0).sum() / len(rates)))
    return row


def _measure(samples: np.ndarray, fs: float, channel: int) -> np.ndarray:
    from dataloader.heart_rate import rpeak_rate

    return np.array([rpeak_rate(w[channel], fs) for w in samples])


def _fallback(x: np.ndarray, fs: float, channel: int, target: float, cfg: Any) -> np.ndarray:
    """The time-resampling fallback (diffusion/rate_control.py) applied to the generated windows."""
    from diffusion.rate_control import RateTarget, correct_batch

    ranges = ([c.range[0] for c in cfg.data.channels], [c.range[1] for c in cfg.data.channels])
    return correct_batch(x, fs, channel, RateTarget("--bpm", "rpeaks", target), ranges)[0]


def _real_rates(cfg: Any, code: int, column: int, channel: int, limit: int) -> np.ndarray:
    """Rates of up to `limit` real test windows whose heart-rate class is `code`."""
    from dataloader.prepared import PreparedFile

    f = PreparedFile(cfg.data.prepared)
    xs = []
    for i in range(f.n_windows("test")):
        x, y, _ = f.window("test", i)
        if int(y[column]) == code:
            xs.append(f.to_physical(x))
        if len(xs) == limit:
            break
    return _measure(np.asarray(xs), f.fs, channel) if xs else np.zeros(0)


def run(a: argparse.Namespace) -> dict[str, Any]:
    from dataloader.config import load_config
    from dataloader.synthetic import read_synthetic
    from generate import main as generate

    cfg = load_config(a.config, a.overrides)
    names = [c.name for c in cfg.data.channels]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in a.targets:
            out = Path(tmp) / f"bpm{t:g}.h5"
            args = ["--config", a.config, "--samples", str(a.n), "--out", str(out), "--bpm", str(t),
                    "--steps", str(a.steps), "--seed", "0", *a.overrides]
            args += ["--checkpoint", a.checkpoint] if a.checkpoint else []
            t0 = time.time()
            assert generate(args) == 0
            x, labels, attrs = read_synthetic(str(out))
            ctl = json.loads(attrs["heart_rate_control"])
            column = [lab.key for lab in cfg.data.label_columns].index(ctl["label"]) if "label" in ctl else None
            ch = names.index(cfg.data.label_columns[column].channel) if column is not None else 0
            fs = float(attrs["fs"])
            row = {"target_bpm": t, "control": ctl, "seconds": round(time.time() - t0, 1),
                   "generated": rate_stats(_measure(x, fs, ch), t),
                   "fallback_on_generated": rate_stats(_measure(_fallback(x, fs, ch, t, cfg), fs, ch), t)}
            if column is not None:
                row["real_test_class"] = rate_stats(_real_rates(cfg, ctl["code"], column, ch, a.n), t)
            rows.append(row)
    return {"config": a.config, "overrides": a.overrides, "checkpoint": a.checkpoint, "n_per_target": a.n, "steps": a.steps,
            "machine": platform.processor() or platform.machine(), "rows": rows}


def markdown(res: dict[str, Any]) -> str:
    lines = [f"# Heart-rate control: generated rate vs target ({res['config']}, {res['n_per_target']} windows "
             f"per target, {res['steps']} sampler steps)", "",
             "| target bpm | method | class | measurable | mean bpm | median bpm | MAE bpm | within +/-3 bpm "
             "| real test windows of the class: mean bpm, within +/-3 | fallback resampling of the same windows: "
             "MAE, within +/-3 |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["rows"]:
        g, c, real, fb = r["generated"], r["control"], r.get("real_test_class", {}), r["fallback_on_generated"]
        f = lambda d, k, fmt: format(d[k], fmt) if k in d else "-"  # noqa: E731
        lines.append(f"| {r['target_bpm']:g} | {c['method']} | {c.get('class', '-')} | {g['measurable']:.2f} | "
                     f"{f(g, 'mean_bpm', '.1f')} | {f(g, 'median_bpm', '.1f')} | {f(g, 'mae_bpm', '.1f')} | "
                     f"{f(g, 'within_3bpm', '.2f')} | {f(real, 'mean_bpm', '.1f')}, {f(real, 'within_3bpm', '.2f')} "
                     f"(n={real.get('n', 0)}) | {f(fb, 'mae_bpm', '.1f')}, {f(fb, 'within_3bpm', '.2f')} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--targets", type=float, nargs="+", default=[60.0, 90.0, 120.0])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default="bench/results/heart_rate_control")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (as for generate.py)")
    a = p.parse_args(argv)
    res = run(a)
    Path(a.out + ".json").write_text(json.dumps(res, indent=1) + "\n")
    Path(a.out + ".md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
