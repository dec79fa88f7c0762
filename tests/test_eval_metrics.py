"""Tests of the pure metric layer in evaluation/ (fid, gru, discriminative, predictive, distance, physio_*, fcn,
fcn.weights, tstr). Small, CPU-only, one thread: the whole file runs in well under a minute."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from dataloader.errors import UserError
from evaluation.metrics import gru
from evaluation.metrics.discriminative import discriminative_score
from evaluation.metrics.distance import diversity, dtw_nn, lb_keogh, mmd_rbf, nn_rmse_prd
from evaluation.fcn.model import FEATURE_DIM, features, features_and_proba, train_autoencoder, train_fcn
from evaluation.fcn.weights import extractor_meta, load_extractor, save_extractor
from evaluation.fcn.fid import fid_from_features, frechet_distance, gaussian_stats, inception_score
from evaluation.metrics.physio_ctg import CTG_RANGES, FEATURES, compare_features, ctg_features, ctg_window_features
from evaluation.metrics.predictive import predictive_score
from evaluation.metrics.tstr import label_accuracy, macro_f1, train_test

LUDB = Path("/work/shared/data/ludb")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ------------------------------------------------------------------------------------------------ data
def ar1(n: int, c: int, length: int, seed: int, phi: float = 0.9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, c, length))
    x = np.zeros_like(e)
    for t in range(1, length):
        x[:, :, t] = phi * x[:, :, t - 1] + e[:, :, t]
    return x


def sines(n: int, c: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f, ph = rng.uniform(0.01, 0.05, (n, c, 1)), rng.uniform(0, 2 * np.pi, (n, c, 1))
    return np.sin(2 * np.pi * f * np.arange(length) + ph)


def lagged_pair(n: int, length: int, seed: int) -> np.ndarray:
    """Channel 1 is channel 0 one step earlier, plus a little noise: channel 0 predicts channel 1's next step."""
    rng = np.random.default_rng(seed)
    a = sines(n, 1, length + 1, seed)[:, 0]
    return np.stack([a[:, 1:], a[:, :-1] + 0.05 * rng.normal(size=(n, length))], axis=1)


# ------------------------------------------------------------------------------------------------- FID / IS
def test_frechet_self_is_zero_and_matches_closed_form():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    mu, s = gaussian_stats(f)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8)
    # diagonal Gaussians: ||mu1 - mu2||^2 + sum (sqrt(s1) - sqrt(s2))^2
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.5, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, rel=1e-10)


def test_frechet_matches_scipy_sqrtm_on_full_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    s1, s2 = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)
    # a rank-deficient covariance (fewer samples than dimensions) stays finite and non-negative
    few = rng.normal(size=(5, 8))
    assert np.isfinite(fid_from_features(few, rng.normal(size=(50, 8))))


def test_fid_input_errors():
    with pytest.raises(UserError, match="at least 2"):
        gaussian_stats(np.zeros((1, 4)))
    with pytest.raises(UserError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_inception_score_bounds():
    k = 5
    mean, std = inception_score(np.full((100, k), 1.0 / k))
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)
    mean, std = inception_score(np.tile(np.eye(k), (20, 1)), splits=10)      # every split holds each class twice
    assert mean == pytest.approx(k) and std == pytest.approx(0.0, abs=1e-9)
    mean, _ = inception_score(np.tile(np.eye(k)[:1], (100, 1)))               # confident but one class: 1
    assert mean == pytest.approx(1.0)
    with pytest.raises(UserError, match="splits=10"):
        inception_score(np.full((5, 2), 0.5))


