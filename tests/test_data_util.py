"""Helpers for the data tests (no tests here): synthetic CSV folders, configs, running commands in-process."""
from __future__ import annotations

import contextlib
import gzip
import io
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import yaml

from dataloader.cli import run_main

FS = 4.0          # synthetic rate (Hz)
WINDOW = 64       # synthetic window (samples)


def synth_signal(n: int, seed: int, gaps: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """(2, n): channel A ~ 140 +- 10 with sentinel-0 gaps at `gaps` (start, length); channel B ~ 20..60."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    a = 140 + 10 * np.sin(2 * np.pi * t / 60 + seed) + rng.normal(0, 1, n)
    b = 40 + 20 * np.sin(2 * np.pi * t / 90 + seed)
    a = np.round(a * 4) / 4
    b = np.round(b * 2) / 2
    for s, k in gaps:
        a[s:s + k] = 0
    return np.stack([a, b])


def write_csv(path: Path, x: np.ndarray, header: Sequence[str] = ("A", "B"), gz: bool = False,
              cells: Optional[dict[tuple[int, int], str]] = None) -> Path:
    """Write (C, N) as CSV; `cells` overrides text of (row, col) (row 0 = first sample row)."""
    lines = [",".join(header)]
    for i in range(x.shape[1]):
        row = [f"{v:g}" for v in x[:, i]]
        for (r, c), text in (cells or {}).items():
            if r == i:
                row[c] = text
        lines.append(",".join(row))
    text = "\n".join(lines) + "\n"
    if gz:
        path = path.with_name(path.name + ".gz") if not path.name.endswith(".gz") else path
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def make_dataset(root: Path, n_patients: int = 12, n: int = 600, gaps: Optional[dict[str, list]] = None,
                 labels: bool = True) -> tuple[Path, Path]:
    """A folder of n_patients CSVs `p01.csv`... and a labels CSV; returns (signals dir, labels path)."""
    sig = root / "signals"
    sig.mkdir(parents=True, exist_ok=True)
    rows = ["pid,grade,score"]
    for i in range(n_patients):
        pid = f"p{i + 1:02d}"
        write_csv(sig / f"{pid}.csv", synth_signal(n, i, (gaps or {}).get(pid, [])))
        rows.append(f"{pid},{['low', 'high'][i % 2]},{7.0 + 0.05 * i:.2f}")
    lab = root / "labels.csv"
    lab.write_text("\n".join(rows) + "\n")
    return sig, lab


def base_config(sig: Path, lab: Optional[Path], out: Path, **data: Any) -> dict[str, Any]:
    """A small config dict for the synthetic dataset (every key can be overridden through **data)."""
    cfg: dict[str, Any] = {
        "source": str(sig), "format": "csv", "fs": FS, "prepared": str(out),
        "labels": str(lab) if lab else None, "id_column": "pid",
        "channels": [
            {"name": "A", "unit": "bpm", "range": [50, 210], "missing": 0, "valid": [50, 240], "required": True},
            {"name": "B", "unit": "nd", "range": [0, 100], "missing": None, "required": False},
        ],
        "label_columns": ([{"column": "grade", "categories": ["low", "high"]},
                           {"column": "score", "kind": "bins", "edges": [7.2, 7.4]}] if lab else []),
        "window": WINDOW, "stride_s": 4, "max_gap_s": 2, "workers": 1,
        "split": {"train": 0.5, "val": 0.25, "test": 0.25, "seed": 0},
    }
    cfg.update(data)
    return {"data": cfg}


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_cmd(main: Callable, argv: Sequence[str]) -> tuple[int, str, str]:
    """Run a command's main through run_main in-process -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_main(main, list(argv))
        except SystemExit as e:
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def assert_user_error(code: int, err: str, out_dir: Path, *needles: str) -> str:
    """Exit code 2, exactly one line `error: ...` on stderr, and nothing written in out_dir."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    left = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
    assert left == [], f"files left behind: {left}"
    return lines[0]
