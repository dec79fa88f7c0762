"""The TimeGAN / Diffusion-TS benchmark protocol (evaluation/protocol/, bench/ts_benchmark.py): known answers,
parity with the reference algorithms (sizes, GRU width, TF1 GRUCell and Adam, the correlational value on a
hand-computed example, the predictive MAE of a perfect predictor) and the command's outputs and errors."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dataloader.errors import UserError
from evaluation.protocol import real_halves, score_protocol
from evaluation.protocol.common import reference_hidden, run_rngs
from evaluation.protocol.correlational import correlational_score, correlational_value
from evaluation.protocol.discriminative import discriminative_score, draw_batch, split_pools
from evaluation.protocol.predictive import real_mae, split_io
from evaluation.protocol.tf_gru import TFAdam, gru_states, init_gru_dense

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def sines(n: int, rng: np.random.Generator, t: int = 24, c: int = 5, f_max: float = 0.1) -> np.ndarray:
    """Sines as TimeGAN's `sine_data_generation` (and Diffusion-TS's copy) make them: per window and channel
    sin(f j + p), f, p ~ U(0, f_max), mapped to [0, 1] by (x + 1) / 2; `(n, t, c)`. The references draw f and p
    from U(0, 0.1); the project's brief says U(0, 1), hence the parameter."""
    f = rng.uniform(0, f_max, (n, 1, c))
    p = rng.uniform(0, f_max, (n, 1, c))
    return ((np.sin(f * np.arange(t)[None, :, None] + p) + 1.0) * 0.5).astype(np.float32)


# -- parity with the reference algorithms ----------------------------------------------------------------

def test_hidden_is_int_half_of_channels_and_c1_is_refused():
    assert [reference_hidden(c, None, "t") for c in (2, 3, 5, 6, 7, 28)] == [1, 1, 2, 3, 3, 14]
    with pytest.raises(UserError, match="int\\(C/2\\) is 0"):
        reference_hidden(1, None, "t")
    assert reference_hidden(1, 4, "t") == 4
    with pytest.raises(UserError):
        score_protocol(np.full((20, 24, 1), 0.5, np.float32), np.full((20, 24, 1), 0.5, np.float32))


def test_split_and_batch_sizes_follow_train_test_divide_and_batch_generator():
    rngs = run_rngs(0, "discriminative", 3)
    pools = np.tile(np.arange(17397), (3, 1))              # ETTh2 at 24 steps: 17,420 - 24 + 1 windows
    tr, te = split_pools(pools, rngs)
    assert tr.shape == (3, 13917) and te.shape == (3, 3480)  # int(0.8 n) train, the rest test
    for a, b in zip(tr, te):
        assert len(np.intersect1d(a, b)) == 0 and len(np.union1d(a, b)) == 17397
    assert not np.array_equal(tr[0], tr[1])                  # each run its own permutation
    b = draw_batch(tr, rngs, 128)
    assert b.shape == (3, 128) and all(len(set(row)) == 128 for row in b)   # without replacement
    assert all(np.isin(row, t).all() for row, t in zip(b, tr))
    assert draw_batch(tr[:, :50], rngs, 128).shape == (3, 50)              # permutation[:128] of 50 gives 50
    r = discriminative_score(sines(100, np.random.default_rng(1)), sines(60, np.random.default_rng(2)),
                             iterations=2, runs=2)
    assert (r["n_train_real"], r["n_test_real"], r["n_train_synth"], r["n_test_synth"]) == (80, 20, 48, 12)
    assert (r["batch_real"], r["batch_synth"], r["hidden"]) == (80, 48, 2)


def _tf1_gru_numpy(x: np.ndarray, w_g: np.ndarray, b_g: np.ndarray, w_c: np.ndarray, b_c: np.ndarray) -> np.ndarray:
    """tf.compat.v1.nn.rnn_cell.GRUCell.call written from its definition, one window `(T, D)` -> h_T `(H,)`."""
    h = np.zeros(w_c.shape[1])
    for x_t in x:
        g = 1.0 / (1.0 + np.exp(-(np.concatenate([x_t, h]) @ w_g + b_g)))
        r, u = np.split(g, 2)
        c = np.tanh(np.concatenate([x_t, r * h]) @ w_c + b_c)
        h = u * h + (1 - u) * c
    return h