# --------------------------------------------------------------------------------------------- GRU (numpy)
def test_numpy_gru_matches_torch_forward_and_gradients():
    runs, b, t_len, d, h = 3, 5, 7, 2, 4
    rng = np.random.default_rng(0)
    p = gru.init_params(runs, d, h, rng, np.float64)
    net = gru.BatchedGRU(p)
    x = rng.normal(size=(t_len, runs, b, d))
    hs = net.forward(np.ascontiguousarray(x.transpose(0, 1, 3, 2)))
    dh_ext, dh_last = rng.normal(size=(t_len, runs, b, h)), rng.normal(size=(runs, b, h))
    g = net.backward(dh_ext=np.ascontiguousarray(dh_ext.transpose(0, 1, 3, 2)), dh_last=dh_last.transpose(0, 2, 1))
    for r in range(runs):
        m = torch.nn.GRU(d, h).double()
        with torch.no_grad():
            for name, key in (("weight_ih_l0", "w_ih"), ("weight_hh_l0", "w_hh"), ("bias_ih_l0", "b_ih"),
                              ("bias_hh_l0", "b_hh")):
                getattr(m, name).copy_(torch.tensor(p[key][r]))
        out, _ = m(torch.tensor(x[:, r]))
        np.testing.assert_allclose(hs[1:, r].transpose(0, 2, 1), out.detach().numpy(), atol=1e-12)
        ((out * torch.tensor(dh_ext[:, r])).sum() + (out[-1] * torch.tensor(dh_last[r])).sum()).backward()
        for name, key in (("weight_ih_l0", "w_ih"), ("weight_hh_l0", "w_hh"), ("bias_ih_l0", "b_ih"),
                          ("bias_hh_l0", "b_hh")):
            np.testing.assert_allclose(g[key][r], getattr(m, name).grad.numpy(), atol=1e-12)


# -------------------------------------------------------------------------------- discriminative / predictive
def test_discriminative_near_zero_for_same_process():
    r = discriminative_score(ar1(200, 2, 24, 1), ar1(200, 2, 24, 2), iterations=600, runs=3, seed=0)
    assert r["mean"] < 0.15, r
    assert r["hidden"] == 4 and r["block"] == 1 and r["n_test"] == 40


def test_discriminative_near_half_for_different_data():
    real = sines(200, 2, 24, 1)
    synth = np.random.default_rng(3).normal(size=(200, 2, 24))
    r = discriminative_score(real, synth, iterations=600, runs=3, seed=0)
    assert r["mean"] > 0.4, r


def test_discriminative_block_means_deterministic_and_equal_sizes():
    real, synth = ar1(30, 3, 600, 1), ar1(50, 3, 600, 2)
    a = discriminative_score(real, synth, iterations=3, runs=2, seed=5)
    b = discriminative_score(real, synth, iterations=3, runs=2, seed=5)
    assert a == b
    assert a["block"] == 3 and a["steps"] == 200 and a["n_per_set"] == 30
    with pytest.raises(UserError, match="at least 10"):
        discriminative_score(real[:5], synth, iterations=1)


def test_predictive_score_prefers_matching_synthetic_data():
    real, synth = lagged_pair(300, 40, 1), lagged_pair(300, 40, 2)
    noise = np.random.default_rng(5).uniform(-1, 1, size=(300, 2, 40))
    good = predictive_score(real, synth, iterations=600, runs=2)
    bad = predictive_score(real, noise, iterations=600, runs=2)
    assert good["mean"] < 0.7 * bad["mean"], (good, bad)
    assert good["target_channel"] == 1 and good["steps"] == 39
    one = predictive_score(real[:, :1], synth[:, :1], iterations=5, runs=1)     # C == 1: own next step
    assert np.isfinite(one["mean"]) and one["target_channel"] == 0


