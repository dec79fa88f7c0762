"""Training-recipe options (issue 12, point 2): min-SNR-gamma weighting, Diffusion-TS's Fourier term, EDM."""
from __future__ import annotations

import json
import math

import pytest
import torch

from diffusion.config import ModelConfig
from dataloader.config.typed import from_dict
from dataloader.errors import UserError
from diffusion.loss import L1Loss, L2Loss, draw_noise_levels, fourier_loss, min_snr_weight, resolve_fourier_weight
from diffusion.model import build_diffusion
from diffusion.precond import EDM_LEVEL_SCALE, Denoiser
from diffusion.samplers import list_samplers
from diffusion.schedule import NoiseSchedule


def model_cfg(**diffusion) -> ModelConfig:
    diffusion.setdefault("min_snr_gamma", None)  # each option off unless a test turns it on (the default is 5)
    return from_dict(ModelConfig, {"size": "tiny", "diffusion": diffusion}, "model", "test.yaml")


def tiny(seed: int = 0, channels: int = 2, length: int = 16, **diffusion):
    """A tiny model with randomised weights (the zero-initialised output conv would make F = 0)."""
    torch.manual_seed(seed)
    m = build_diffusion(model_cfg(**diffusion), channels, length, [])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m.eval()


def batch(n: int = 4, channels: int = 2, length: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, length, generator=g).clamp(-1, 1)


# ---- min-SNR-gamma -----------------------------------------------------------------------------------------
# (sigma, {param: weight}) from the paper's formulas with gamma = 5, SNR = 1 / sigma^2, worked by hand
KNOWN = [(0.1, {"eps": 5 / 100, "v": 5 / 101, "x0": 5.0}),      # SNR 100: clipped at gamma
         (1.0, {"eps": 1.0, "v": 0.5, "x0": 1.0}),              # SNR 1
         (2.0, {"eps": 1.0, "v": 0.25 / 1.25, "x0": 0.25})]     # SNR 0.25


@pytest.mark.parametrize("param", ["eps", "v", "x0"])
def test_min_snr_weight_known_values(param: str) -> None:
    d = Denoiser(lambda *a: None, NoiseSchedule(), param)
    sigma = torch.tensor([s for s, _ in KNOWN], dtype=torch.float64)
    c_out = d.scalings(sigma, torch.zeros(3, 1, 1, dtype=torch.float64))[1]
    got = min_snr_weight(sigma, c_out, 5.0)
    assert got.tolist() == pytest.approx([w[param] for _, w in KNOWN], rel=1e-12)


def test_min_snr_weight_for_edm_is_the_x0_weight_times_c_out_squared() -> None:
    d = Denoiser(lambda *a: None, NoiseSchedule("edm"), "edm", sigma_data=0.5)
    sigma = torch.tensor([1.0, 0.01], dtype=torch.float64)
    c_out = d.scalings(sigma, torch.zeros(2, 1, 1, dtype=torch.float64))[1]
    # sigma 1: SNR 1, c_out^2 = 0.25 / 1.25; sigma 0.01: SNR 1e4 -> 5, c_out^2 = 1e-4 * 0.25 / (1e-4 + 0.25)
    expect = [0.2, 5 * 1e-4 * 0.25 / (1e-4 + 0.25)]
    assert min_snr_weight(sigma, c_out, 5.0).tolist() == pytest.approx(expect, rel=1e-12)


@pytest.mark.parametrize("param", ["eps", "v", "x0"])
def test_min_snr_loss_is_the_weighted_per_sample_loss(param: str) -> None:
    plain, weighted = tiny(parameterization=param), tiny(parameterization=param, min_snr_gamma=5.0)
    x, t = batch(), torch.tensor([0, 50, 400, 999])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    a = plain.training_loss(x, t=t, noise=noise, reduction="none")
    b = weighted.training_loss(x, t=t, noise=noise, reduction="none")
    snr = 1 / plain.schedule.sigmas[t] ** 2
    paper = {"eps": snr.clamp(max=5) / snr, "v": snr.clamp(max=5) / (snr + 1), "x0": snr.clamp(max=5)}[param]
    torch.testing.assert_close(b, a * paper.float(), rtol=1e-5, atol=0)
    assert not torch.allclose(a, b)  # the weight is not 1 at these steps
    assert float(weighted.training_loss(x, t=t, noise=noise)) == pytest.approx(float(b.mean()), rel=1e-6)


