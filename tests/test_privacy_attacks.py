"""Calibration of every membership-inference attack (docs/evaluation.md section 2) and the metric/report layer.

A "generator" that returns its training windows (the exact minimiser of the diffusion loss on them,
evaluation/privacy/oracle.py) must be caught (AUC >= 0.95); one that returns windows of held-out patients must
not (AUC within 0.5 +/- 0.1). 200 patients (100 members): the AUC of a no-signal attack then has a standard
deviation of about 0.04, so the +/- 0.1 band is 2.4 sigma, and the seeds are fixed.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evaluation.privacy.dcr import dcr_scores, shift_tolerant_dcr
from evaluation.privacy.domias import domias_scores, fcn_features_fn, fit_kde
from evaluation.privacy.lira import run_lira
from evaluation.privacy.loss_scores import model_patient_losses
from evaluation.privacy.members import balanced_keep
from evaluation.privacy.metrics import attack_metrics, clopper_pearson, roc_auc
from evaluation.privacy.oracle import MemorisingDenoiser
from evaluation.privacy.report import ReportError, validate_report, write_report

P, W, C, L = 200, 6, 2, 32       # patients, windows per patient, channels, window length
LEVELS = [50, 200, 400]


class ArrayWindows:
    """The one method the white-box scores need from a dataset: get_batch(rows) -> (x, y, ids)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = torch.as_tensor(x)

    def get_batch(self, rows: np.ndarray):  # noqa: ANN201
        return self.x[torch.as_tensor(rows)], torch.zeros((len(rows), 0), dtype=torch.long), []


