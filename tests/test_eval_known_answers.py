"""Known answers of the metric layer that need real data or many samples (docs/evaluation.md section 1):
the Fréchet distance of samples from two Gaussians approaches the closed form; the discriminative score is
near 0 when the "synthetic" set is real CTG from other patients and near 0.5 for noise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.metrics.discriminative import discriminative_score
from evaluation.fcn.fid import fid_from_features, frechet_distance

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctu-uhb-ctg"


def test_fid_of_gaussian_samples_approaches_closed_form() -> None:
    rng = np.random.default_rng(0)
    d = 4
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T + np.eye(d), b @ b.T + np.eye(d)
    mu1, mu2 = np.zeros(d), np.array([1.0, -1.0, 0.5, 0.0])
    want = frechet_distance(mu1, s1, mu2, s2)
    x = rng.multivariate_normal(mu1, s1, size=100_000)
    y = rng.multivariate_normal(mu2, s2, size=100_000)
    assert fid_from_features(x, y) == pytest.approx(want, rel=0.03)
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.slow
def test_discriminative_real_other_patients_near_zero_noise_near_half(tmp_path: Path) -> None:
    if not (SHARED / "signals").is_dir():
        pytest.skip(f"CTU-UHB data not found at {SHARED}")
    from dataloader.config import load_config
    from dataloader.prepared import PreparedFile
    from evaluation.real_data import real_subset
    from dataloader.prepare import prepare

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs/ctg/diffusion-identity.yaml",
                      [f"data.prepared={tmp_path}/ctg.h5", f"data.source={SHARED}/signals",
                       f"data.labels={SHARED}/labels.csv"])
    prepare(cfg, workers=1)
    pf = PreparedFile(tmp_path / "ctg.h5")
    torch.set_num_threads(1)
    test = real_subset(pf, "test", 300, 0)
    train = real_subset(pf, "train", 300, 0)
    assert not set(test.patients) & set(train.patients)
    same = discriminative_score(test.x, train.x, iterations=1000, runs=3, seed=0, workers=2)
    lo, hi = test.x.min(axis=(0, 2)), test.x.max(axis=(0, 2))
    noise = np.random.default_rng(1).uniform(lo[None, :, None], hi[None, :, None], size=test.x.shape)
    far = discriminative_score(test.x, noise, iterations=1000, runs=3, seed=0, workers=2)
    assert same["mean"] < 0.1, same
    assert far["mean"] > 0.4, far