def test_gru_is_tf1_grucell_with_tf_initialisation():
    rngs = run_rngs(0, "discriminative", 2)
    p = init_gru_dense(rngs, 7, 3)
    assert torch.all(p["b_g"] == 1) and torch.all(p["b_c"] == 0) and torch.all(p["b_o"] == 0)
    assert p["w_g"].abs().max() <= math.sqrt(6 / (10 + 6)) and p["w_c"].abs().max() <= math.sqrt(6 / (10 + 3))
    assert p["w_g"].abs().max() > 0.8 * math.sqrt(6 / 16)   # glorot bound, not torch's 1/sqrt(H)
    x = torch.rand(2, 4, 24, 7)
    with torch.no_grad():
        h = gru_states(p, x)[-1]                                                  # (R, H, B)
    for r in range(2):
        for b in range(4):
            want = _tf1_gru_numpy(x[r, b].double().numpy(), p["w_g"][r].double().detach().numpy(),
                                  p["b_g"][r, 0].double().detach().numpy(), p["w_c"][r].double().detach().numpy(),
                                  p["b_c"][r, 0].double().detach().numpy())
            np.testing.assert_allclose(h[r, :, b].numpy(), want, atol=2e-6)


def test_adam_is_tf1_adam():
    w = torch.tensor([0.5, -1.0], requires_grad=True)
    opt = TFAdam([w])
    m = v = np.zeros(2)
    ref = np.array([0.5, -1.0])
    for t in range(1, 6):
        g = np.array([1e-3 * t, -2.0])
        w.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        ref = ref - 1e-3 * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-6)