def _patients(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n patients x W overlapping windows of an AR(1) recording with a patient-specific level and coefficient;
    returns windows (n * W, C, L) in [-1, 1] and their patient number (n * W,)."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n):
        phi = 0.8 + 0.15 * (p % 2)
        e = rng.standard_normal((C, L * 4)) * 0.3
        x = np.zeros_like(e)
        for t in range(1, x.shape[1]):
            x[:, t] = phi * x[:, t - 1] + e[:, t]
        x = np.tanh(x * 0.5 + rng.uniform(-0.3, 0.3, (C, 1)))
        out += [x[:, s:s + L] for s in range(0, W * L // 2, L // 2)]
    return np.asarray(out, np.float32), np.repeat(np.arange(n), W)


@pytest.fixture(scope="module")
def world() -> dict:
    x, pats = _patients(P, 0)
    outside, _ = _patients(100, 1)           # patients outside the audit (held-out generator)
    ref, _ = _patients(100, 2)               # the DOMIAS attacker's reference patients
    member = np.zeros(P, bool)
    member[np.random.default_rng(3).permutation(P)[:P // 2]] = True
    return {"x": x, "pats": pats, "member": member, "outside": outside, "ref": ref,
            "copier": MemorisingDenoiser(x[member[pats]]), "heldout": MemorisingDenoiser(outside)}


def _losses(model: MemorisingDenoiser, w: dict) -> np.ndarray:
    rows = np.arange(len(w["x"]))
    return model_patient_losses(model, ArrayWindows(w["x"]), rows, w["pats"], P, LEVELS, 1, seed=0)


def test_loss_attack_calibration(world: dict) -> None:
    caught = roc_auc(-_losses(world["copier"], world).mean(1), world["member"])
    blind = roc_auc(-_losses(world["heldout"], world).mean(1), world["member"])
    assert caught >= 0.95, caught
    assert abs(blind - 0.5) <= 0.1, blind


def test_lira_calibration(world: dict) -> None:
    K = 4
    keep = balanced_keep(K, P, seed=0)
    x, pats = world["x"], world["pats"]
    shadows = np.stack([_losses(MemorisingDenoiser(x[keep[k][pats]]), world) for k in range(K)])
    for target, ok in ((world["copier"], lambda a: a >= 0.95), (world["heldout"], lambda a: abs(a - 0.5) <= 0.1)):
        res = run_lira(_losses(target, world), shadows, keep, LEVELS, "global")
        for mode in ("online", "offline"):
            auc = roc_auc(res[mode], world["member"])
            assert ok(auc), (mode, auc)
        assert res["selection"]["online"]["feature"] in [f"t={t}" for t in LEVELS] + ["mean over levels"]


def test_dcr_calibration(world: dict) -> None:
    for gen, ok in ((world["copier"], lambda a: a >= 0.95), (world["heldout"], lambda a: abs(a - 0.5) <= 0.1)):
        sc, _ = dcr_scores(world["x"], world["pats"], P, gen.sample_copies(600, seed=1), fs=1.0, max_shift_s=4)
        assert ok(roc_auc(sc, world["member"]))


def test_dcr_tolerates_time_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 2, 64)).astype(np.float32)
    shifted = np.roll(a, 5, axis=-1)
    other = rng.standard_normal((1, 2, 64)).astype(np.float32)
    assert shift_tolerant_dcr(a, shifted, 0)[0] > 0.5          # without tolerance the copy looks far
    assert shift_tolerant_dcr(a, shifted, 8)[0] < 1e-10        # with it, it is found
    assert shift_tolerant_dcr(a, other, 8)[0] > 0.5


@pytest.mark.slow  # trains a small FCN: ~15-45 s on a shared 2-core machine
def test_domias_calibration(world: dict) -> None:
    from evaluation.fcn.model import train_fcn

    ref = world["ref"]
    y = np.repeat(np.arange(100) % 2, W)     # the AR coefficient class, learnable from the windows
    fcn = train_fcn(ref[::2], y[::2], ref[1::2], y[1::2], 2, max_steps=10, seed=0)
    feats = fcn_features_fn(fcn, lambda s: s)
    pop, r = feats(world["x"]), feats(ref)
    for gen, ok in ((world["copier"], lambda a: a >= 0.95), (world["heldout"], lambda a: abs(a - 0.5) <= 0.1)):
        sc, _ = domias_scores(pop, world["pats"], P, feats(gen.sample_copies(600, seed=1)), r, dims=16)
        auc = roc_auc(sc, world["member"])
        assert ok(auc), auc
    assert fit_kde(np.repeat(pop[:50, :2], 3, axis=0)).factor < fit_kde(pop[:, :2]).factor  # copies: narrow


def test_keep_matrix_is_balanced() -> None:
    for K in (2, 4, 5, 8):
        keep = balanced_keep(K, 31, seed=1)
        per_patient = keep.sum(0)
        assert set(per_patient) <= {K // 2, (K + 1) // 2}
        assert abs(per_patient.mean() - K / 2) < 0.1
        assert np.all(np.abs(keep.sum(1) - 31 / 2) < 31 / 2)    # every shadow trains on someone, not everyone


def test_metrics_known_values() -> None:
    m = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    s = np.array([0.9, 0.8, 0.1, 0.7, 0.3, 0.2, 0.05, 0.0])
    r = attack_metrics(s, m)
    assert r["auc"] == pytest.approx(12 / 15)                  # 12 of 15 member/non-member pairs ordered right
    assert r["balanced_accuracy"] == pytest.approx(0.5 * (2 / 3 + 1.0))
    t1 = r["tpr_at_fpr"][0]
    assert t1["tpr"] == pytest.approx(2 / 3) and t1["false_positives"] == 0
    lo, hi = clopper_pearson(2, 3)
    assert t1["tpr_ci95"] == [lo, hi]
    assert lo == pytest.approx(0.0943, abs=1e-3) and hi == pytest.approx(0.9916, abs=1e-3)
    assert roc_auc(np.zeros(8), m) == 0.5                      # ties are no information


def test_report_schema_demands_everything(tmp_path) -> None:  # noqa: ANN001
    m = np.array([1, 0, 1, 0], bool)
    entry = {"name": "x", "threat_model": "white-box loss", "attacker_knowledge": "weights",
             **attack_metrics(np.array([0.9, 0.1, 0.8, 0.2]), m)}
    rep = {"format": "physiodiff-privacy-report-1", "unit": "patient",
           "population": {"patients": 4, "members": 2, "non_members": 2}, "members_file": "m.json",
           "target": {"model_file": "t", "dp": None}, "attacks": [entry]}
    validate_report(rep)
    for drop in ("tpr_at_fpr", "threat_model", "n_members", "auc"):
        bad = json.loads(json.dumps(rep))
        del bad["attacks"][0][drop]
        with pytest.raises(ReportError, match=drop):
            validate_report(bad)
    bad = json.loads(json.dumps(rep))
    bad["attacks"][0]["tpr_at_fpr"] = bad["attacks"][0]["tpr_at_fpr"][:1]   # 0.1% FPR missing
    with pytest.raises(ReportError):
        validate_report(bad)
    path = write_report(tmp_path, "privacy_x", rep)
    assert json.loads(path.read_text())["attacks"][0]["auc"] == 1.0
    assert (tmp_path / "privacy_x_roc.png").stat().st_size > 1000 and (tmp_path / "privacy_x.md").is_file()
