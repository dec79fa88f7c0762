"""Roughness of generated windows per sampler (project issue 12): train a tiny model on smooth data, sample
with several samplers, compare mean |x[t+1] - x[t]| with the data's.

    python -m bench.roughness                  # the SWEEP below -> bench/results/roughness.json and .md
    python -m bench.roughness --param eps|v|x0|edm [--schedule linear|cosine|edm] [--steps 2000] [--batch 32]
        [--lr 2e-4] [--ema 0.999] [--n 256] [--clip] [--raw] [--no-head-norm] [--diagnose] [--json OUT.json]
        [--min-snr-gamma G] [--fourier-weight W|auto] [--sigma-data SD] [--p-mean M] [--p-std S]

Data: TimeGAN's Sines (tools/make_sines.py; 5 channels x 24 steps in [0, 1], scaled to [-1, 1] as the
pipeline does), trained in-process with the model's own `training_loss` (AdamW, global-norm clipping 1.0,
EMA with warm-up, as diffusion/train_loop.py) so a run takes about a minute on one thread. Roughness is
reported in [0, 1] units (the benchmark's min-max scale), with and without the final clamp to [-1, 1] that
generate.py applies. `--diagnose` also prints, per noise level, the denoiser's error on real windows and
the share of the added noise it leaves in its estimate (`left`): a denoiser that removes a fixed amount
of noise, whatever the sample's own noise amplitude, leaves a noise floor in every sample.
The training-recipe flags (`model.diffusion` keys min_snr_gamma, fourier_weight, and for --param edm
sigma_data, p_mean, p_std; see diffusion/config.py) go into the model's DiffusionConfig; the
ones given are recorded under "recipe" in the results. EDM is meant with `--param edm --schedule edm`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

SAMPLER_RUNS = (("ddim", 5), ("ddim", 50), ("dpm_solver", 20), ("ddpm", 20), ("ddpm", 200), ("k_euler", 20),
                ("k_dpmpp_2m", 20))
DIAG_STEPS = (999, 600, 400, 200, 100, 50, 10, 0)


def roughness(x: torch.Tensor) -> float:
    """Mean |x[..., t+1] - x[..., t]| of windows in [-1, 1], expressed in [0, 1] units (halved)."""
    return float((x[..., 1:] - x[..., :-1]).abs().mean()) / 2


def spread(x: torch.Tensor) -> float:
    """Diversity: the std across windows of each (channel, time) value, averaged, in [0, 1] units. A model
    that returns the mean window is smooth but has spread 0, so roughness is read together with this."""
    return float(x.std(0).mean()) / 2


def sines_scaled(n: int, seed: int, length: int = 24, channels: int = 5) -> torch.Tensor:
    """(n, C, L) float32 Sines mapped from [0, 1] to [-1, 1] (dataloader/scaling.py with range [0, 1])."""
    from tools.make_sines import sine_windows

    return torch.tensor(sine_windows(n, length, channels, seed) * 2 - 1, dtype=torch.float32)


def build_model(param: str, schedule: str, channels: int, length: int, size: str = "tiny",
                recipe: Optional[dict[str, Any]] = None) -> Any:
    """A DiffusionModel of the `size` preset with the given parameterisation, schedule and `model.diffusion`
    recipe keys (min_snr_gamma, fourier_weight, sigma_data, p_mean, p_std), checked as a config would be."""
    from diffusion.config import ModelConfig
    from dataloader.config.typed import from_dict
    from diffusion.model import build_diffusion

    d = {"schedule": schedule, "parameterization": param, **(recipe or {})}
    mc = from_dict(ModelConfig, {"size": size, "diffusion": d}, "model", "bench.roughness")
    return build_diffusion(mc, channels, length, [])


def train_tiny(model: Any, data: torch.Tensor, steps: int, batch: int, lr: float, ema_decay: float,
               seed: int = 0) -> Any:
    """Train `model` on windows `data` (N, C, L) in place; returns the EMA (weights NOT copied in)."""
    from training.ema import EMA

    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    ema = EMA(model, ema_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)))
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(data), (batch,), generator=g)
        loss = model.training_loss(data[idx], None, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update(model)
    return ema


def sampler_roughness(model: Any, n: int, runs: Sequence[tuple[str, int]] = SAMPLER_RUNS, seed: int = 1,
                      **opts: Any) -> dict[str, dict[str, float]]:
    """{"sampler-steps": {"rough", "rough_clamped", "max_abs"}} of n unconditional samples per run."""
    out = {}
    for name, k in runs:
        x = model.sample(n, None, sampler=name, steps=k, seed=seed, **opts)
        out[f"{name}-{k}"] = {"rough": roughness(x), "rough_clamped": roughness(x.clamp(-1, 1)),
                              "spread": spread(x), "max_abs": float(x.abs().max())}
    return out


@torch.no_grad()
def diagnose(model: Any, x0: torch.Tensor, seed: int = 3) -> list[dict[str, float]]:
    """Per trained timestep t: sigma, RMS error of D(x0 + sigma * eps) and `left`, the per-sample share
    k = <D - x0, eps> / <eps, eps> of the added noise still in the estimate (mean, sd, and its correlation
    with each sample's own noise std: near 1 when the network removes a fixed amount of noise)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    rows = []
    for t in DIAG_STEPS:
        t = min(t, model.schedule.num_steps - 1)
        eps = torch.randn(x0.shape, generator=g)
        s = float(model.schedule.sigmas[t])
        d = model.denoiser(x0 + s * eps, torch.full((len(x0),), s))
        r = d - x0
        k = (r * eps).flatten(1).sum(1) / eps.flatten(1).square().sum(1)
        std = eps.flatten(1).std(1)
        rows.append({"t": t, "sigma": s, "x0_rmse": float(r.square().mean().sqrt()), "left_mean": float(k.mean()),
                     "left_sd": float(k.std()), "left_corr_noise_std": float(np.corrcoef(k, std)[0, 1]),
                     "rough_D": roughness(d)})
    return rows


def run(param: str = "eps", schedule: str = "linear", steps: int = 2000, batch: int = 32, lr: float = 2e-4,
        ema_decay: float = 0.999, n: int = 256, clip: bool = False, raw: bool = False, head_norm: bool = True,
        runs: Sequence[tuple[str, int]] = SAMPLER_RUNS, want_diag: bool = False,
        recipe: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Train on 10,000 Sines windows and measure; returns every number (see module docstring)."""
    torch.set_num_threads(1)
    data = sines_scaled(10000, seed=0)
    torch.manual_seed(0)
    model = build_model(param, schedule, data.shape[1], data.shape[2], recipe=recipe)
    if not head_norm:  # ablation: the output head without its GroupNorm (it removes each window's level/scale)
        model.net.out_norm = torch.nn.Identity()
    t0 = time.time()
    ema = train_tiny(model, data, steps, batch, lr, ema_decay)
    train_s = time.time() - t0
    if not raw:
        ema.copy_to(model)
    if clip:  # static thresholding of the estimate (Ho 2020's clip_denoised): the data lies in [-1, 1]
        plain = model.denoiser
        model.denoiser = lambda *a, **k: plain(*a, **k).clamp(-1, 1)
    opts: dict[str, Any] = {}
    res: dict[str, Any] = {"param": param, "schedule": schedule, "steps": steps, "batch": batch, "lr": lr,
                           "ema": ema_decay, "weights": "raw" if raw else "ema", "clip_denoised": clip,
                           "head_norm": head_norm, **({"recipe": dict(recipe)} if recipe else {}),
                           "train_s": round(train_s, 1), "data_rough": roughness(data), "data_spread": spread(data),
                           "samplers": sampler_roughness(model, n, runs, **opts)}
    if want_diag:
        res["diagnose"] = diagnose(model, sines_scaled(512, seed=9))
    return res


def _print(res: dict[str, Any]) -> None:
    head = {k: v for k, v in res.items() if k not in ("samplers", "diagnose")}
    print(" ".join(f"{k}={v}" for k, v in head.items()))
    for name, r in res["samplers"].items():
        print(f"  {name:<16} rough {r['rough']:.4f} ({r['rough'] / res['data_rough']:.2f} x data)  clamped "
              f"{r['rough_clamped']:.4f}  spread {r['spread']:.4f} ({r['spread'] / res['data_spread']:.2f} x data)  "
              f"max|x| {r['max_abs']:.2f}")
    for r in res.get("diagnose", []):
        print(f"  t={r['t']:4d} sigma={r['sigma']:8.3f} x0 rmse {r['x0_rmse']:.4f} left {r['left_mean']:+.4f} "
              f"+- {r['left_sd']:.4f} corr(left, noise std) {r['left_corr_noise_std']:+.2f} "
              f"rough(D) {r['rough_D']:.4f}")


# the sweep that `python -m bench.roughness` (no --param; bench.run_all) runs: (param, schedule, lr, extra)
SWEEP: tuple[tuple[str, str, float, dict[str, Any]], ...] = (
    ("eps", "linear", 2e-4, {}), ("v", "linear", 2e-4, {}), ("x0", "linear", 2e-4, {}),
    ("eps", "linear", 2e-4, {"clip": True}), ("eps", "linear", 1e-3, {}), ("v", "linear", 1e-3, {}),
    ("v", "linear", 1e-3, {"raw": True}), ("x0", "linear", 1e-3, {}), ("v", "cosine", 1e-3, {}),
    ("x0", "cosine", 1e-3, {}), ("v", "cosine", 1e-3, {"head_norm": False}),
    ("x0", "cosine", 1e-3, {"head_norm": False}))
TABLE_RUNS = ("ddim-5", "ddim-50", "dpm_solver-20", "ddpm-20", "ddpm-200", "k_dpmpp_2m-20")


def _label(r: dict[str, Any]) -> str:
    extra = [k for k, on in (("clip x0", r["clip_denoised"]), ("raw weights", r["weights"] == "raw"),
                             ("no head GN", not r.get("head_norm", True))) if on]
    extra += [f"{k} {v}" for k, v in r.get("recipe", {}).items()]
    return f"{r['param']}, {r['schedule']}, lr {r['lr']:g}" + (f" ({', '.join(extra)})" if extra else "")


def write_results(results: list[dict[str, Any]], out_dir: Path = Path(__file__).parent / "results") -> None:
    """bench/results/roughness.json (every number) and roughness.md (roughness and spread per sampler, as
    multiples of the data's)."""
    out_dir.mkdir(exist_ok=True)
    (out_dir / "roughness.json").write_text(json.dumps(results, indent=1) + "\n")
    head = "| model | " + " | ".join(TABLE_RUNS) + " |"
    lines = ["# Roughness of generated windows (issue 12)", "",
             f"Tiny UNet, {results[0]['steps']} steps of batch {results[0]['batch']} on TimeGAN Sines (5 x 24, "
             f"data roughness {results[0]['data_rough']:.4f}, spread {results[0]['data_spread']:.4f} in [0, 1] "
             "units), EMA weights unless noted, one seed, one thread of a shared 2-core CPU. Cells: roughness "
             "(mean |x[t+1] - x[t]|) / spread (std across windows), each as a multiple of the data's; "
             "no final clamp.", "", head, "|" + "---|" * (len(TABLE_RUNS) + 1)]
    for r in results:
        cells = []
        for k in TABLE_RUNS:
            c = r["samplers"].get(k)
            cells.append("-" if c is None else
                         f"{c['rough'] / r['data_rough']:.2f} / {c['spread'] / r['data_spread']:.2f}")
        lines.append(f"| {_label(r)} | " + " | ".join(cells) + " |")
    (out_dir / "roughness.md").write_text("\n".join(lines) + "\n")


def _fourier_weight(text: str) -> Any:
    """--fourier-weight: a number or auto (as the config key)."""
    return text if text == "auto" else float(text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.roughness", description=__doc__.split("\n\n")[0])
    p.add_argument("--param", default=None, choices=["eps", "v", "x0", "edm"],
                   help="one run with this parameterisation (default: the whole SWEEP into bench/results/)")
    p.add_argument("--schedule", default="linear", choices=["linear", "cosine", "edm"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--n", type=int, default=256, help="samples per sampler")
    p.add_argument("--clip", action="store_true", help="clip the denoised estimate to [-1, 1] while sampling")
    p.add_argument("--raw", action="store_true", help="sample with the trained weights instead of the EMA")
    p.add_argument("--no-head-norm", action="store_true", help="ablation: no GroupNorm before the output conv")
    p.add_argument("--diagnose", action="store_true", help="per-noise-level denoiser errors on real windows")
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.add_argument("--min-snr-gamma", type=float, default=None, help="min-SNR-gamma loss weight (Hang 2023; 5)")
    p.add_argument("--fourier-weight", type=_fourier_weight, default=None,
                   help="weight of Diffusion-TS's Fourier term, or auto = sqrt(L) / 5")
    p.add_argument("--sigma-data", type=float, default=None, help="--param edm: sigma_data (default 0.5)")
    p.add_argument("--p-mean", type=float, default=None, help="--param edm: mean of training ln(sigma) (-1.2)")
    p.add_argument("--p-std", type=float, default=None, help="--param edm: std of training ln(sigma) (1.2)")
    a = p.parse_args(argv)
    recipe = {k: v for k, v in (("min_snr_gamma", a.min_snr_gamma), ("fourier_weight", a.fourier_weight),
                                ("sigma_data", a.sigma_data), ("p_mean", a.p_mean), ("p_std", a.p_std))
              if v is not None}
    if a.param is None:
        results = []
        for param, schedule, lr, extra in SWEEP:
            results.append(run(param, schedule, a.steps, a.batch, lr, a.ema, a.n, want_diag=True, **extra))
            _print(results[-1])
        write_results(results)
        return 0
    res = run(a.param, a.schedule, a.steps, a.batch, a.lr, a.ema, a.n, a.clip, a.raw, not a.no_head_norm,
              want_diag=a.diagnose, recipe=recipe)
    _print(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
