"""Attribute inference from synthetic data (evaluation/privacy/attribute.py) and the privacy CLI's bad input for
rmia and attribute.

Calibration on the patients of tests/test_privacy_attacks.py, whose label (the AR coefficient class, here also
a level offset) shows in the signal: a generator that copies its training windows with their true labels lets
an FCN trained on its output read the members' labels far above the base rate; one whose labels ignore the
windows (random labels) teaches nothing, and the members' labels are read at the base rate.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.privacy.attribute import group_summary, infer_attribute, patient_truth
from tests.test_privacy_attacks import P, _patients
from tests.test_privacy_dp import _fails
from tests.tiny_run import make_tiny_project


@pytest.fixture(scope="module")
def labelled() -> dict:
    x, pats = _patients(P, 0)
    label = pats % 2
    x = np.clip(x + 0.3 * (2 * label - 1)[:, None, None], -1, 1).astype(np.float32)
    member = np.zeros(P, bool)
    member[np.random.default_rng(3).permutation(P)[:P // 2]] = True
    return {"x": x, "pats": pats, "label": label, "member": member, "truth": np.arange(P) % 2}


def _infer(w: dict, y_synth: np.ndarray) -> dict:
    rows = w["member"][w["pats"]]                       # the generator's output: its training windows
    return infer_attribute(w["x"][rows], y_synth, w["x"], w["pats"], w["truth"], w["member"], 2, steps=20, seed=0)


def test_copying_generator_leaks_labels(labelled: dict) -> None:
    r = _infer(labelled, labelled["label"][labelled["member"][labelled["pats"]]])
    m = r["members"]
    assert m["n"] == P // 2 and m["accuracy_ci95"][0] > m["base_rate"] + 0.2, m
    assert m["balanced_accuracy_ci95"][0] > 0.8, m


def test_label_ignoring_generator_is_at_base_rate(labelled: dict) -> None:
    y = np.random.default_rng(5).integers(0, 2, int(labelled["member"][labelled["pats"]].sum()))
    r = _infer(labelled, y)
    for g in ("members", "non_members"):
        s = r[g]
        assert abs(s["accuracy"] - s["base_rate"]) <= 0.1 and abs(s["balanced_accuracy"] - 0.5) <= 0.1, (g, s)
        assert s["accuracy_ci95"][0] <= s["base_rate"] <= s["accuracy_ci95"][1], (g, s)


def test_group_summary_known_values() -> None:
    truth = np.array([0, 0, 0, 1])
    pred = np.array([0, 0, 1, 1])
    s = group_summary(pred, truth, seed=0)
    assert s["accuracy"] == 0.75 and s["base_rate"] == 0.75 and s["majority_class"] == 0
    assert s["balanced_accuracy"] == pytest.approx(0.5 * (2 / 3 + 1)) and s["chance_balanced_accuracy"] == 0.5
    codes = np.array([1, 1, 3, 3, 0])                   # patient 1's label is the "missing" class (3 of 3)
    assert patient_truth(codes, np.array([0, 0, 1, 1, 2]), 3, 3).tolist() == [1, -1, 0]


def test_privacy_cli_bad_input_rmia_attribute(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from evaluation.privacy.__main__ import main

    project = make_tiny_project(tmp_path / "p", n_patients=12)
    cfgp = tmp_path / "audit.yaml"
    cfgp.write_text(project.read_text() + f"privacy:\n  out_dir: {tmp_path}/audit\n")
    base = ["--config", cfgp]
    _fails(capsys, main, [*base, "--attack", "rmia", "--shadows", "4", "--references", "5"], tmp_path,
           "--references")
    _fails(capsys, main, [*base, "--attack", "rmia", "--references", "0"], tmp_path, "--references")
    _fails(capsys, main, [*base, "--attack", "rmia", "--shadows", "1"], tmp_path, "--shadows")
    _fails(capsys, main, [*base, "--attack", "attribute", "privacy.attribute_labels=[nope]"], tmp_path, "nope")
    _fails(capsys, main, [*base, "--attack", "attribute", f"privacy.synthetic_file={tmp_path}/none.h5"], tmp_path,
           "none.h5")
    _fails(capsys, main, [*base, "--attack", "rmia", "privacy.rmia_offline_a=0"], tmp_path, "rmia_offline_a")