# ----------------------------------------------------------------------------------------------- distances
def test_dtw_nn_self_zero_exact_and_lower_bound():
    from dtaidistance import dtw_ndim

    q = np.cumsum(np.random.default_rng(1).normal(size=(12, 2, 50)), axis=2)
    r = np.cumsum(np.random.default_rng(2).normal(size=(40, 2, 50)), axis=2)
    assert dtw_nn(r, r)["mean"] == 0.0
    res = dtw_nn(q, r, window=0.1)
    band = res["band"]
    brute = np.array([[dtw_ndim.distance_fast(np.ascontiguousarray(a.T), np.ascontiguousarray(b.T), window=band + 1)
                       for b in r] for a in q])
    np.testing.assert_allclose(res["distances"], brute.min(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(res["index"], brute.argmin(axis=1))
    assert (lb_keogh(q, r, band) <= brute + 1e-9).all()
    loo = dtw_nn(r, r, exclude_self=True)
    assert (loo["index"] != np.arange(len(r))).all() and loo["mean"] > 0
    par = dtw_nn(q, r, window=0.1, workers=2)
    np.testing.assert_array_equal(par["distances"], res["distances"])
    assert par["dtw_computed"] == res["dtw_computed"]


def test_dtw_nn_block_means_on_long_windows():
    x = np.cumsum(np.random.default_rng(3).normal(size=(6, 2, 1000)), axis=2)
    res = dtw_nn(x[:3], x[3:], max_len=256)
    assert res["block"] == 4 and res["length"] == 250 and res["band"] == 25


def test_nn_rmse_prd_and_mmd():
    rng = np.random.default_rng(0)
    real = 140 + rng.normal(size=(60, 2, 32))
    assert nn_rmse_prd(real, real)["rmse"] == pytest.approx(0.0, abs=1e-9)
    one = real[:1]
    out = nn_rmse_prd(1.1 * one, one)                     # y = 1.1 x: PRD = 100 * 0.1 = 10, RMSE = 0.1 rms(x)
    assert out["prd"] == pytest.approx(10.0)
    assert out["rmse"] == pytest.approx(0.1 * np.sqrt((one ** 2).mean()))
    same = mmd_rbf(real, real)["mmd2"]
    other = 140 + rng.normal(size=(60, 2, 32))
    shifted = mmd_rbf(real, other + 1.0)["mmd2"]
    # unbiased MMD^2 of a set with itself is -2 (1 - mean off-diagonal kernel) / m: 0 up to O(1/m)
    assert abs(same) < 2 / len(real) and abs(mmd_rbf(real, other)["mmd2"]) < 2 / len(real)
    assert shifted > 0.1 and shifted > 10 * abs(mmd_rbf(real, other)["mmd2"])
    assert mmd_rbf(real, real, bandwidth=1e-3)["mmd2"] == pytest.approx(-2 / len(real))   # kernel ~ identity


def test_diversity_finds_mode_collapse():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, 2, 32))
    diverse = rng.normal(size=(50, 2, 32))
    collapsed = real[:1] + 0.01 * rng.normal(size=(50, 2, 32))
    d_ok, d_bad = diversity(diverse, real), diversity(collapsed, real)
    # same distribution: a few windows fall below the real minimum by chance; near-copies all do
    assert d_ok["mode_collapse_share"] < 0.2 and d_bad["mode_collapse_share"] == 1.0
    assert d_bad["synth_mean_pairwise"] < 0.1 * d_bad["real_mean_pairwise"]
    assert d_ok["synth_mean_pairwise"] == pytest.approx(d_ok["real_mean_pairwise"], rel=0.05)


# -------------------------------------------------------------------------------------------------- CTG
def _trapezoid(t: np.ndarray, start: float, plateau: float, amp: float, ramp: float = 5.0) -> np.ndarray:
    up = np.clip((t - start) / ramp, 0, 1)
    down = np.clip((start + 2 * ramp + plateau - t) / ramp, 0, 1)
    return amp * np.minimum(up, down)


def planted_ctg(fs: float, seed: int = 0, minutes: float = 20) -> tuple[np.ndarray, np.ndarray]:
    """140 bpm + noise, accelerations +25 bpm for 30 s at 120 s and 500 s, a deceleration -30 bpm for 60 s at
    800 s; UC tone 10 + noise with 6 contractions (Gaussian bumps, amplitude 50, sd 20 s)."""
    t = np.arange(int(minutes * 60 * fs)) / fs
    rng = np.random.default_rng(seed)
    fhr = 140 + rng.normal(0, 1.5, len(t))
    fhr += _trapezoid(t, 120, 30, 25) + _trapezoid(t, 500, 30, 25) + _trapezoid(t, 800, 60, -30)
    uc = 10 + rng.normal(0, 1, len(t))
    for c in (100, 300, 520, 700, 950, 1100):
        uc += 50 * np.exp(-0.5 * ((t - c) / 20) ** 2)
    return fhr, uc


@pytest.mark.parametrize("fs", [4.0, 1.0])
def test_ctg_planted_events(fs):
    fhr, uc = planted_ctg(fs)
    f = ctg_window_features(fhr, uc, fs)
    assert abs(f["baseline_bpm"] - 140) < 3
    assert (f["accelerations"], f["decelerations"], f["contractions"]) == (2, 1, 6)
    assert f["accelerations_per_h"] == pytest.approx(6.0) and f["decelerations_per_h"] == pytest.approx(3.0)
    assert f["contractions_per_h"] == pytest.approx(18.0)
    flat = ctg_window_features(140 + np.random.default_rng(1).normal(0, 1.5, len(fhr)), None, fs)
    assert (flat["accelerations"], flat["decelerations"]) == (0, 0) and np.isnan(flat["contractions_per_h"])


