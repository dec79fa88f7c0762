"""The config machinery as the data section uses it: duplicate keys, includes, overrides, unknown keys."""
from __future__ import annotations

from pathlib import Path

import pytest

from dataloader.config import load_config
from dataloader.errors import UserError

BASE = """\
data:
  source: in/signals
  prepared: out/p.h5
  fs: 4
  window: 64
  channels:
    - name: A
      range: [0, 10]
    - name: B
      required: false
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_duplicate_key_names_its_line(tmp_path):
    p = _write(tmp_path, "dup.yaml", BASE + "  window: 128\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert e.value.where == f"{p}:11"
    assert "duplicate key 'window'" in e.value.what and "line 5" in e.value.what


def test_include_merges_and_including_file_wins(tmp_path):
    _write(tmp_path, "base.yaml", BASE + "  stride_s: 30\n")
    p = _write(tmp_path, "exp.yaml", "include: base.yaml\ndata:\n  window: 256\n  max_gap_s: 3\n")
    d = load_config(p).data
    assert d.window == 256 and d.max_gap_s == 3      # from the including file
    assert d.stride_s == 30 and d.fs == 4            # from the included file
    assert [c.name for c in d.channels] == ["A", "B"]


def test_override_into_list_index(tmp_path):
    p = _write(tmp_path, "c.yaml", BASE)
    d = load_config(p, ["data.channels.1.range=[-1, 1]", "data.channels.0.unit=mV", "data.stride_s=15"]).data
    assert d.channels[1].range == (-1.0, 1.0) and d.channels[0].unit == "mV" and d.stride_s == 15
    with pytest.raises(UserError, match="not an index"):
        load_config(p, ["data.channels.2.range=[0, 1]"])


def test_unknown_key_lists_valid_keys(tmp_path):
    p = _write(tmp_path, "c.yaml", BASE.replace("    - name: B\n", "    - name: B\n      colour: red\n"))
    with pytest.raises(UserError) as e:
        load_config(p)
    assert "unknown key 'colour'" in e.value.what
    assert "valid keys: missing, name, range, required, source, unit, valid" in e.value.what
    assert e.value.where.endswith("data.channels.1.colour") and ":10" in e.value.where


def test_wrong_type_and_range(tmp_path):
    p = _write(tmp_path, "c.yaml", BASE)
    with pytest.raises(UserError, match="expected a number"):
        load_config(p, ["data.stride_s=fast"])
    with pytest.raises(UserError, match="must be > 0"):
        load_config(p, ["data.stride_s=0"])
    with pytest.raises(UserError, match="lo must be < hi"):
        load_config(p, ["data.channels.0.range=[5, 1]"])
    with pytest.raises(UserError, match="exactly one of window"):
        load_config(p, ["data.window_s=10"])


def test_shipped_data_configs_load():
    root = Path(__file__).resolve().parents[1]
    for name in ("ctg/diffusion-identity.yaml", "ctg/sampling-diffusion.yaml", "ecg/ludb-diffusion.yaml",
                 "ecg/mitdb-diffusion.yaml", "ecg/mitdb-heart-rate.yaml"):
        d = load_config(root / "configs" / name).data
        assert d.prepared.startswith("data/")


def test_exponent_floats_without_a_dot_are_numbers() -> None:
    # YAML 1.1 (PyYAML's default) reads `1e-3` as a string; a learning rate typed that way must still be a number
    from dataloader.config.yaml_io import apply_override, parse_yaml

    assert parse_yaml("a: 1e-3\nb: -2E4\nc: 3\nd: 1.5e-2\ne: 1e\n", "t.yaml") == {"a": 1e-3, "b": -2e4, "c": 3,
                                                                               "d": 1.5e-2, "e": "1e"}
    cfg: dict = {"train": {"lr": 0.1}}
    apply_override(cfg, "train.lr=1e-3")
    assert cfg["train"]["lr"] == 1e-3 and isinstance(cfg["train"]["lr"], float)
