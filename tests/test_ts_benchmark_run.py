"""`python -m bench.ts_benchmark run`: NFE is counted per sampler, roughness is the mean step change, bad
arguments end in one line before anything runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.ts_benchmark import main
from bench.ts_benchmark_run import roughness, steps_for_nfe
from dataloader.cli import run_main


@pytest.mark.parametrize("sampler, nfe, expect", [("ddim", 20, (20, 20)), ("dpm_solver", 5, (5, 5)),
                                                   ("k_heun", 20, (10, 19)), ("k_heun", 5, (3, 5))])
def test_steps_for_nfe_counts_network_evaluations(sampler: str, nfe: int, expect: tuple[int, int]) -> None:
    # Heun takes two evaluations per step except the last (to sigma = 0): 2 * steps - 1
    assert steps_for_nfe(sampler, nfe) == expect


def test_roughness_is_the_mean_absolute_step_per_channel() -> None:
    t = np.arange(24, dtype=np.float32)
    x = np.stack([t / 23, np.where(t % 2 == 0, 1.0, 0.0)], axis=1)[None].repeat(3, 0)  # (3, 24, 2)
    assert roughness(x) == pytest.approx([1 / 23, 1.0], abs=1e-6)


def test_bad_run_arguments_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        run_main(main, ["run", "--config", "configs/bench/sines.yaml", "--out", str(tmp_path / "o"),
                        "--minutes", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