def test_ctg_short_term_variation_in_ms():
    # 3.75-s epochs alternating 140 / 150 bpm at 4 Hz: STV = 60000/140 - 60000/150 ms; LTV (minute range) the same
    fhr = np.repeat(np.tile([140.0, 150.0], 64), 15)
    f = ctg_window_features(fhr, None, 4.0)
    want = 60000 / 140 - 60000 / 150
    assert f["stv_ms"] == pytest.approx(want) and f["ltv_ms"] == pytest.approx(want)
    assert f["baseline_bpm"] == pytest.approx(145, abs=5.1)
    assert ctg_window_features(np.full(4800, 140.0), None, 4.0)["stv_ms"] == 0.0
    gaps = fhr.copy()
    gaps[: int(0.6 * len(gaps))] = 0.0                       # signal loss: too little valid data
    assert np.isnan(ctg_window_features(gaps, None, 4.0)["baseline_bpm"])


def test_ctg_features_batch_and_compare():
    x = np.stack([np.stack(planted_ctg(1.0, seed=s)) for s in range(4)])     # (4, 2, 1200)
    f = ctg_features(x, 1.0, fhr="fhr", uc="uc", channel_names=["fhr", "uc"])
    assert f.shape == (4, len(FEATURES))
    assert (f[:, FEATURES.index("contractions_per_h")] == 18).all()
    with pytest.raises(UserError, match="not in"):
        ctg_features(x, 1.0, fhr="FHR", channel_names=["fhr", "uc"])
    rng = np.random.default_rng(0)
    real = np.column_stack([rng.normal(135, 5, 500), rng.normal(6, 1, 500)])
    synth = np.column_stack([rng.normal(175, 5, 500), rng.normal(6, 1, 500)])
    cmp = compare_features(real, synth, ["baseline_bpm", "stv_ms"])
    assert cmp["baseline_bpm"]["wasserstein"] == pytest.approx(40, abs=1.5)
    assert cmp["baseline_bpm"]["real_in_range"] > 0.99 and cmp["baseline_bpm"]["synth_in_range"] < 0.01
    assert cmp["stv_ms"]["range"] == list(CTG_RANGES["stv_ms"]) and cmp["stv_ms"]["wasserstein"] < 0.3


# -------------------------------------------------------------------------------------------------- ECG
def test_ecg_heart_rate_matches_ludb_annotations():
    if not (LUDB / "ludb.csv").is_file():
        pytest.skip(f"LUDB not found at {LUDB} (needs ludb.csv and data/<n>.{{hea,dat,ii}})")
    pytest.importorskip("neurokit2", reason="neurokit2 is not installed")
    import wfdb

    from evaluation.metrics.physio_ecg import ECG_FEATURES, compare_ecg_features, ecg_features

    with open(LUDB / "ludb.csv", newline="") as f:
        ids = [int(row["ID"]) for row in csv.DictReader(f) if row["Rhythms"].strip() == "Sinus rhythm"
               and not row["Cardiac pacing"].strip() and not row["Extrasystolies"].strip()][:10]
    assert len(ids) == 10
    windows, ref = [], []
    for i in ids:
        rec = wfdb.rdrecord(str(LUDB / "data" / str(i)), physical=False)
        windows.append(rec.d_signal.T / 1000.0)                   # digital units ~ 1 uV (see LUDB README.md)
        ann = wfdb.rdann(str(LUDB / "data" / str(i)), "ii")
        qrs = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym == "N"])
        ref.append(60.0 * rec.fs / np.diff(qrs).mean())
    feats = ecg_features(np.stack(windows), rec.fs, lead="ii", channel_names=rec.sig_name)
    hr = feats[:, ECG_FEATURES.index("hr_bpm")]
    assert (feats[:, ECG_FEATURES.index("rhythm_detected")] == 1).all()
    np.testing.assert_allclose(hr, ref, atol=2.0)
    cmp = compare_ecg_features(feats, feats)
    assert cmp["rhythm_detected"]["synth_in_range"] == 1.0 and cmp["hr_bpm"]["wasserstein"] == 0.0


