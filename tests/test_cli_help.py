"""--help of every command: defaults are shown once, and never the meaningless "(default: None)" / "False"."""
from __future__ import annotations

import importlib
import re

import pytest

from dataloader.cli import make_parser

COMMANDS = ["train", "generate", "eval", "tools.prepare_data", "tools.make_sines", "tools.export", "tools.inspect",
            "tools.config_reference", "bench.model_flops", "bench.eval_speed", "bench.dataset_throughput",
            "bench.latent_speed", "bench.recipe_ablation", "bench.run_all", "evaluation.fcn.train",
            "evaluation.privacy.__main__", "bench.first_stage_recon", "bench.nfe_table", "bench.privacy_audit",
            "bench.train_sample_speed", "bench.ts_benchmark", "serve.__main__", "bench.serve_load",
            "bench.speed_side_by_side", "bench.speed_scaling", "bench.seams", "bench.gpu_ship", "tools.ship",
            "bench.shipped_speed"]


def _check(text: str) -> None:
    flat = " ".join(text.split())  # help lines wrap inside "(default: ...)"
    assert "(default: None)" not in flat, text
    assert "(default: False)" not in flat, text
    assert "(default: [])" not in flat, text
    for line in re.split(r"\s(?=-{1,2}\w)", flat):  # one option at a time
        assert line.count("(default:") <= 1, line


@pytest.mark.parametrize("module", COMMANDS)
def test_help_has_no_default_noise(module: str, capsys: pytest.CaptureFixture) -> None:
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    _check(capsys.readouterr().out)


def test_formatter_rules() -> None:
    p = make_parser("x", "demo")
    p.add_argument("--a", default=None, help="a")
    p.add_argument("--b", action="store_true", help="b")
    p.add_argument("--c", default="eval.metrics", help="metrics (default: eval.metrics)")
    p.add_argument("--d", type=int, default=4, help="d")
    p.add_argument("--e", nargs="*", default=[], help="e")
    p.add_argument("--f", default=0, type=int, help="f")
    text = " ".join(p.format_help().split())
    _check(text)
    assert "d (default: 4)" in text and "f (default: 0)" in text
    assert text.count("(default: eval.metrics)") == 1
