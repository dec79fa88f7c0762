"""Names that select code (sampler, metric, first stage, model type) are checked once, when the config loads,
against the registries themselves (issue 13, point 3): a bad name is refused at its key with the registry's
list, and a name added to a registry is accepted with no second list to update."""
from __future__ import annotations

from pathlib import Path

import pytest

from dataloader.config import load_config
from dataloader.config.typed import registry_names
from dataloader.errors import UserError

BASE = """\
data:
  source: in/signals
  prepared: out/p.h5
  fs: 4
  window: 64
  channels:
    - name: A
"""
TRAIN = "train:\n  out_dir: runs/x\n  max_steps: 10\n"
PRIVACY = "privacy:\n  out_dir: runs/p\n"

CASES = [  # (extra YAML, override with the bad name, what the error calls it, registry)
    ("", "sample.sampler=euler_magic", "sampler", "diffusion.samplers:SAMPLERS"),
    (TRAIN, "train.plot_sampler=euler_magic", "sampler", "diffusion.samplers:SAMPLERS"),
    (PRIVACY, "privacy.sampler=euler_magic", "sampler", "diffusion.samplers:SAMPLERS"),
    ("", "eval.metrics=[fid,fidd]", "metric", "evaluation.metrics:METRICS"),
    ("", "model.first_stage.type=vae2", "first stage", "first_stage:FIRST_STAGES"),
    ("", "model.type=gan9", "model type", "training:MODEL_KINDS"),
]


@pytest.mark.parametrize("extra, override, what, registry", CASES)
def test_bad_name_refused_at_load_with_the_registry_list(tmp_path: Path, extra: str, override: str, what: str,
                                                         registry: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(BASE + extra)
    with pytest.raises(UserError) as e:
        load_config(p, [override])
    key, value = override.split("=")
    bad = value.strip("[]").split(",")[-1]
    assert e.value.where.endswith(": " + key), e.value.where
    assert e.value.what == f"unknown {what} {bad!r}; valid: {', '.join(registry_names(registry))}"


@pytest.mark.parametrize("extra, override, what, registry", CASES)
def test_every_registry_name_is_accepted(tmp_path: Path, extra: str, override: str, what: str, registry: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(BASE + extra)
    names = registry_names(registry)
    assert len(names) >= 2
    for name in names:
        value = f"[{name}]" if "metrics" in override else name
        more = [] if name == "identity" or "first_stage" not in override else \
            ["model.first_stage.factor=2", "model.first_stage.out_dir=runs/fs"]  # what a non-identity stage needs
        cfg = load_config(p, [f"{override.split('=')[0]}={value}", *more])
        section, *rest = override.split("=")[0].split(".")
        got = getattr(cfg, section)
        for k in rest:
            got = getattr(got, k)
        assert got == ([name] if "metrics" in override else name)
