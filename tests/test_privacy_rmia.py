"""RMIA (evaluation/privacy/rmia.py): the score on a hand-made case, and calibration with the memorising /
held-out "generators" of the other attacks' tests (tests/test_privacy_attacks.py): with 1, 2 and 4 reference
models a generator that returns its training windows is caught (AUC >= 0.95), one that returns held-out
patients' windows is not (AUC within 0.5 +/- 0.1), and the same inputs give the same scores.
"""
from __future__ import annotations

import numpy as np
import pytest

from evaluation.privacy.members import balanced_keep
from evaluation.privacy.metrics import attack_metrics, roc_auc
from evaluation.privacy.oracle import MemorisingDenoiser
from evaluation.privacy.rmia import pairwise_scores, reference_prob, rmia_statistic, run_rmia
from tests.test_privacy_attacks import LEVELS, P, _losses, world  # noqa: F401  (world is a fixture)


def test_score_on_a_hand_made_case() -> None:
    # 5 patients; z = patients 2, 3, 4. One OUT reference per patient except patient 1 (IN only).
    target = np.array([0.9, 0.8, 0.5, 0.4, 0.6])
    refs = np.array([[0.5, 0.9, 0.5, 0.8, 0.6]])
    keep = np.array([[False, True, False, False, False]])
    a = 0.5
    prior, fills = reference_prob(refs, keep, a, online=False)
    # offline: ((1 + a) p_out + (1 - a)) / 2; patient 1 has no OUT reference: its IN one stands in, p_out = 0.9
    want = np.array([0.625, 0.925, 0.625, 0.85, 0.7])
    assert prior == pytest.approx(want) and fills == 1
    ratio = target / want                        # [1.44, 0.865, 0.8, 0.471, 0.857]
    z = np.array([False, False, True, True, True])
    s, _ = rmia_statistic(target, refs, keep, z, a, online=False, gamma=1.0)
    # out of the 3 z for every x: x=0 and x=1 beat all 3; x=2 (itself a z, never beaten by itself) beats 0.471
    # only: 1/3; x=3 beats none; x=4 beats 0.8 and 0.471: 2/3 (not 2/2: the most extreme non-member stays
    # below a member that beats every z)
    assert s == pytest.approx([1.0, 1.0, 1 / 3, 0.0, 2 / 3])
    # gamma 1.75: ratio(x) / ratio(z) must reach 1.75: 1.44 / [0.8, 0.471, 0.857] = [1.80, 3.06, 1.68] -> 2/3;
    # 0.865 / 0.471 = 1.84 -> 1/3; 0.8 / 0.471 = 1.70 -> 0; 0.857 / 0.471 = 1.82 -> 1/3
    assert pairwise_scores(np.log(ratio), z, gamma=1.75) == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0, 1 / 3])
    online, fills = reference_prob(refs, keep, a, online=True)
    # online: (p_in + p_out) / 2, the missing side by the linear model: p_in = a p_out + 1 - a
    p_out = np.array([0.5, 0.9, 0.5, 0.8, 0.6])
    p_in = np.array([0.75, 0.9, 0.75, 0.9, 0.8])
    assert online == pytest.approx((p_in + p_out) / 2) and fills == 5


@pytest.fixture(scope="module")
def references(world: dict) -> tuple[np.ndarray, np.ndarray]:  # noqa: F811
    keep = balanced_keep(4, P, seed=0)
    x, pats = world["x"], world["pats"]
    return keep, np.stack([_losses(MemorisingDenoiser(x[keep[k][pats]]), world) for k in range(4)])


@pytest.mark.parametrize("k", [1, 2, 4])
def test_rmia_calibration(world: dict, references: tuple, k: int) -> None:  # noqa: F811
    keep, refs = references
    z = ~world["member"]
    for target, ok in ((world["copier"], lambda a: a >= 0.95), (world["heldout"], lambda a: abs(a - 0.5) <= 0.1)):
        tl = _losses(target, world)
        res = run_rmia(tl, refs[:k], keep[:k], z, LEVELS)
        for mode in ("online", "offline"):
            auc = roc_auc(res[mode], world["member"])
            assert ok(auc), (k, mode, auc)
            if target is world["copier"]:     # members above every non-member are found at zero false positives
                assert attack_metrics(res[mode], world["member"])["tpr_at_fpr"][1]["tpr"] >= 0.5, (k, mode)
            assert res["selection"][mode]["feature"] in [f"t={t}" for t in LEVELS] + ["mean over levels"]
        again = run_rmia(tl, refs[:k], keep[:k], z, LEVELS)
        assert np.array_equal(again["online"], res["online"]) and np.array_equal(again["offline"], res["offline"])
    if k == 1:   # half the patients trained the one reference: their OUT side is filled
        assert res["selection"]["offline"]["fills"] == int(keep[0].sum())
