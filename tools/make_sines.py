"""Write the Sines benchmark data set (TimeGAN, Yoon et al. 2019) as a CSV the data pipeline reads.

    python -m tools.make_sines --out data/sines [--n 10000] [--length 24] [--channels 5] [--seed 0]

Each window has `channels` independent channels sin(f * j + p), j = 0 .. length-1, with frequency f and
phase p drawn per window and channel from U[0, 0.1] (TimeGAN's `sine_data_generation`; Diffusion-TS uses the
same generator), then mapped to [0, 1] by (x + 1) / 2 as TimeGAN does; there is no further min-max step.

Layout: ONE file `<out>/sines.csv` (header s1,...,sC) holding the windows one after another. Read with
`data.window: <length>` and a stride of `<length>` samples (configs/bench/sines.yaml: fs 1, stride_s 24), the
pipeline cuts exactly the generated windows back out: offsets 0, L, 2L, ... start a window, and no window
straddles two of them. The whole set is one "patient", so every window is in the train split (the
benchmark protocol trains and scores on the full set; eval.reference: train). Written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dataloader.atomic import atomic_path
from dataloader.cli import make_parser, run_main
from dataloader.errors import UserError

FREQ_PHASE_HIGH = 0.1  # TimeGAN draws both f and p from U[0, 0.1]


def sine_windows(n: int, length: int = 24, channels: int = 5, seed: int = 0) -> np.ndarray:
    """(n, channels, length) float64 in [0, 1]: TimeGAN's Sines, seeded (numpy default_rng)."""
    if min(n, length, channels) < 1:
        raise UserError("make_sines", f"n, length and channels must be >= 1 (got {n}, {length}, {channels})")
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.0, FREQ_PHASE_HIGH, (n, channels, 1))
    p = rng.uniform(0.0, FREQ_PHASE_HIGH, (n, channels, 1))
    j = np.arange(length, dtype=np.float64)
    return (np.sin(f * j + p) + 1.0) / 2.0


def write_sines_csv(folder: str | Path, n: int = 10000, length: int = 24, channels: int = 5,
                    seed: int = 0) -> Path:
    """Write `<folder>/sines.csv` (n * length rows, columns s1..sC); returns its path."""
    x = sine_windows(n, length, channels, seed)
    out_dir = Path(folder)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError("--out", f"{str(out_dir)!r} is a file; give a folder (it will hold sines.csv)")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = x.transpose(0, 2, 1).reshape(-1, channels)    # window after window, one row per time step
    path = out_dir / "sines.csv"
    with atomic_path(path, "--out") as tmp:
        np.savetxt(tmp, rows, delimiter=",", fmt="%.8f", comments="",
                   header=",".join(f"s{c + 1}" for c in range(channels)))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m tools.make_sines", __doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write sines.csv into (data.source)")
    p.add_argument("--n", type=int, default=10000, help="number of windows")
    p.add_argument("--length", type=int, default=24, help="samples per window")
    p.add_argument("--channels", type=int, default=5, help="channels per window")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    a = p.parse_args(argv)
    path = write_sines_csv(a.out, a.n, a.length, a.channels, a.seed)
    print(f"wrote {path}: {a.n} windows x {a.channels} channels x {a.length} samples")
    return 0


if __name__ == "__main__":
    run_main(main)
