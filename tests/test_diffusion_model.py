"""DiffusionModel, its config schema, the parameterisations, losses and EMA."""
from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load as st_load, save as st_save

from dataloader.config import loader
from diffusion.config import UNET_PRESETS, ModelConfig, SampleConfig
from dataloader.config.typed import from_dict
from dataloader.errors import UserError
from training.ema import EMA
from diffusion.loss import L1Loss, L2Loss, build_distance
from diffusion.model import build_diffusion, required_multiple
from diffusion.precond import Denoiser
from diffusion.schedule import NoiseSchedule


def model_cfg(**kw) -> ModelConfig:
    return from_dict(ModelConfig, {"size": "tiny", **kw}, "model", "test.yaml")


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


# ---- schema ------------------------------------------------------------------------------------------------
def test_sections_are_registered_with_the_loader():
    assert loader.section_class("model") is ModelConfig and loader.section_class("sample") is SampleConfig
    with pytest.raises(UserError, match="unknown model type 'nope'; valid: diffusion, gan, wgan_gp, lstm_gan, "
                                        "timegan, timevae, autoencoder$"):
        from_dict(ModelConfig, {"type": "nope"}, "model", "f.yaml")


def test_presets_and_overrides():
    u = model_cfg(unet={"base_channels": 32}).resolved_unet()
    assert u.base_channels == 32 and u.channel_mult == UNET_PRESETS["tiny"]["channel_mult"]
    assert model_cfg().resolved_unet().attention_levels == []
    base = from_dict(ModelConfig, {}, "model", "t.yaml").resolved_unet()
    assert (base.base_channels, base.channel_mult, base.num_res_blocks, base.attention_levels) == (64, [1, 2, 4, 4], 2, [3])


@pytest.mark.parametrize("data,match", [
    ({"size": "custom", "unet": {"base_channels": 8}}, "size: custom needs channel_mult, num_res_blocks, attention_levels"),
    ({"type": "gan9"}, "unknown model type 'gan9'; valid: diffusion, gan, wgan_gp"),
    ({"size": "huge"}, "expected one of 'tiny', 'small', 'base', 'custom'"),
    ({"unet": {"attention_levels": [4]}}, r"levels \[4\] do not exist; valid: 0..3"),
    ({"unet": {"norm_groups": 7}}, "7 groups do not divide 64 channels"),
    ({"first_stage": {"type": "vqvae9"}}, "unknown first stage 'vqvae9'"),
    ({"first_stage": {"type": "sampling"}}, "sampling needs factor >= 2"),
    ({"diffusion": {"parameterization": "score"}}, "expected one of 'eps', 'v', 'x0'"),
    ({"diffusion": {"num_steps": 10, "schedule": "linear"}}, "beta_end x 1000 / num_steps must be < 1"),
    ({"unet": {"bogus": 1}}, "unknown key 'bogus'"),
])
def test_schema_errors(data, match):
    with pytest.raises(UserError, match=match):
        from_dict(ModelConfig, data, "model", "test.yaml")


def test_sample_section_defaults():
    s = from_dict(SampleConfig, {}, "sample", "t.yaml")
    assert (s.sampler, s.steps, s.guidance_scale, s.eta, s.sigmas, s.batch_size, s.seed) == \
        ("dpm_solver", 20, 1.0, None, "karras", 64, 0)
    with pytest.raises(UserError):
        from_dict(SampleConfig, {"steps": 0}, "sample", "t.yaml")


# ---- build -------------------------------------------------------------------------------------------------
def test_build_shapes_and_required_multiple():
    m = build_diffusion(model_cfg(), 2, 2048, [3, 2, 2, 2])
    assert m.latent_shape == (2, 2048) and required_multiple(model_cfg()) == 4
    cfg = model_cfg(first_stage={"type": "sampling", "factor": 8})
    assert required_multiple(cfg) == 32
    assert build_diffusion(cfg, 2, 8192, []).latent_shape == (2, 1024)
    with pytest.raises(UserError, match="window length 8200 does not fit the model: it needs a multiple of 32"):
        build_diffusion(cfg, 2, 8200, [])
    keys = m.state_dict().keys()
    assert all(k.startswith("net.") for k in keys)          # fixed first stage: no weights; net stored once


def test_state_dict_round_trip_through_safetensors():
    m = build_diffusion(model_cfg(diffusion={"parameterization": "v"}), 1, 32, [2])
    _randomise(m)
    blob = st_save(m.state_dict())
    m2 = build_diffusion(model_cfg(diffusion={"parameterization": "v"}), 1, 32, [2])
    m2.load_state_dict(st_load(blob), strict=True)
    a = m.sample(3, [1], sampler="ddim", steps=3, seed=2)
    assert torch.equal(a, m2.sample(3, [1], sampler="ddim", steps=3, seed=2))