def test_correlational_value_on_a_hand_computed_example():
    real = np.array([[[0.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]]])          # (2, 2, 2)
    synth = np.array([[[0.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    # by hand: in every set below each channel's 4 values are 0, 1, 1, 0: mean 0.5, unbiased std sqrt(1/3), so
    # z = +-sqrt(3)/2 and z_i z_j = +-3/4. Pairs (0,0), (1,0), (1,1): the diagonal is 3/4 in every set.
    # real (1,0): window 1 gives -3/4 at both steps, window 2 +3/4 -> mean over windows 0; synth likewise 0.
    synth2 = synth.copy()
    synth2[1] = [[1.0, 1.0], [0.0, 0.0]]                   # synth2 (1,0): +3/4 in both windows -> 3/4
    assert correlational_value(real, synth) == pytest.approx(0.0, abs=1e-12)
    assert correlational_value(real, synth2) == pytest.approx(0.75 / 10, abs=1e-12)   # L1, then / 10


def test_correlational_matches_an_independent_loop_computation():
    rng = np.random.default_rng(3)
    real, synth = rng.random((6, 5, 3)), rng.random((6, 5, 3)) ** 2

    def cacf(x):
        out = []
        for i in range(3):
            for j in range(i + 1):                          # torch.tril_indices order: row i, column j <= i
                zi = (x[..., i] - x[..., i].mean()) / x[..., i].std(ddof=1)
                zj = (x[..., j] - x[..., j].mean()) / x[..., j].std(ddof=1)
                out.append(np.mean([np.mean(zi[n] * zj[n]) for n in range(len(x))]))
        return np.array(out)

    assert correlational_value(real, synth) == pytest.approx(np.abs(cacf(synth) - cacf(real)).sum() / 10, rel=1e-12)
    r = correlational_score(rng.random((50, 5, 3)), rng.random((70, 5, 3)), runs=5)
    assert r["size"] == 10 and len(r["values"]) == 5                 # int(N_real / iterations), 5 iterations


def test_predictive_mae_of_a_perfect_and_of_a_constant_predictor():
    rng = np.random.default_rng(4)
    x = rng.random((30, 12, 3)).astype(np.float32)
    inp, y = split_io(x)
    assert inp.shape == (30, 11, 2) and y.shape == (30, 11)
    np.testing.assert_array_equal(y, x[:, 1:, 2])
    np.testing.assert_array_equal(inp, x[:, :-1, :2])
    p = init_gru_dense(run_rngs(0, "predictive", 2), 2, 1)
    with torch.no_grad():
        p["w_o"].zero_()
        p["b_o"].fill_(math.log(0.3 / 0.7))                # sigmoid(b) = 0.3 at every step
    idx = np.tile(np.arange(30), (2, 1))
    mae = real_mae(p, torch.from_numpy(inp), torch.from_numpy(y), idx)
    assert mae == pytest.approx([float(np.abs(y - 0.3).mean())] * 2, rel=1e-5)
    x[:, :, 2] = 0.3                                       # a data set this predictor predicts perfectly
    _, y = split_io(x)
    assert max(real_mae(p, torch.from_numpy(inp), torch.from_numpy(y), idx)) < 1e-6


def test_predictive_learns_a_predictable_target():
    rng = np.random.default_rng(5)
    x = sines(600, rng, c=2, f_max=1.0)
    x[:, 1:, 1] = x[:, :-1, 0]                             # the target is the input one step earlier
    from evaluation.protocol.predictive import predictive_score
    trained = predictive_score(x, x, iterations=400, runs=1)["mean"]
    constant = float(np.abs(x[:, 1:, 1] - np.median(x[:, 1:, 1])).mean())   # the best constant prediction
    assert trained < 0.75 * constant            # 400 of the reference's 5000 iterations: learning, not learnt


# -- known answers ---------------------------------------------------------------------------------------

def test_discriminative_known_answers():
    rng = np.random.default_rng(6)
    real, same = sines(2000, rng), sines(2000, rng)
    noise = rng.random((2000, 24, 5)).astype(np.float32)
    assert discriminative_score(real, same, iterations=500, runs=2)["mean"] < 0.05
    assert discriminative_score(real, noise, iterations=500, runs=2)["mean"] > 0.45


def test_score_protocol_rows_halves_and_determinism():
    a, b = real_halves(101, 3, 0)
    assert a.shape == b.shape == (3, 50) and all(len(np.intersect1d(x, y)) == 0 for x, y in zip(a, b))
    rng = np.random.default_rng(7)
    real, noise = sines(800, rng), rng.random((900, 24, 5)).astype(np.float32)
    kw = {"runs": 2, "disc_iterations": 150, "pred_iterations": 100}
    r = score_protocol(real, noise, **kw)
    assert set(r["scores"]) == set(r["real_vs_real"]) == {"discriminative", "predictive", "correlational"}
    # 150 iterations: the classifier is only starting to separate sines from noise, but the rows already differ
    assert r["scores"]["discriminative"]["mean"] > 0.15 > 0.08 > r["real_vs_real"]["discriminative"]["mean"]
    assert r["scores"]["correlational"]["mean"] > 5 * r["real_vs_real"]["correlational"]["mean"]
    assert r["scores"]["discriminative"]["n_test_synth"] == 160          # fake[:len(real)] = 800, 20 %
    assert r["real_vs_real"]["discriminative"]["n_train_real"] == 320    # halves of 400, 80 %
    assert r["settings"]["deviations_from_reference"] == ["disc_iterations 150 (reference 2000)",
                                                          "pred_iterations 100 (reference 5000)"]
    again = score_protocol(real, noise, **kw, metrics=("discriminative",), real_vs_real=False)
    assert again["scores"]["discriminative"]["values"] == r["scores"]["discriminative"]["values"]


def test_bad_input_is_a_user_error():
    ok = np.full((20, 24, 3), 0.5, np.float32)
    with pytest.raises(UserError, match="min-max scaled"):
        score_protocol(ok * 3, ok)
    with pytest.raises(UserError, match="differ"):
        score_protocol(ok, ok[:, :12])
    with pytest.raises(UserError, match="NaN"):
        score_protocol(ok, ok * np.nan)
    with pytest.raises(UserError, match="unknown metric"):
        score_protocol(ok, ok, metrics=("fid",))


@pytest.mark.slow
def test_full_protocol_on_sines():
    rng = np.random.default_rng(8)
    r = score_protocol(sines(2000, rng), sines(2000, rng))     # reference settings: 2000 / 5000 iterations, 5 runs
    assert r["scores"]["discriminative"]["mean"] < 0.05
    assert r["scores"]["predictive"]["mean"] < 0.15
    assert r["scores"]["correlational"]["mean"] < 0.1


# -- the command -----------------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.ts_benchmark", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_cli_csv_series_and_h5_synthetic(tmp_path: Path):
    from dataloader.synthetic import SyntheticWriter

    rng = np.random.default_rng(9)
    rows = 200
    series = np.stack([np.sin(np.arange(rows) / 5), 10 + np.cos(np.arange(rows) / 7), rng.random(rows)], 1)
    csv = tmp_path / "s.csv"
    csv.write_text("date,a,b,c\n" + "".join(f"2020-01-01 {i},{r[0]},{r[1]},{r[2]}\n"
                                            for i, r in enumerate(series)))
    from bench.ts_benchmark_data import load_real
    x, info = load_real(str(csv), 24)
    assert x.shape == (rows - 23, 24, 3) and info["channels"] == ["a", "b", "c"]
    lo, hi = series.min(0), series.max(0)
    np.testing.assert_allclose(x[5], (series[5:29] - lo) / (hi - lo), atol=1e-6)   # whole-series min-max
    syn = rng.uniform(-1, 1, (150, 3, 24)).astype(np.float32)
    h5 = tmp_path / "syn.h5"
    attrs = {"fs": 1.0, "channels": [{"name": n, "unit": "", "range": [-1.0, 1.0]} for n in "abc"],
             "label_spec": [], "config": "", "sampler": "test", "steps": 0, "guidance_scale": 1.0, "seed": 0,
             "model_sha256": "0" * 64, "package_version": "test"}
    with SyntheticWriter(h5, attrs=attrs, run_key="k", labels=np.zeros((150, 0), np.int64), n_channels=3,
                         length=24, scaled=True) as w:
        w.append(syn, syn)
        w.finish()
    out = tmp_path / "rep"
    from bench.ts_benchmark import main
    assert main(["score", "--real", str(csv), "--synthetic", str(h5), "--out", str(out), "--metrics",
                 "correlational"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["result"]["settings"]["n_synthetic"] == 150 and rep["real"]["window"] == 24
    assert "correlational" in (out / "report.md").read_text()
    from bench.ts_benchmark_data import load_synthetic
    np.testing.assert_allclose(load_synthetic(str(h5))[0], (syn.transpose(0, 2, 1) + 1) / 2, atol=1e-6)


def test_cli_errors_are_one_line_and_write_nothing(tmp_path: Path):
    from bench.ts_benchmark import main

    real = tmp_path / "r.npy"
    np.save(real, np.full((40, 24, 3), 2.0, np.float32))
    good = tmp_path / "g.npy"
    np.save(good, np.full((40, 24, 3), 0.5, np.float32))
    out = tmp_path / "o"
    res = _cli("score", "--real", str(real), "--synthetic", str(good), "--out", str(out))   # through run_main
    assert res.returncode == 2 and res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "min-max scaled" in res.stderr
    for args, what in (([], "subcommand"), (["score", "--real", str(tmp_path / "none.csv")], "not found"),
                       (["score", "--real", str(good), "--window", "64"], "holds windows of 24"),
                       (["score", "--real", str(good), "--window", "25"], "invalid choice"),
                       (["score", "--real", str(good), "--synthetic", str(tmp_path / "x.h5")], "not found")):
        if args:
            args = args + ["--synthetic", str(good)] * ("--synthetic" not in args) + ["--out", str(out)]
        with pytest.raises(UserError, match=what):
            main(args)
    assert not out.exists()
