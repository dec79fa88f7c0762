"""Learned first stages: shapes for every stage and window length in the configs, the losses, the codebook,
the trained file's checks, and a VQ-VAE that overfits a handful of real CTG windows."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from dataloader.config import load_config
from first_stage.config import FirstStageConfig
from dataloader.errors import UserError
from dataloader.windows import window_length
from first_stage import FIRST_STAGES, build_first_stage
from first_stage.losses import focal_frequency_loss, recon_loss
from first_stage.quantizer import VectorQuantizer

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*/*.yaml"))


@functools.lru_cache(maxsize=1)
def _windows() -> list[tuple[str, int, int]]:
    """(config name, channels, window length) of every config with channels and a window, one per distinct
    (channels, length)."""
    out = []
    for p in CONFIGS:
        try:
            cfg = load_config(p)
        except UserError:
            continue  # a data-only include without every key
        d = cfg.get("data")
        if d is None or not d.channels or (d.window is None and d.window_s is None):
            continue
        fs = d.target_fs or d.fs
        if fs is None:   # WFDB: the rate comes from the records: read it from the first record's header
            from dataloader.readers import list_recordings

            recs = list_recordings(d) if Path(d.source).is_dir() else []
            if not recs:
                continue  # source data absent (checked by the count below)
            import wfdb

            fs = wfdb.rdheader(recs[0][1]).fs
        fs = float(fs)
        shape = (len(d.channels), window_length(d, fs)[0])
        if all(shape != o[1:] for o in out):
            out.append((p.name, *shape))
    return out


@pytest.mark.parametrize("kind", list(FIRST_STAGES))
def test_shapes_every_stage_and_config_window(kind: str) -> None:
    torch.manual_seed(0)
    windows = _windows()
    if not (ROOT / "../shared/data").is_dir():
        pytest.skip("../shared/data absent: the ECG configs' rates come from their WFDB records")
    assert len(windows) >= 4, windows
    for name, c, n in windows:
        factor = 1 if kind == "identity" else 8
        if n % factor:
            with pytest.raises(UserError, match="multiples of 8"):
                build_first_stage(FirstStageConfig(type=kind, factor=factor, out_dir="x"), c, n)
            continue
        cfg = FirstStageConfig(type=kind, factor=factor, latent_channels=3, hidden_channels=8,
                               codebook_size=16, out_dir="unused")
        fs = build_first_stage(cfg, c, n).eval()
        x = torch.rand(1, c, n) * 2 - 1
        with torch.no_grad():
            z = fs.encode(x)
            assert tuple(z.shape) == (1, *fs.latent_shape(c, n)), name
            assert tuple(fs.decode(z).shape) == (1, c, n), name
        if kind in ("vae", "vqvae", "vqgan"):
            assert tuple(z.shape[1:]) == (3, n // 8)


def test_ffl_zero_for_identical_and_favours_high_frequency() -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(2048.0)
    # a signal with a falling spectrum, as physiological signals have
    x = torch.cumsum(torch.randn(4, 2, 2048, generator=g), -1) * 0.05 + torch.sin(2 * torch.pi * t / 300)
    assert float(focal_frequency_loss(x, x)) == 0.0
    assert float(focal_frequency_loss(x + 1e-3, x)) > 0
    lf = torch.cumsum(torch.randn(4, 2, 2048, generator=g), -1)
    lf = lf - lf.mean(-1, keepdim=True)
    hf = torch.sin(2 * torch.pi * t * 0.4).expand(4, 2, -1).clone()
    lf, hf = (p * 0.1 / p.pow(2).mean().sqrt() for p in (lf, hf))   # equal energy: equal L2
    l2_ratio = float(recon_loss(x + hf, x, "l2") / recon_loss(x + lf, x, "l2"))
    ffl_ratio = float(focal_frequency_loss(x + hf, x) / focal_frequency_loss(x + lf, x))
    assert abs(l2_ratio - 1) < 0.05
    assert ffl_ratio > 10 * l2_ratio
    # and it grows with the size of a high-frequency perturbation
    assert float(focal_frequency_loss(x + 2 * hf, x)) > float(focal_frequency_loss(x + hf, x))


def test_per_channel_normalisation() -> None:
    """A channel 100x larger does not dominate: the same relative error in either channel costs the same."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 256, generator=g).repeat(1, 2, 1)
    x[:, 1] *= 100
    e = torch.randn(2, 1, 256, generator=g) * 0.1
    a, b = x.clone(), x.clone()
    a[:, :1] += e
    b[:, 1:] += 100 * e
    for f in (lambda u, v: recon_loss(u, v, "l1"), lambda u, v: recon_loss(u, v, "l2"), focal_frequency_loss):
        assert float(f(a, x)) == pytest.approx(float(f(b, x)), rel=1e-3)


