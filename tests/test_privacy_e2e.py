"""The audit command end to end on tiny models: LiRA with K = 4 shadows, then loss, DCR, DOMIAS, RMIA (2 of the
4 shadows as references) and attribute inference on the same target (slow: five short trainings)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataloader.cli import run_main
from tests.tiny_run import make_tiny_project

PRIVACY = """\
privacy:
  out_dir: {root}/audit
  shadows: 4
  noise_levels: [10, 30]
  draws: 1
  windows_per_patient: 4
  synthetic: 24
  sampler: ddim
  steps: 4
  dcr_max_shift_s: 4
  fcn_label: grp
  fcn_steps: 5
  domias_dims: 4
  attribute_steps: 5
  threads: 1
"""


def _run(args: list[str]) -> None:
    from evaluation.privacy.__main__ import main

    with pytest.raises(SystemExit) as e:
        run_main(main, [str(a) for a in args])
    assert e.value.code == 0


@pytest.mark.slow
def test_lira_end_to_end_k4(tmp_path: Path) -> None:
    cfg = make_tiny_project(tmp_path, n_patients=20)
    cfg.write_text(cfg.read_text() + PRIVACY.format(root=tmp_path))
    _run(["--config", cfg, "--attack", "lira", "--shadows", "4"])
    audit = tmp_path / "audit"
    rep = json.loads((audit / "privacy_lira.json").read_text())
    assert [a["name"] for a in rep["attacks"]] == ["lira-online", "lira-offline"]
    members = json.loads((audit / "members.json").read_text())
    P = len(members["population"])
    assert rep["population"]["patients"] == P == 12 and rep["attacks"][0]["n_members"] == 6
    assert len(members["keep"]) == 4
    for p in members["population"]:                       # each patient IN for exactly half the shadows
        assert sum(p in row for row in members["keep"]) == 2
    stamps = {}
    for k, row in enumerate(members["keep"]):
        d = audit / "shadows" / f"K04-{k:02d}"
        assert (d / "model.safetensors").is_file()
        from dataloader.config import config_from_text

        assert sorted(config_from_text((d / "config.yaml").read_text()).train.patients) == sorted(row)
        stamps[d] = (d / "model.safetensors").stat().st_mtime_ns
    assert (audit / "privacy_lira_roc.png").stat().st_size > 1000
    for attack in ("loss", "dcr", "domias"):                # same target, same members, nothing retrained
        _run(["--config", cfg, "--attack", attack])
        r = json.loads((audit / f"privacy_{attack}.json").read_text())
        assert r["target"]["sha256"] == rep["target"]["sha256"] and r["attacks"][0]["n_non_members"] == 6
    _run(["--config", cfg, "--attack", "lira", "--shadows", "4"])
    assert all((d / "model.safetensors").stat().st_mtime_ns == t for d, t in stamps.items())
    _run(["--config", cfg, "--attack", "rmia", "--shadows", "4", "--references", "2"])   # reuses shadows 0, 1
    assert all((d / "model.safetensors").stat().st_mtime_ns == t for d, t in stamps.items())
    r = json.loads((audit / "privacy_rmia.json").read_text())
    assert [a["name"] for a in r["attacks"]] == ["rmia-online", "rmia-offline"]
    assert r["attacks"][0]["references"] == 2 and r["attacks"][0]["n_members"] == 6
    assert r["target"]["sha256"] == rep["target"]["sha256"]
    _run(["--config", cfg, "--attack", "attribute"])
    at = json.loads((audit / "privacy_attribute.json").read_text())
    assert [e["label"] for e in at["labels"]] == ["grp", "score"]
    assert at["labels"][0]["members"]["n"] == 6 and at["synthetic"]["windows"] == 24
    assert "| grp | members | 6 |" in (audit / "privacy_attribute.md").read_text()
