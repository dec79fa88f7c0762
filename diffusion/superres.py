"""Latent super-resolution (docs/design.md section 3): a second diffusion model generates the full-rate latent,
conditioned on the latent of the interpolated coarse signal, concatenated on the channel axis.

    coarse model  (the config's data / model / train)  -> coarse windows at rate fs_c, length L_c
    up-sample by u = fs_f / fs_c (band-limited interpolation) -> (C, L_f = u L_c) at the full rate fs_f
    z_c = E(coarse)    (the SR model's own first stage, `sr.model.first_stage`)
    z   ~ SR diffusion(x | z_c, labels)    UNet input = concat(z_t, z_c) on channels
    x   = D(z)

Training sees exactly that conditioning: a full-rate window x is degraded as the coarse model's output is,
`SamplingFirstStage(r).forward(x)` (anti-aliased decimation by r, sinc interpolation back), where
r = u x k_c and k_c is the coarse first stage's sampling factor (1 for identity): the coarse model's content
lives at fs_c / k_c. The condition is a fixed input, so guidance (labels) and every sampler work unchanged:
the wrapped network repeats the condition when guidance doubles the batch.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import nn

from dataloader.config import Config
from dataloader.errors import UserError
from first_stage import FirstStage, build_first_stage
from first_stage.sampling import SamplingFirstStage

from .loss import DiffusionLoss
from .model import DiffusionModel, required_multiple
from .schedule import NoiseSchedule
from .unet1d import UNet1D


class ConcatConditionNet(nn.Module):
    """A UNet-1D whose input is [x, condition] on the channel axis; the condition (B, C_c, L') is set for a
    block of calls with `conditioned(cond)`. Rows repeat when the batch is a multiple of the condition's
    (classifier-free guidance runs conditional and unconditional halves in one batch)."""

    def __init__(self, unet: UNet1D) -> None:
        super().__init__()
        self.unet = unet
        self._cond: Optional[torch.Tensor] = None

    @property
    def null_index(self) -> torch.Tensor:
        return self.unet.null_index

    def null_labels(self, batch: int) -> torch.Tensor:
        return self.unet.null_labels(batch)

    def check_length(self, length: int) -> None:
        self.unet.check_length(length)

    @contextlib.contextmanager
    def conditioned(self, cond: torch.Tensor) -> Iterator[None]:
        prev, self._cond = self._cond, cond
        try:
            yield
        finally:
            self._cond = prev

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        c = self._cond
        if c is None:
            raise RuntimeError("the SR network needs a condition: call it inside conditioned(cond)")
        if c.shape[0] != x.shape[0]:
            c = c.repeat(x.shape[0] // c.shape[0], 1, 1)
        return self.unet(torch.cat([x, c.to(x.dtype)], dim=1), t, labels)


class SRDiffusionModel(DiffusionModel):
    """The super-resolution model: a DiffusionModel whose network also sees the coarse signal's latent."""

    def __init__(self, *args: Any, degrade_factor: int, interp: str = "sinc", **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.degrade_factor = int(degrade_factor)
        self.degrade = SamplingFirstStage(self.channels, self.length, self.degrade_factor, interp)

    def condition(self, coarse: torch.Tensor) -> torch.Tensor:
        """Full-rate coarse signal (B, C, L) -> its latent (B, C', L'), the condition."""
        return self.encode(coarse)

    def training_loss(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None, **kw: Any) -> torch.Tensor:
        """As DiffusionModel.training_loss, conditioned on the latent of the degraded window x (B, C, L)."""
        with torch.no_grad():
            cond = self.condition(self.degrade(x))
        with self.net.conditioned(cond):
            return super().training_loss(x, labels, **kw)

    def plot_inputs(self, real: torch.Tensor) -> dict[str, Any]:
        """Epoch plots: refine the degraded real windows."""
        with torch.no_grad():
            return {"coarse": self.degrade(real)}

    @torch.no_grad()
    def sample(self, n: int, labels: Any = None, *, coarse: Optional[torch.Tensor] = None,  # type: ignore[override]
               batch_size: Optional[int] = None, start_index: int = 0, **kw: Any) -> Any:
        """Refine `coarse` (n, C, L) full-rate coarse windows -> (n, C, L); other arguments as
        DiffusionModel.sample (window i's noise depends on (seed, start_index + i) only)."""
        if coarse is None or coarse.shape[0] != n or tuple(coarse.shape[1:]) != (self.channels, self.length):
            got = None if coarse is None else tuple(coarse.shape)
            raise UserError("sr", f"the SR model needs coarse windows of shape ({n}, {self.channels}, "
                                  f"{self.length}) (got {got})")
        lab = self.check_labels(labels, n)
        bs = int(batch_size or n or 1)
        outs, infos = [], []
        ret = kw.pop("return_info", False)
        for i in range(0, n, bs):
            j = min(n, i + bs)
            cond = self.condition(coarse[i:j].to(self.device))
            with self.net.conditioned(cond):
                x, info = super().sample(j - i, lab[i:j], batch_size=j - i, start_index=start_index + i,
                                         return_info=True, **kw)
            outs.append(x)
            infos.append(info)
        x = torch.cat(outs) if outs else torch.zeros((0, self.channels, self.length), device=self.device)
        if ret:
            return x, {"nfe": [v for f in infos for v in f["nfe"]], "batches": len(outs)}
        return x


def sr_rates(coarse_fs: float, coarse_cfg: Any, fine_fs: float, coarse_len: int, fine_len: int) -> tuple[int, int]:
    """(u, r): up-sampling factor of the coarse output and the degradation factor of training windows.
    Raises `UserError` when the rates do not divide or the windows do not match."""
    ratio = float(fine_fs) / float(coarse_fs)
    u = int(round(ratio))
    if u < 1 or abs(ratio - u) > 1e-9:
        raise UserError("sr", f"the coarse rate {coarse_fs:g} Hz does not divide the full rate {fine_fs:g} Hz "
                              f"(ratio {ratio:g}); the full rate must be an integer multiple of the coarse rate")
    fs_type = coarse_cfg.first_stage.type
    if fs_type not in ("identity", "sampling"):
        raise UserError("model.first_stage.type", f"the coarse model of an SR config needs an identity or sampling "
                                                  f"first stage (got {fs_type!r})")
    if coarse_len * u != fine_len:
        raise UserError("sr", f"coarse windows of {coarse_len} samples at {coarse_fs:g} Hz up-sample to "
                              f"{coarse_len * u} samples, but the full-rate windows have {fine_len}")
    return u, u * int(coarse_cfg.first_stage.factor)


def coarse_window(cfg: Config) -> tuple[float, int]:
    """(rate, window length) of the coarse model's windows, from the config's data section."""
    from dataloader.windows import window_length

    fs = float(cfg.data.target_fs or cfg.data.fs)
    return fs, window_length(cfg.data, fs)[0]


def build_sr(cfg: Config, channels: int, length: int, label_classes: Sequence[int], fine_fs: float) -> SRDiffusionModel:
    """The SR model of `cfg.sr.model` for full-rate (C, L) windows at `fine_fs`; checks the rates."""
    m = cfg.sr.model
    fs_c, len_c = coarse_window(cfg)
    _, r = sr_rates(fs_c, cfg.model, fine_fs, len_c, length)
    mult = required_multiple(m)
    if length % mult:
        lo = length // mult * mult
        raise UserError("sr.model", f"full-rate window length {length} does not fit the SR model: it needs a multiple "
                                    f"of {mult} (first-stage factor x 2^(UNet levels - 1)); e.g. {lo or mult} or {lo + mult}")
    fs: FirstStage = build_first_stage(m.first_stage, channels, length)
    c_lat, l_lat = fs.latent_shape(channels, length)
    u = m.resolved_unet()
    # the condition (latent of the up-sampled coarse window) is concatenated on the channel axis: 2 C' in, C' out
    unet = UNet1D.from_config(u, 2 * c_lat, c_lat, label_classes)
    unet.check_length(l_lat)
    d = m.diffusion
    schedule = NoiseSchedule.from_config(d)
    interp = cfg.model.first_stage.interp if cfg.model.first_stage.type == "sampling" else "sinc"
    loss = DiffusionLoss.from_config(d, l_lat, label_classes)
    return SRDiffusionModel(fs, ConcatConditionNet(unet), schedule, d.parameterization, loss, channels, length,
                            label_classes, sigma_data=d.sigma_data, degrade_factor=r, interp=interp)


def build_sr_for(cfg: Config) -> Any:
    """train()'s `build` for the SR stage of `cfg` (from diffusion.stages.sr_config). It reads the full rate
    from the prepared file only when called: a run whose model the preflight built never opens it again."""
    def build(_model_cfg: Any, c: int, n: int, labels: Sequence[int]) -> SRDiffusionModel:
        from dataloader.dataset import WindowDataset

        return build_sr(cfg, c, n, labels, float(WindowDataset(cfg.data.prepared, "train").fs))

    return build


def check_sr_config(cfg: Config, fine_fs: float, fine_len: int) -> None:
    """Rates and windows of an SR config (before anything is trained or written)."""
    fs_c, len_c = coarse_window(cfg)
    sr_rates(fs_c, cfg.model, fine_fs, len_c, fine_len)


class SRPipeline:
    """Coarse model + SR model behind one `sample(...)` (generate.py's `generate_file` calls it like a model).

    Both stages use the same sampler, steps, guidance scale and seed (the SR stage draws its noise from
    seed + 1, so the two noise streams differ). `timings` accumulates seconds per stage."""

    def __init__(self, coarse: DiffusionModel, sr: SRDiffusionModel, up: int) -> None:
        self.coarse, self.sr, self.up = coarse, sr, int(up)
        self.upsampler = SamplingFirstStage(sr.channels, sr.length, self.up) if self.up > 1 else None
        self.timings = {"coarse_s": 0.0, "upsample_s": 0.0, "sr_s": 0.0}

    @torch.no_grad()
    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """Coarse windows (B, C, L_c) -> (B, C, u L_c) by band-limited interpolation."""
        return x if self.upsampler is None else self.upsampler.decode(x)

    @torch.no_grad()
    def sample(self, n: int, labels: Any = None, *, seed: int = 0, **kw: Any) -> torch.Tensor:
        """n full-rate windows (n, C, L_f); arguments as DiffusionModel.sample."""
        kw.pop("return_info", None)
        t0 = time.perf_counter()
        x_c = self.coarse.sample(n, labels, seed=seed, **kw)
        t1 = time.perf_counter()
        coarse = self.upsample(x_c.clamp(-1, 1))
        t2 = time.perf_counter()
        x = self.sr.sample(n, labels, coarse=coarse, seed=seed + 1, **kw)
        t3 = time.perf_counter()
        self.timings["coarse_s"] += t1 - t0
        self.timings["upsample_s"] += t2 - t1
        self.timings["sr_s"] += t3 - t2
        return x


def check_sr_file(cfg: Config, coarse_meta: Any) -> str:
    """generate.py, before anything is written: the SR model file of `cfg` exists and fits the coarse model
    (channels, labels, rates, windows). Returns its path."""
    from pathlib import Path

    from .checkpoint import read_model_meta

    path = str(Path(cfg.sr.train.out_dir) / "model.safetensors")
    meta = read_model_meta(path, where="sr.train.out_dir")
    if meta.data.channel_names != coarse_meta.data.channel_names:
        raise UserError(path, f"SR model channels {meta.data.channel_names} differ from the coarse model's "
                              f"{coarse_meta.data.channel_names}")
    if meta.data.label_classes != coarse_meta.data.label_classes:
        raise UserError(path, "the SR model was trained with other label columns than the coarse model")
    sr_rates(coarse_meta.data.fs, coarse_meta.config.model, meta.data.fs, coarse_meta.data.window_len,
             meta.data.window_len)
    return path


def load_sr_pipeline(coarse_path: str, sr_path: str, cfg: Config, device: Any) -> tuple[SRPipeline, Any]:
    """(pipeline, metadata of the full-rate output) for generate.py; the metadata's sha256 covers both files."""
    import dataclasses
    import hashlib

    from .checkpoint import load_model_file

    coarse, cmeta = load_model_file(coarse_path, cfg, device)
    sr, smeta = load_model_file(sr_path, None, device, build=lambda m: build_sr(
        m.config, len(m.data.channels), m.data.window_len, m.data.label_classes, m.data.fs))
    up, _ = sr_rates(cmeta.data.fs, cmeta.config.model, smeta.data.fs, cmeta.data.window_len, smeta.data.window_len)
    both = hashlib.sha256((cmeta.sha256 + smeta.sha256).encode()).hexdigest()
    return SRPipeline(coarse, sr, up), dataclasses.replace(smeta, sha256=both)