@pytest.mark.parametrize("update", ["ema", "straight_through"])
def test_quantizer_restarts_dead_codes_and_passes_gradients(update: str) -> None:
    torch.manual_seed(0)
    q = VectorQuantizer(dim=2, size=8, commitment=0.25, update=update, decay=0.5, restart_threshold=0.5)
    q.train()
    z = torch.randn(4, 2, 16) + 5.0
    q(z)                                     # first batch initialises the codebook from the data
    q.codebook.data[3] = torch.tensor([-100.0, -100.0])   # a code nothing is near: dead
    for _ in range(4):
        q(z)
    assert float(q.codebook[3].abs().max()) < 50, "the dead code was not restarted"
    z = torch.randn(2, 2, 8, requires_grad=True)
    zq, losses, codes = q(z)
    (zq.sum() + losses["commit"] + losses["codebook"]).backward()
    assert z.grad is not None and torch.all(z.grad != 0)   # straight-through
    assert codes.shape == (2, 8)
    q.eval()
    zq, _, _ = q(z)
    assert torch.allclose(q.quantize(z.detach()), zq.detach(), atol=1e-6)   # decoding quantises as training does


def test_vqgan_discriminator_switches_on_and_trains() -> None:
    torch.manual_seed(0)
    cfg = FirstStageConfig(type="vqgan", factor=4, latent_channels=2, hidden_channels=8, codebook_size=16,
                           disc_start=2, disc_channels=8, disc_layers=2, out_dir="x")
    fs = build_first_stage(cfg, 2, 64)
    x = torch.rand(4, 2, 64) * 2 - 1
    assert "adv" not in fs.loss(x, step=1) and fs.disc_loss(x, step=1) == {}
    parts = fs.loss(x, step=2)
    assert "adv" in parts and float(parts["adv_weight"]) > 0
    parts["loss"].backward()
    assert all(p.grad is None for p in fs.disc_parameters())   # the generator step leaves D alone
    d0 = fs.disc_loss(x, step=2)["loss"]
    opt = torch.optim.Adam(fs.disc_parameters(), lr=1e-3)
    for _ in range(20):
        opt.zero_grad()
        d = fs.disc_loss(x, step=2)["loss"]
        d.backward()
        opt.step()
    assert float(d) < float(d0)     # the discriminator learns to tell reconstructions from originals


def test_latent_scale_gives_unit_variance() -> None:
    torch.manual_seed(0)
    cfg = FirstStageConfig(type="vae", factor=4, latent_channels=2, hidden_channels=8, out_dir="x")
    fs = build_first_stage(cfg, 2, 64).eval()
    xs = [torch.rand(8, 2, 64) * 2 - 1 for _ in range(4)]
    s = fs.fit_scale(xs)
    z = torch.cat([fs.encode(x) for x in xs])
    assert float(z.std()) == pytest.approx(1.0, rel=1e-3)
    assert float(fs.scale) == pytest.approx(s)
    assert "scale" in fs.state_dict()
    assert torch.allclose(fs.decode(z[:8]), fs._decode_raw(fs._encode_raw(xs[0])), atol=1e-5)


@pytest.fixture(scope="module")
def ctg_4hz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prepared 4 Hz CTG file: data/ctg-4hz.h5 when prepared, else 20 real patients prepared into a temp
    folder (a clean checkout; the recordings are linked, never copied); skipped without the shared data."""
    prepared = ROOT / "data" / "ctg-4hz.h5"
    if prepared.is_file():
        return prepared
    from tests.test_data_real import CTG, _links, _need, _prepare

    _need(CTG)
    tmp = tmp_path_factory.mktemp("ctg4")
    files = sorted(p.name for p in (CTG / "signals").glob("*.csv.gz"))[::22][:20]
    src = _links(CTG / "signals", files, tmp / "signals")
    _prepare(ROOT / "configs" / "ctg" / "sampling-diffusion.yaml", f"data.source={src}",
             f"data.prepared={tmp / 'ctg.h5'}")
    return tmp / "ctg.h5"


def test_vqvae_overfits_a_handful_of_real_ctg_windows(ctg_4hz: Path) -> None:
    """It can learn: 4 real 4 Hz CTG crops (32 s) reconstructed to within 2 bpm / 2 nd (about 1 % of the
    ranges, from ~50 / ~25 untrained) after 200 steps, through the quantiser."""
    from dataloader.dataset import WindowDataset

    torch.manual_seed(0)
    ds = WindowDataset(ctg_4hz, "train")
    idx = np.linspace(0, len(ds) - 1, 4).round().astype(int)
    x = ds.get_batch(idx)[0][..., 2048:2048 + 128]
    cfg = FirstStageConfig(type="vqvae", factor=2, latent_channels=2, hidden_channels=16, codebook_size=256,
                           codebook_decay=0.9, restart_threshold=0.01, out_dir="x")
    fs = build_first_stage(cfg, 2, 128)

    def rmse() -> np.ndarray:
        fs.eval()
        with torch.no_grad():
            r = np.sqrt(((ds.to_physical(fs(x)) - ds.to_physical(x)) ** 2).mean(axis=(0, 2)))
        fs.train()
        return r

    before = rmse()
    opt = torch.optim.Adam(fs.parameters(), lr=3e-3)
    for step in range(200):
        opt.zero_grad()
        fs.loss(x, step)["loss"].backward()
        opt.step()
    after = rmse()
    assert (before > 10).all()
    assert after[0] < 2.0 and after[1] < 2.0, f"RMSE {after} (FHR bpm, UC nd)"