# ---- Fourier term ------------------------------------------------------------------------------------------
def test_fourier_term_zero_positive_and_differentiable() -> None:
    x0 = batch(3, 2, 12)
    assert fourier_loss(x0.clone(), x0, L1Loss().distance).abs().max() == 0
    x0_hat = (x0 + 0.1 * batch(3, 2, 12, seed=5)).requires_grad_(True)
    per = fourier_loss(x0_hat, x0, L1Loss().distance)
    assert per.shape == (3,) and bool((per > 0).all())
    per.sum().backward()
    assert x0_hat.grad is not None and torch.isfinite(x0_hat.grad).all() and x0_hat.grad.abs().sum() > 0


def test_fourier_term_hand_computed() -> None:
    """x = [1, 2, 0, -1] against 0, L = 4, norm "forward": X = [0.5, 0.25 - 0.75i, 0, 0.25 + 0.75i];
    l1: sum over the 4 bins of |Re| + |Im| = 0.5 + 1 + 0 + 1 = 2.5, mean 0.625; l2: (0.25 + 0.625 + 0 + 0.625) / 4."""
    x = torch.tensor([[[1.0, 2.0, 0.0, -1.0]]])
    assert float(fourier_loss(x, torch.zeros_like(x), L1Loss().distance)) == pytest.approx(0.625)
    assert float(fourier_loss(x, torch.zeros_like(x), L2Loss().distance)) == pytest.approx(1.5 / 4)


@pytest.mark.parametrize("length", [7, 8])
@pytest.mark.parametrize("loss", [L1Loss(), L2Loss()])
def test_fourier_term_equals_diffusion_ts_full_fft(length: int, loss) -> None:
    """The rfft with doubled interior bins equals Diffusion-TS's form: full FFT, norm forward, mean over all
    (channel, bin) of d(Re) + d(Im). Odd and even L (the Nyquist bin is counted once)."""
    a, b = batch(3, 2, length, seed=3), batch(3, 2, length, seed=4)
    fa, fb = torch.fft.fft(a, norm="forward"), torch.fft.fft(b, norm="forward")
    ref = (loss.distance(fa.real, fb.real) + loss.distance(fa.imag, fb.imag)).flatten(1).mean(1)
    torch.testing.assert_close(fourier_loss(a, b, loss.distance), ref, rtol=1e-5, atol=1e-7)


def test_fourier_term_mask() -> None:
    x0 = batch(2, 1, 8)
    x0_hat = x0.clone()
    x0_hat[:, :, 3] += 1.0                         # the only error sits at sample 3
    w = torch.ones(2, 1, 8)
    plain = fourier_loss(x0_hat, x0, L1Loss().distance)
    torch.testing.assert_close(fourier_loss(x0_hat, x0, L1Loss().distance, w), plain)
    w[0, :, 3] = 0                                 # a gap over the error: nothing left in sample 0
    w[1, :, 4:] = 0                                # half of sample 1 weighted out, error kept: / mean weight
    got = fourier_loss(x0_hat, x0, L1Loss().distance, w)
    assert float(got[0]) == 0
    assert float(got[1]) == pytest.approx(float(plain[1]) / 0.5, rel=1e-5)
    assert float(fourier_loss(x0_hat, x0, L1Loss().distance, torch.zeros(2, 1, 8))[0]) == 0


@pytest.mark.parametrize("param", ["eps", "v", "x0", "edm"])
def test_training_loss_adds_the_fourier_term_of_the_denoised_estimate(param: str) -> None:
    """loss(fourier_weight=0.7) - loss(0) = 0.7 * fourier(D(x0 + sigma * eps), x0), D the sampling denoiser:
    the network output is converted to the x0 estimate with the same scalings sampling uses."""
    sched = "edm" if param == "edm" else "linear"
    plain = tiny(parameterization=param, schedule=sched)
    four = tiny(parameterization=param, schedule=sched, fourier_weight=0.7)
    x, t = batch(), torch.tensor([3, 100, 500, 900])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    diff = four.training_loss(x, t=t, noise=noise, reduction="none") - \
        plain.training_loss(x, t=t, noise=noise, reduction="none")
    sigma = plain.schedule.sigma_at(t)
    with torch.no_grad():
        d = plain.denoiser(x + sigma[:, None, None] * noise, sigma)
    expect = 0.7 * fourier_loss(d, x, L2Loss().distance)
    assert bool((expect > 0).all())
    torch.testing.assert_close(diff.detach(), expect, rtol=2e-3, atol=1e-6)


