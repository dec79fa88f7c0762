"""Training of a learned first stage (VAE, VQ-VAE, VQ-GAN): `train_first_stage(cfg, resume=...)`.

Called by `train.py --stage first_stage` (diffusion/stages.py). The step and hooks of the training engine
(training/engine.py: run folder, resumable checkpoints, clock, log.csv, progress bar, epoch plots), on the
seeded resumable data order (training/data_order.py); it knows the first stage only through the
`LearnedFirstStage` training interface (`loss(x, step)`, `disc_loss(x, step)`, `ae_parameters()`,
`disc_parameters()`).

Writes into `model.first_stage.out_dir`: config.yaml, log.csv (per epoch: training loss, validation loss, and
per channel the RMSE and PRD of reconstructions in physical units on fixed validation-patient windows),
plots/epoch-XXXX.png (originals with their reconstructions drawn over them), checkpoints/ and
first_stage.safetensors (weights + latent scale factor + data description; what diffusion configs load).
Settings: `model.first_stage.train` (steps, batch, lr, crops) and the rest from `train`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from dataloader.config import Config
from dataloader.config.typed import to_dict
from dataloader.errors import UserError
from training.data import channel_desc, open_splits, plot_batch, spread
from training.data_order import WindowOrder
from training.engine import Run, TrainResult, TrainTask, check_fresh, run_training, train_threads
from training.lr_schedule import LRSchedule

from . import build_first_stage
from .files import first_stage_file, save_first_stage_file
from .learned import LearnedFirstStage

# plot_fn(path, original (N, C, L), reconstruction (N, C, L), fs, channels, title=...) in physical units
ReconPlotFn = Callable[..., Any]


def recon_errors(x_phys: np.ndarray, r_phys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel RMSE and PRD (percent root-mean-square difference, 100 sqrt(sum e^2 / sum x^2)) of
    reconstructions r against originals x, both (N, C, L) in physical units -> ((C,), (C,))."""
    e = np.asarray(r_phys, np.float64) - np.asarray(x_phys, np.float64)
    rmse = np.sqrt((e ** 2).mean(axis=(0, 2)))
    prd = 100.0 * np.sqrt((e ** 2).sum(axis=(0, 2)) / np.maximum((np.asarray(x_phys, np.float64) ** 2)
                                                                  .sum(axis=(0, 2)), 1e-12))
    return rmse, prd


def _arch(fc: Any) -> dict[str, Any]:
    """The first-stage section without its `train` part: what a resumed run must share (steps, time caps and
    the like may change on resume, as in the diffusion loop)."""
    return {k: v for k, v in to_dict(fc).items() if k != "train"}


class _StageLoss(torch.nn.Module):
    """Makes the stage's losses the module's forward (so DDP syncs gradients and autocast applies)."""

    def __init__(self, stage: LearnedFirstStage) -> None:
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor, step: int, disc: bool = False) -> dict[str, torch.Tensor]:
        return self.stage.disc_loss(x, step) if disc else self.stage.loss(x, step)


def _crop(x: torch.Tensor, n: Optional[int], gen: torch.Generator) -> torch.Tensor:
    """Random crops of n samples (one offset per window, from `gen`); x (B, C, L) -> (B, C, n)."""
    if n is None or n >= x.shape[-1]:
        return x
    off = torch.randint(0, x.shape[-1] - n + 1, (x.shape[0],), generator=gen, device=gen.device).to(x.device)
    idx = off[:, None] + torch.arange(n, device=x.device)[None]
    return torch.gather(x, 2, idx[:, None, :].expand(-1, x.shape[1], -1))