def test_rr_features_plausibility():
    from evaluation.metrics.physio_ecg import rr_features

    f = rr_features(np.array([0, 500, 1000, 1500]), 500.0)             # RR 1 s exactly
    assert f["hr_bpm"] == pytest.approx(60) and f["rmssd_ms"] == 0 and f["rhythm_detected"] == 1
    assert rr_features(np.array([0, 500]), 500.0)["rhythm_detected"] == 0                 # < 3 peaks
    assert rr_features(np.array([0, 50, 100, 150]), 500.0)["rhythm_detected"] == 0        # RR 0.1 s: implausible


# -------------------------------------------------------------------------------------- FCN / TSTR / I/O
def toy_classes(n: int, seed: int, length: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Class 1: fast sine, class 0: slow sine, plus a noise channel; in 'physical' units around 100."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    f = np.where(y == 1, 0.15, 0.04)[:, None]
    x = np.stack([np.sin(2 * np.pi * f * np.arange(length) + rng.uniform(0, 6.3, (n, 1))),
                  0.3 * rng.normal(size=(n, length))], axis=1) * 10 + 100
    return x.astype(np.float32), y


def test_fcn_trains_above_chance_deterministic_and_round_trips(tmp_path):
    x, y = toy_classes(200, 1)
    xv, yv = toy_classes(60, 2)
    xt, yt = toy_classes(100, 3)
    m = train_fcn(x, y, xv, yv, 2, max_steps=30, batch=32, seed=0)
    assert label_accuracy(m, xt, yt) > 0.8
    f, p = features_and_proba(m, xt)
    assert f.shape == (100, FEATURE_DIM) and p.shape == (100, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    m2 = train_fcn(x, y, xv, yv, 2, max_steps=30, batch=32, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    path = tmp_path / "fcn.safetensors"
    meta = extractor_meta(m, label="y", class_names=["slow", "fast"], channels=["s", "n"], window_len=64,
                          data_sha256="0" * 64, fs=4.0)
    save_extractor(path, m, meta)
    m3, meta3 = load_extractor(path)
    assert meta3 == meta and meta3["kind"] == "fcn"
    np.testing.assert_array_equal(features(m3, xt), f)
    with pytest.raises(UserError, match="class names"):
        extractor_meta(m, label="y", class_names=["one"], channels=["s", "n"], window_len=64, data_sha256="")
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    with pytest.raises(UserError, match="safetensors"):
        load_extractor(tmp_path / "bad.safetensors")


def test_autoencoder_features_and_round_trip(tmp_path):
    x, _ = toy_classes(100, 1, length=60)                  # a length that is not a multiple of 8
    xv, _ = toy_classes(20, 2, length=60)
    ae = train_autoencoder(x, xv, max_steps=10, batch=32)
    f = features(ae, x)
    assert f.shape == (100, FEATURE_DIM) and np.isfinite(f).all()
    path = tmp_path / "ae.safetensors"
    save_extractor(path, ae, extractor_meta(ae, label=None, class_names=None, channels=["s", "n"], window_len=60,
                                            data_sha256=""))
    ae2, meta = load_extractor(path)
    assert meta["kind"] == "autoencoder" and meta["label"] is None
    np.testing.assert_array_equal(features(ae2, x), f)


def test_train_test_and_macro_f1():
    assert macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2) == pytest.approx((2 / 3 + 0.8) / 2)
    assert macro_f1(np.array([0, 0]), np.array([0, 0]), 3) == 1.0            # absent classes left out
    x, y = toy_classes(120, 1)
    xt, yt = toy_classes(60, 3)
    r = train_test(x, y, xt, yt, 2, max_steps=20, batch=32)
    assert r["accuracy"] > 0.8 and r["macro_f1"] > 0.8 and r["n_val"] == 24 and r["n_test"] == 60


def test_gru_scores_do_not_depend_on_grouping_or_workers():
    real, synth = ar1(40, 2, 30, 1), ar1(40, 2, 30, 2)
    three = discriminative_score(real, synth, iterations=5, runs=3, seed=1)
    two = discriminative_score(real, synth, iterations=5, runs=2, seed=1)
    assert two["accuracies"] == three["accuracies"][:2]
    parallel = predictive_score(real, synth, iterations=5, runs=3, seed=1, workers=2)
    serial = predictive_score(real, synth, iterations=5, runs=3, seed=1)
    np.testing.assert_allclose(parallel["maes"], serial["maes"], rtol=1e-6)