# ---- parameterisation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("param", ["eps", "v", "x0"])
def test_denoiser_recovers_x0_from_a_perfect_network(param):
    sched = NoiseSchedule("cosine", 1000)
    x0, noise = torch.randn(4, 2, 8, dtype=torch.float64), torch.randn(4, 2, 8, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999])
    sigma = sched.sigmas[t]
    seen = {}

    def perfect(x_in, level, labels):   # returns exactly the parameterisation's target
        seen["x_in"], seen["level"] = x_in, level
        return den.target(x0, noise, sigma)

    den = Denoiser(perfect, sched, param)
    x = x0 + sigma.view(-1, 1, 1) * noise
    torch.testing.assert_close(den(x, sigma), x0, atol=1e-6 * (1 + sigma.max().item()), rtol=1e-6)
    # the network sees the variance-preserving input and the discrete timestep
    torch.testing.assert_close(seen["x_in"], x / (1 + sigma.view(-1, 1, 1) ** 2).sqrt())
    torch.testing.assert_close(seen["level"], t.float(), atol=1e-4, rtol=0)
    # net_output feeds the same input at integer t
    den_net = Denoiser(lambda x_in, level, labels: x_in, sched, param)
    out, target = den_net.net_output(x0, noise, t, None)
    torch.testing.assert_close(out, x / (1 + sigma.view(-1, 1, 1) ** 2).sqrt())
    torch.testing.assert_close(target, den.target(x0, noise, sigma))


# ---- losses ------------------------------------------------------------------------------------------------
def test_losses_per_sample_and_masked():
    p, t = torch.zeros(2, 1, 4), torch.tensor([[[1.0, 1, 3, 3]], [[2.0, 2, 2, 2]]])
    assert L2Loss()(p, t).tolist() == [5.0, 4.0] and L1Loss()(p, t).tolist() == [2.0, 2.0]
    w = torch.tensor([[[1.0, 1, 0, 0]], [[0.0, 0, 0, 0]]])
    assert L2Loss()(p, t, w).tolist() == [1.0, 0.0]
    with pytest.raises(UserError, match="valid: l1, l2"):
        build_distance("huber")


# ---- training loss -----------------------------------------------------------------------------------------
def test_training_loss_is_deterministic_and_differentiable():
    m = build_diffusion(model_cfg(), 2, 64, [3, 2])
    x, y = torch.rand(4, 2, 64) * 2 - 1, torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0]])
    a = m.training_loss(x, y, generator=torch.Generator().manual_seed(0))
    b = m.training_loss(x, y, generator=torch.Generator().manual_seed(0))
    assert a.ndim == 0 and torch.isfinite(a) and torch.equal(a, b)
    a.backward()
    assert all(p.grad is not None for p in m.net.parameters() if p.requires_grad)
    per = m.training_loss(x, y, t=torch.tensor([0, 1, 2, 999]), noise=torch.randn(4, 2, 64), reduction="none")
    assert per.shape == (4,)
    mask = torch.ones(4, 1, 64)
    mask[:, :, 32:] = 0
    assert not torch.equal(m.training_loss(x, y, generator=torch.Generator().manual_seed(0), mask=mask), a.detach())


def test_label_dropout_only_in_training():
    cfg = model_cfg(diffusion={"p_uncond": 0.0, "p_uncond_all": 1.0})
    m = build_diffusion(cfg, 1, 32, [3, 2])
    seen = []
    m.net.register_forward_pre_hook(lambda mod, args: seen.append(args[2].clone()))
    y = torch.tensor([[0, 1], [2, 0]])
    m.train()
    m.training_loss(torch.zeros(2, 1, 32), y)
    m.eval()
    m.training_loss(torch.zeros(2, 1, 32), y)
    m.sample(2, y, sampler="ddim", steps=2, guidance_scale=1.0)
    assert seen[0].tolist() == [[3, 2], [3, 2]]             # p_uncond_all = 1: all null while training
    assert all(torch.equal(s, y) for s in seen[1:])          # never dropped in eval or sampling


def test_sampling_first_stage_model_trains_and_samples():
    m = build_diffusion(model_cfg(first_stage={"type": "sampling", "factor": 4}), 2, 256, [])
    loss = m.training_loss(torch.rand(2, 2, 256) * 2 - 1, mask=torch.ones(2, 1, 256))
    assert torch.isfinite(loss)
    assert m.sample(2, sampler="k_euler", steps=2).shape == (2, 2, 256)


# ---- sampling ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler,opts", [("ddim", {"eta": 0.5}), ("k_euler_a", {}), ("dpm_solver", {}),
                                          ("k_dpmpp_2m_sde", {})])