def test_fourier_weight_auto_and_config_errors() -> None:
    assert resolve_fourier_weight("auto", 24) == pytest.approx(math.sqrt(24) / 5)
    assert tiny(length=64, fourier_weight="auto").loss.fourier_weight == pytest.approx(math.sqrt(64) / 5)
    with pytest.raises(UserError, match="fourier_weight.*expected float or 'auto'"):
        model_cfg(fourier_weight="sometimes")
    with pytest.raises(UserError, match="fourier_weight.*must be >= 0"):
        model_cfg(fourier_weight=-1.0)
    with pytest.raises(UserError, match="min_snr_gamma.*must be > 0"):
        model_cfg(min_snr_gamma=0.0)
    with pytest.raises(UserError, match="sigma_min.*must be < sigma_max"):
        model_cfg(schedule="edm", sigma_min=90.0)


# ---- EDM ---------------------------------------------------------------------------------------------------
def test_edm_schedule_table() -> None:
    s = NoiseSchedule("edm", 1000, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    assert s.sigma_min == pytest.approx(0.002, rel=1e-12) and s.sigma_max == pytest.approx(80.0, rel=1e-12)
    mid = (0.002 ** (1 / 7) + 500 / 999 * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7   # Karras 2022 eq. 5
    assert float(s.sigmas[500]) == pytest.approx(mid, rel=1e-12)
    torch.testing.assert_close(s.alphas_cumprod, 1 / (1 + s.sigmas**2))
    # the betas are those of a chain visiting these alpha-bars (what the ddpm sampler's posterior assumes)
    torch.testing.assert_close(torch.cumprod(1 - s.betas, 0), s.alphas_cumprod, rtol=1e-10, atol=0)
    t = torch.tensor([0, 1, 10, 500, 999])
    assert torch.allclose(s.sigma_to_t(s.sigmas[t]), t.double(), atol=1e-6)


def test_edm_preconditioning_identities() -> None:
    sd = 0.5
    d = Denoiser(lambda *a: None, NoiseSchedule("edm"), "edm", sigma_data=sd)
    x = torch.zeros(4, 1, 1, dtype=torch.float64)
    sigma = torch.tensor([1e-6, 0.5, 2.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in = (c.flatten() for c in d.scalings(sigma, x))
    # sigma = sigma_data: c_skip = 1/2, c_out = sigma sd / sqrt(sigma^2 + sd^2) = 0.25 / sqrt(0.5), c_in = sqrt(2)
    assert (float(c_skip[1]), float(c_out[1]), float(c_in[1])) == pytest.approx((0.5, 0.25 / math.sqrt(0.5),
                                                                                 1 / math.sqrt(0.5)))
    torch.testing.assert_close(c_skip + c_out**2 / sd**2, torch.ones(4, dtype=torch.float64))  # unit-variance target
    torch.testing.assert_close(c_in**2 * (sigma**2 + sd**2), torch.ones(4, dtype=torch.float64))  # unit-variance input
    # D(x; sigma) -> x as sigma -> 0, whatever the network says
    d.net = lambda x_in, level, y: 100 * torch.randn_like(x_in)
    xs = batch(2, 2, 8).double()
    assert (d(xs, torch.full((2,), 1e-9, dtype=torch.float64)) - xs).abs().max() < 1e-5
    # a network that returns the target recovers x0 at every sigma
    x0, eps, s = batch(4, 2, 8).double(), batch(4, 2, 8, seed=7).double(), sigma
    d.net = lambda x_in, level, y: d.target(x0, eps, s)
    torch.testing.assert_close(d(x0 + s[:, None, None] * eps, s), x0, atol=1e-9 * 80, rtol=1e-9)


def test_edm_with_sigma_data_one_is_v_with_the_sign_of_f_flipped() -> None:
    sch = NoiseSchedule("linear")
    x = torch.zeros(3, 1, 1, dtype=torch.float64)
    sigma = torch.tensor([0.05, 1.0, 30.0], dtype=torch.float64)
    e, v = Denoiser(None, sch, "edm", sigma_data=1.0), Denoiser(None, sch, "v")
    (ea, eb, ec), (va, vb, vc) = e.scalings(sigma, x), v.scalings(sigma, x)
    torch.testing.assert_close((ea, eb, ec), (va, -vb, vc))
    x0, eps = batch(3, 2, 4).double(), batch(3, 2, 4, seed=8).double()
    torch.testing.assert_close(e.target(x0, eps, sigma), -v.target(x0, eps, sigma))


def test_edm_noise_input_is_c_noise_mapped_onto_the_timestep_range() -> None:
    sch = NoiseSchedule("edm")
    d = Denoiser(None, sch, "edm")
    sig = torch.tensor([0.002, math.sqrt(0.002 * 80), 80.0, 1.0])
    lvl = d.noise_level(sig)
    assert lvl[:3].tolist() == pytest.approx([0.0, EDM_LEVEL_SCALE / 2, EDM_LEVEL_SCALE], abs=1e-3)
    c_noise = sig.double().log() / 4     # EDM's c_noise, affine to our input
    lo, hi = math.log(0.002) / 4, math.log(80) / 4
    assert lvl.double().tolist() == pytest.approx((EDM_LEVEL_SCALE * (c_noise - lo) / (hi - lo)).tolist(), abs=1e-3)


def test_edm_training_sigmas_are_log_normal() -> None:
    g = torch.Generator().manual_seed(0)
    n = 40000
    t, sigma = draw_noise_levels(NoiseSchedule("edm"), "edm", n, g, torch.device("cpu"), p_mean=-1.2, p_std=1.2)
    ls = sigma.double().log()
    assert t is None
    assert float(ls.mean()) == pytest.approx(-1.2, abs=4 * 1.2 / math.sqrt(n))
    assert float(ls.std()) == pytest.approx(1.2, rel=0.02)
    # and training_loss feeds the network exactly these sigmas (seen through its noise input)
    m = tiny(parameterization="edm", schedule="edm")
    seen = {}
    real = m.net.forward

    def spy(x: torch.Tensor, level: torch.Tensor, labels=None) -> torch.Tensor:
        seen["level"] = level
        return real(x, level, labels)

    m.net.forward = spy
    m.training_loss(batch(), generator=torch.Generator().manual_seed(5))
    _, expect = draw_noise_levels(m.schedule, "edm", 4, torch.Generator().manual_seed(5), torch.device("cpu"))
    torch.testing.assert_close(seen["level"], m.precond.noise_level(expect))


def test_edm_loss_is_lambda_times_the_x0_error() -> None:
    """EDM's loss.py: lambda(sigma) ||D(x0 + n) - x0||^2, lambda = (sigma^2 + sd^2) / (sigma sd)^2."""
    m = tiny(parameterization="edm", schedule="edm", sigma_data=0.5)
    x, t = batch(), torch.tensor([10, 300, 600, 990])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    got = m.training_loss(x, t=t, noise=noise, reduction="none")
    s = m.schedule.sigma_at(t)
    with torch.no_grad():
        err = (m.denoiser(x + s[:, None, None] * noise, s) - x).square().flatten(1).mean(1)
    lam = (s**2 + 0.25) / (s * 0.5) ** 2
    torch.testing.assert_close(got.detach(), lam * err, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("name", list_samplers())
def test_every_sampler_runs_on_an_edm_model(name: str) -> None:
    m = tiny(parameterization="edm", schedule="edm", num_steps=100)
    x = m.sample(2, None, sampler=name, steps=4, seed=0)
    assert x.shape == (2, 2, 16) and bool(torch.isfinite(x).all())


def test_a_tiny_edm_model_learns_a_toy_gaussian() -> None:
    """Data x0 = a * pattern, a ~ N(0, 0.5^2) (a Gaussian on a line): the loss on a fixed batch at fixed
    log-normal training draws falls below half in 150 steps (measured 0.84 -> 0.22)."""
    torch.manual_seed(0)
    m = build_diffusion(model_cfg(parameterization="edm", schedule="edm"), 1, 16, [])
    g = torch.Generator().manual_seed(0)
    pattern = torch.sin(torch.linspace(0, 2 * math.pi, 16))
    data = 0.5 * torch.randn(512, 1, 1, generator=g) * pattern
    ev_x = data[:64].repeat(4, 1, 1)

    def ev() -> float:   # the same sigmas and noise every time: one seed
        with torch.no_grad():
            return float(m.training_loss(ev_x, generator=torch.Generator().manual_seed(123)))

    before = ev()
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    m.train()
    for _ in range(150):
        loss = m.training_loss(data[torch.randint(0, 512, (32,), generator=g)], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = ev()
    assert after < 0.5 * before, (before, after)


def test_roughness_bench_takes_the_recipe_flags(tmp_path) -> None:
    from bench.roughness import main

    out = tmp_path / "r.json"
    main(["--param", "edm", "--schedule", "edm", "--min-snr-gamma", "5", "--fourier-weight", "auto",
          "--sigma-data", "0.7", "--steps", "2", "--n", "2", "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["recipe"] == {"min_snr_gamma": 5.0, "fourier_weight": "auto", "sigma_data": 0.7}
    assert set(r["samplers"]) and all(math.isfinite(v["rough"]) for v in r["samplers"].values())