class FirstStageTask(TrainTask):
    """A learned first stage's step and hooks for training/engine.py (no EMA; log.csv adds per-channel
    reconstruction errors; a stop inside an epoch also validates and logs)."""

    out_key = "model.first_stage.out_dir"
    gen_offset = 43                             # the generator draws the random crops
    log_every_stop = True

    def __init__(self, cfg: Config, acc: Any, threads: int, plot_fn: Optional[ReconPlotFn], prebuilt: Any) -> None:
        fc, tc = cfg.model.first_stage, cfg.train
        self.cfg, self.fc, self.ft, self.tc, self.threads = cfg, fc, fc.train, tc, threads
        self.out, self.plot_fn, self.plot_every = Path(fc.out_dir or ""), plot_fn, tc.plot_every
        self.max_steps, self.epoch_steps, self.max_minutes = fc.train.max_steps, fc.train.epoch_steps, fc.train.max_minutes
        self.desc, self.model_file = f"train {fc.type}", first_stage_file(self.out)
        self.train_ds, self.val_ds = open_splits(cfg, prebuilt.data if prebuilt is not None else None)
        C, L = len(self.train_ds.channels), int(self.train_ds.window_len)
        if prebuilt is not None and prebuilt.model is not None:  # built by the preflight, from the same seed
            stage = prebuilt.model
            torch.set_rng_state(prebuilt.rng)
        else:
            torch.manual_seed(tc.seed)
            stage = build_first_stage(fc, C, L)
        if not isinstance(stage, LearnedFirstStage):
            raise UserError("model.first_stage.type", f"{fc.type!r} has nothing to train")
        if self.ft.crop is not None and self.ft.crop > L:
            raise UserError("model.first_stage.train.crop", f"{self.ft.crop} is longer than the windows ({L} samples)")
        self.stage, self.C = stage, C
        self.names = [str(c["name"]) for c in self.train_ds.channels]
        self.log_columns = ("step", "epoch", "train_loss", "val_loss", "lr", "windows_per_s", "elapsed_s",
                            *[f"rmse_{n}" for n in self.names], *[f"prd_{n}" for n in self.names])
        self.order = WindowOrder(len(self.train_ds), self.ft.batch_size, tc.seed, acc.process_index, acc.num_processes)
        self.scale_order = WindowOrder(len(self.train_ds), self.ft.batch_size, tc.seed + 1)  # fixed latent-scale batches
        self.val_idx = spread(len(self.val_ds), max(1, tc.val_batches) * self.ft.batch_size * acc.num_processes)

    def prepare(self, acc: Any) -> None:
        ft, tc, stage = self.ft, self.tc, self.stage
        opt = torch.optim.AdamW(stage.ae_parameters(), lr=ft.lr, betas=tuple(tc.betas), eps=tc.adam_eps,
                                weight_decay=tc.weight_decay, foreach=True)
        self.d_params = stage.disc_parameters()
        opt_d = torch.optim.AdamW(self.d_params, lr=ft.lr, betas=(0.5, 0.9)) if self.d_params else None  # Esser 2021
        self.loss_module, self.opt = acc.prepare(_StageLoss(stage), opt)
        self.opt_d = acc.prepare(opt_d) if opt_d is not None else None
        self.sched = LRSchedule(self.opt, "cosine", ft.lr, ft.max_steps, ft.warmup_steps, ft.lr / 20,
                                tc.plateau_patience, tc.plateau_factor)

    def check_resume(self, saved: dict[str, Any], ckpt: Path, world: int) -> None:
        if saved.get("first_stage_config") != _arch(self.fc) or saved.get("world_size") != world:
            raise UserError("--resume", f"{ckpt} was trained with another first-stage section or process count")

    def load(self, st: dict[str, Any], rank_tensors: dict[str, torch.Tensor]) -> None:
        self.sched.load_state_dict(st["lr_schedule"])

    def start(self, run: Run) -> str:
        self.batches = self.order.batches(run.st["consumed"])
        self.stage.train()
        d = self.d_params
        return (f"training {self.fc.type} first stage ({sum(p.numel() for p in self.stage.ae_parameters()):,} "
                "parameters" + (f" + {sum(p.numel() for p in d):,} discriminator" if d else "")
                + f") on {run.world} process(es) x {self.threads} thread(s), device {run.acc.device}; "
                f"{len(self.train_ds)} training / {len(self.val_ds)} validation windows of "
                f"{int(self.train_ds.window_len)} samples; step {run.st['step']} -> {self.ft.max_steps}")

    def step(self, run: Run) -> tuple[dict[str, torch.Tensor], int]:
        acc, st = run.acc, run.st
        x = _crop(self.train_ds.get_batch(next(self.batches))[0].to(acc.device), self.ft.crop, run.gen)
        self.sched.apply(st["step"])
        with acc.autocast():
            parts = self.loss_module(x, st["step"])
        acc.backward(parts["loss"])
        if self.tc.grad_clip:
            acc.clip_grad_norm_(self.stage.ae_parameters(), self.tc.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.opt_d is not None:
            with acc.autocast():
                d = self.loss_module(x, st["step"], disc=True)
            if d:
                acc.backward(d["loss"])
                self.opt_d.step()
            self.opt_d.zero_grad(set_to_none=True)
        st["consumed"] += 1
        st["loss_sum"] += float(parts["loss"].detach())
        st["loss_n"] += 1
        return parts, len(x) * run.world

    def postfix(self, losses: dict[str, torch.Tensor]) -> dict[str, str]:
        return {"loss": f"{float(losses['loss'].detach()):.4f}",
                **{k: f"{float(losses[k].detach()):.4f}" for k in ("rec", "ffl", "kl", "perplexity") if k in losses}}

    def epoch_end(self, run: Run, windows_per_s: float) -> tuple[dict[str, Any], str]:
        st, names, C = run.st, self.names, self.C
        val, rmse, prd = self.validate(run) if len(self.val_idx) else (float("nan"), np.full(C, np.nan),
                                                                       np.full(C, np.nan))
        units = [str(c.get("unit", "")) for c in self.train_ds.channels]
        line = (f"epoch {st['epoch']} step {st['step']}: train {st['loss_sum'] / max(1, st['loss_n']):.4f} "
                f"val {val:.4f}; RMSE " + ", ".join(f"{n} {v:.3g} {u}" for n, v, u in zip(names, rmse, units))
                + "; PRD " + ", ".join(f"{n} {v:.3g} %" for n, v in zip(names, prd)))
        return ({"val_loss": val, "lr": self.opt.param_groups[0]["lr"],
                 **{f"rmse_{n}": float(v) for n, v in zip(names, rmse)},
                 **{f"prd_{n}": float(v) for n, v in zip(names, prd)}}, line)

    def validate(self, run: Run) -> tuple[float, np.ndarray, np.ndarray]:
        """(mean loss, RMSE (C,), PRD (C,)) on the fixed validation windows (whole windows; all processes)."""
        acc, stage, C, val_ds, bs = run.acc, self.stage, self.C, self.val_ds, self.ft.batch_size
        stage.eval()
        mine = self.val_idx[run.rank::run.world]
        sums = torch.zeros(2 + 3 * C, dtype=torch.float64, device=acc.device)
        with torch.no_grad():
            for b in range(0, len(mine), bs):
                x, _, _ = val_ds.get_batch(mine[b:b + bs])
                x = x.to(acc.device)
                loss = stage.loss(x, run.st["step"])["loss"]
                xp = torch.as_tensor(val_ds.to_physical(x.cpu()), dtype=torch.float64)
                rp = torch.as_tensor(val_ds.to_physical(stage(x).float().clamp(-1, 1).cpu()), dtype=torch.float64)
                e2 = ((rp - xp) ** 2).sum(dim=(0, 2))
                sums += torch.cat([torch.tensor([float(loss) * len(x), len(x)], dtype=torch.float64), e2,
                                   (xp ** 2).sum(dim=(0, 2)), torch.full((C,), float(xp[:, 0].numel()))]
                                  ).to(acc.device)
        stage.train()
        sums = acc.reduce(sums, reduction="sum").cpu()
        if sums[1] == 0:
            return float("nan"), np.full(C, np.nan), np.full(C, np.nan)
        e2, x2, n = sums[2:2 + C], sums[2 + C:2 + 2 * C], sums[2 + 2 * C:]
        return (float(sums[0] / sums[1]), (e2 / n).sqrt().numpy(), (100 * (e2 / x2.clamp_min(1e-12)).sqrt()).numpy())

    def plot(self, run: Run, epoch: int) -> None:
        fc, stage = self.fc, self.stage
        ds, x, _ = plot_batch(self.val_ds, self.val_idx, self.train_ds, self.tc.plot_samples)
        stage.eval()
        with torch.no_grad():
            r = stage(x.to(run.acc.device)).float().clamp(-1, 1).cpu()
        stage.train()
        self.plot_fn(self.out / "plots" / f"epoch-{epoch:04d}.png", ds.to_physical(x), ds.to_physical(r),
                     self.train_ds.fs, self.train_ds.channels, title=f"step {run.st['step']}: validation windows "
                     f"(black) and their {fc.type} reconstructions (red), factor {fc.factor}")

    def state(self, run: Run) -> dict[str, Any]:
        return dict(world_size=run.world, first_stage_config=_arch(self.fc), lr_schedule=self.sched.state_dict())

    def write_file(self, run: Run, path: Path) -> None:
        stage, ds, device = self.stage, self.train_ds, run.acc.device
        data_desc = {"channels": channel_desc(ds), "fs": float(ds.fs), "window_len": int(ds.window_len)}
        stage.eval()
        with torch.no_grad():
            batches = (ds.get_batch(i)[0].to(device) for _, i in
                       zip(range(self.ft.scale_batches), self.scale_order.batches(0)))
            scale = stage.fit_scale(batches)
        stage.train()
        save_first_stage_file(path, stage.state_dict(), stage.stage_config(), data_desc, scale, run.st["step"],
                              self.cfg.yaml())


def train_first_stage(cfg: Config, *,
                      resume: Optional[str] = None,        # "latest", a checkpoint folder, or None (fresh run)
                      stop_after: Optional[int] = None,    # stop (checkpoint + file) at this step
                      plot_fn: Optional[ReconPlotFn] = None,  # draws the epoch PNGs (train.py passes evaluation's)
                      progress: bool = True,               # tqdm bar on the main process
                      accelerator: Any = None,             # an accelerate.Accelerator; default: a fresh one
                      prebuilt: Any = None,                # diffusion.stages.Prebuilt: what the preflight made
                      ) -> TrainResult:
    """Train `cfg.model.first_stage` on `cfg.data.prepared`; returns how it ended (model_file = the stage file)."""
    from accelerate import Accelerator

    fc, tc = cfg.model.first_stage, cfg.train
    if tc is None:
        raise UserError(cfg.path or "config", "training needs the `train` section")
    acc = accelerator or Accelerator()
    threads = train_threads(tc.threads, acc.num_processes)
    check_fresh(Path(fc.out_dir or ""), resume, "model.first_stage.out_dir",
                "--resume latest, retrain with --retrain, or choose another out_dir")
    task = FirstStageTask(cfg, acc, threads, plot_fn, prebuilt)
    return run_training(task, acc, resume, stop_after, progress)