def test_same_seed_same_samples_whatever_the_batch_size(sampler, opts):
    m = build_diffusion(model_cfg(), 2, 32, [3, 2])
    _randomise(m)
    y = torch.tensor([[0, 1], [1, 0], [2, -1], [-1, -1], [0, 0]])
    kw = dict(sampler=sampler, steps=4, guidance_scale=2.0, seed=7, **opts)
    whole = m.sample(5, y, batch_size=5, **kw)
    assert whole.shape == (5, 2, 32)
    # the noise is identical per sample; batched conv/GEMM kernels may round differently per batch size
    # (observed up to 4e-5 after 4 guided steps), hence the tolerance
    torch.testing.assert_close(m.sample(5, y, batch_size=2, **kw), whole, atol=2e-4, rtol=1e-4)
    split = torch.cat([m.sample(3, y[:3], **kw), m.sample(2, y[3:], start_index=3, **kw)])
    torch.testing.assert_close(split, whole, atol=2e-4, rtol=1e-4)
    assert not torch.allclose(m.sample(5, y, batch_size=5, **{**kw, "seed": 8}), whole)


def test_sample_labels_info_and_mode():
    m = build_diffusion(model_cfg(), 1, 32, [3, 2])
    m.train()
    x, info = m.sample(4, [2, -1], sampler="k_heun", steps=3, guidance_scale=3.0, return_info=True, batch_size=3)
    assert x.shape == (4, 1, 32) and info["nfe"] == [5, 5] and info["batches"] == 2
    assert m.training                                         # mode restored
    with pytest.raises(UserError, match="code 4 is not in 0..2"):
        m.sample(1, [4, 0])                                   # 3 would be the null entry itself
    with pytest.raises(UserError, match=r"expected labels of shape \(2, 2\)"):
        m.sample(2, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(UserError, match="unknown sampler"):
        m.sample(1, sampler="nope")


# ---- EMA ---------------------------------------------------------------------------------------------------
def test_ema_update_copy_and_state_round_trip():
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = EMA(net, decay=0.9, warmup=False)
    with torch.no_grad():
        net.weight.fill_(2.0)
    ema.update(net)
    assert torch.allclose(ema.shadow["weight"], torch.full((2, 2), 1.1))  # 0.9 * 1 + 0.1 * 2
    warm = EMA(net, decay=0.999, warmup=True)
    assert warm.current_decay() == pytest.approx(0.1)                      # (1 + 0) / (10 + 0)
    buf = io.BytesIO()
    torch.save(ema.state_dict(), buf)
    buf.seek(0)
    other = EMA(torch.nn.Linear(2, 2), decay=0.5)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.decay == 0.9 and other.num_updates == 1
    target = torch.nn.Linear(2, 2)
    other.copy_to(target)
    assert torch.allclose(target.weight, torch.full((2, 2), 1.1))
    with pytest.raises(KeyError, match="does not match"):
        EMA(torch.nn.Linear(3, 2, bias=False)).load_state_dict(ema.state_dict())


# ---- conditional generation on a toy set (slow) ------------------------------------------------------------
def _toy(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: 2 cycles per window; class 1: 8 cycles; random phase and amplitude; (n, 1, 64) in [-1, 1]."""
    y = torch.randint(0, 2, (n,), generator=g)
    t = torch.arange(64.0) / 64
    freq = torch.where(y == 0, 2.0, 8.0).view(-1, 1)
    phase = torch.rand(n, 1, generator=g) * 6.2832
    amp = 0.5 + 0.4 * torch.rand(n, 1, generator=g)
    return (amp * torch.sin(6.2832 * freq * t + phase)).unsqueeze(1), y


@pytest.mark.slow
def test_guided_toy_model_generates_the_requested_class():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # the machine is shared; 2 spinning threads under contention are far slower
    try:
        _train_and_check_toy_model()
    finally:
        torch.set_num_threads(threads)


def _train_and_check_toy_model():
    # about 40 s on one core: 600 AdamW steps of the tiny preset at batch 64, then 80 guided samples
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    m = build_diffusion(model_cfg(diffusion={"p_uncond": 0.0, "p_uncond_all": 0.2}), 1, 64, [2])
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    ema = EMA(m, decay=0.99)
    m.train()
    for _ in range(600):
        x, y = _toy(64, g)
        loss = m.training_loss(x, y.view(-1, 1), generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(m)
    ema.copy_to(m)
    # nearest-centroid classifier on |FFT| features, fitted on fresh toy data
    xr, yr = _toy(400, g)
    feats = lambda x: torch.fft.rfft(x[:, 0], dim=-1).abs()  # noqa: E731
    cents = torch.stack([feats(xr)[yr == c].mean(0) for c in (0, 1)])
    classify = lambda x: torch.cdist(feats(x), cents).argmin(1)  # noqa: E731
    assert (classify(xr) == yr).float().mean() == 1.0
    want = torch.tensor([0, 1] * 40)
    syn = m.sample(80, want.view(-1, 1), sampler="dpm_solver", steps=20, guidance_scale=3.0, seed=0)
    acc = (classify(syn) == want).float().mean().item()
    assert acc >= 0.9, acc
