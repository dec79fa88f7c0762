"""Training of the GAN / VAE baselines: `train(cfg, resume=...)`, called by train.py when model.type is not
"diffusion". The step and hooks of the training engine (training/engine.py), like diffusion/train_loop.py:

- data: the prepared file's train split in the order of training/data_order.py (a pure function of (seed,
  micro-batch number), so the position is one integer), fixed validation windows with fixed noise;
- each step is one step of the model's own algorithm (`Baseline.train_step`: several critic updates for
  WGAN-GP, three phases for TimeGAN); its optimizers (Adam from train.lr / betas / adam_eps / weight_decay)
  follow train.lr_schedule (training/lr_schedule.py), gradients are clipped at train.grad_clip;
- EMA of all weights (training/ema.py); the model file holds the EMA, as for diffusion;
- each epoch (train.epoch_steps): a log.csv row (training/train_log.py; train_loss = the model's first loss,
  e.g. the generator loss; val_loss = its `validation_loss`), a PNG of fixed-seed EMA samples beside real
  validation windows (plot_fn), a resumable checkpoint (training/train_state.py: accelerate's state of the
  model and every optimizer, EMA, LR schedules, RNG, data position) and model.safetensors with the same
  metadata as a diffusion model (training/model_file.py);
- train.max_minutes / stop_after stop at a step boundary with a checkpoint; resume is exact (the model draws
  every random number from one checkpointed torch.Generator).
One process only: the GAN updates (alternating optimizers, double backward of the gradient penalty) are not
written for DistributedDataParallel; the baselines are small enough for one device.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch

from dataloader.config import Config
from baselines.config import BaselineConfig
from dataloader.config.typed import to_dict
from dataloader.errors import UserError
from training.data import epoch_steps_for, label_titles, plot_batch, spread, training_data, val_generator
from training.engine import Run, TrainResult, TrainTask, check_fresh, ema_weights, run_training, train_threads
from training.lr_schedule import LRSchedule
from training.model_file import save_model_file

from . import build_baseline


def _model_config(cfg: Config) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it: the model section and its baseline part."""
    section = cfg.get("baseline") or BaselineConfig()
    return {"model": to_dict(cfg.model), "baseline": to_dict(getattr(section, cfg.model.type))}


# plot_fn(path, synthetic (M, C, L), fs, channels, real=(N, C, L), synthetic_titles=..., real_titles=..., title=...)
PlotFn = Callable[..., Any]


class BaselineTask(TrainTask):
    """A GAN / VAE baseline's step (`Baseline.train_step`) and hooks for training/engine.py (one process)."""

    sync_stop = False                           # one process: no trigger needed

    def __init__(self, cfg: Config, acc: Any, threads: int, plot_fn: Optional[PlotFn]) -> None:
        tc = self.tc = cfg.train
        self.cfg, self.out, self.threads, self.plot_fn, self.plot_every = cfg, Path(tc.out_dir), threads, plot_fn, \
            tc.plot_every
        self.max_steps, self.max_minutes, self.first_state = tc.max_steps, tc.max_minutes, {"val_loss": None}
        self.desc, self.model_file = f"train {cfg.model.type}", self.out / "model.safetensors"
        self.data = training_data(cfg)  # all training patients, or train.patients
        train_ds = self.data.train
        self.epoch_steps = epoch_steps_for(cfg, len(train_ds), 1)
        torch.manual_seed(tc.seed)  # the same initial weights in every rerun
        self.model = build_baseline(cfg, len(train_ds.channels), int(train_ds.window_len),
                                    list(train_ds.label_classes))
        self.val_idx = spread(len(self.data.val), tc.val_batches * tc.batch_size)
        self.losses: dict[str, float] = {}

    def prepare(self, acc: Any) -> None:
        tc = self.tc
        opts = self.model.make_optimizers(tc)
        prepared = acc.prepare(self.model, *opts.values())
        self.model, self.opts = prepared[0], dict(zip(opts, prepared[1:]))
        self.ema_model = self.model
        self.scheds = {k: LRSchedule(o, tc.lr_schedule, tc.lr, tc.max_steps, tc.warmup_steps, tc.lr_min,
                                     tc.plateau_patience, tc.plateau_factor) for k, o in self.opts.items()}

    def check_resume(self, saved: dict[str, Any], ckpt: Path, world: int) -> None:
        if saved.get("model_config") != _model_config(self.cfg) or saved["manifest_sha256"] != self.data.spec.manifest_sha256:
            raise UserError("--resume", f"{ckpt} was trained with another model / baseline section or other "
                                        "data; use its config.yaml")

    def load(self, st: dict[str, Any], rank_tensors: dict[str, torch.Tensor]) -> None:
        for k, s in self.scheds.items():
            s.load_state_dict(st["lr_schedules"][k])

    def start(self, run: Run) -> str:
        batches, st, acc, ds = self.data.order.batches(run.st["consumed"]), run.st, run.acc, self.data.train

        def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
            """The next training batch (B, C, L), (B, n_labels) on the device; counted for exact resume."""
            x, y, _ = ds.get_batch(next(batches))
            st["consumed"] += 1
            return x.to(acc.device), y.to(acc.device)

        self.next_batch = next_batch
        self.model.train()
        return (f"training {self.cfg.model.type}: {sum(p.numel() for p in self.model.parameters()):,} parameters, "
                f"{self.threads} thread(s), device {acc.device}; {len(ds)} training / {len(self.data.val)} "
                f"validation windows; {self.epoch_steps} steps per epoch; step {st['step']} -> {self.tc.max_steps}")

    def step(self, run: Run) -> tuple[dict[str, float], int]:
        st, consumed = run.st, run.st["consumed"]
        for s in self.scheds.values():
            s.apply(st["step"])
        self.losses = self.model.train_step(self.next_batch, st["step"], self.opts, run.gen, self.tc.grad_clip)
        st["loss_sum"] += next(iter(self.losses.values()))
        st["loss_n"] += 1
        return self.losses, (st["consumed"] - consumed) * self.tc.batch_size

    def postfix(self, losses: dict[str, float]) -> dict[str, str]:
        return {k: f"{v:.4f}" for k, v in losses.items()}

    def epoch_end(self, run: Run, windows_per_s: float) -> tuple[dict[str, Any], str]:
        st = run.st
        val = self.validate(run) if len(self.val_idx) else float("nan")
        for s in self.scheds.values():
            s.observe(val)
        st["val_loss"] = val
        lr = next(iter(self.opts.values())).param_groups[0]["lr"]
        line = (f"epoch {st['epoch']} step {st['step']} ({self.model.phase(st['step'] - 1)}): "
                + " ".join(f"{k} {v:.4f}" for k, v in self.losses.items())
                + f" | train {st['loss_sum'] / max(1, st['loss_n']):.4f} val {val:.4f} lr {lr:.2e} "
                  f"{windows_per_s:.1f} windows/s")
        return {"val_loss": val, "lr": lr}, line

    def validate(self, run: Run) -> float:
        """Mean validation loss over the fixed validation windows, fixed noise per window batch."""
        model, tc, device = self.model, self.tc, run.acc.device
        model.eval()
        tot, n = 0.0, 0
        with torch.no_grad():
            for b in range(0, len(self.val_idx), tc.batch_size):
                idx = self.val_idx[b:b + tc.batch_size]
                x, y, _ = self.data.val.get_batch(idx)
                g = val_generator(tc.seed, idx[0], device)
                tot += float(model.validation_loss(x.to(device), y.to(device), g)) * len(idx)
                n += len(idx)
        model.train()
        return tot / n if n else float("nan")

    def plot(self, run: Run, epoch: int) -> None:
        model, spec, d = self.model, self.data.spec, self.data
        ds, x, y = plot_batch(d.val, self.val_idx, d.train, self.tc.plot_samples)
        with torch.random.fork_rng(devices=[]), ema_weights(model, run.ema):  # plots never touch training RNG
            syn = model.sample(len(y), y.to(run.acc.device), seed=self.tc.seed)
        model.train()
        titles = label_titles(y, spec)
        self.plot_fn(self.out / "plots" / f"epoch-{epoch:04d}.png", ds.to_physical(syn), spec.fs, spec.channels,
                     real=ds.to_physical(x), synthetic_titles=titles if model.conditional else ["unconditional"] * len(y),
                     real_titles=titles, title=f"step {run.st['step']}: {self.cfg.model.type} EMA samples beside "
                                               "real validation windows")

    def state(self, run: Run) -> dict[str, Any]:
        return dict(world_size=1, model_config=_model_config(self.cfg), manifest_sha256=self.data.spec.manifest_sha256,
                    lr_schedules={k: s.state_dict() for k, s in self.scheds.items()}, epoch_steps=self.epoch_steps)

    def write_file(self, run: Run, path: Path) -> None:
        with ema_weights(self.model, run.ema):
            save_model_file(path, self.model.state_dict(), self.cfg.yaml(), self.data.spec, run.st["step"])


def train(cfg: Config, *,
          resume: Optional[str] = None,          # "latest", a checkpoint folder, or None (fresh run, empty out_dir)
          stop_after: Optional[int] = None,      # stop (checkpoint + model file) at this step; for time-boxed jobs/tests
          plot_fn: Optional[PlotFn] = None,      # draws the epoch PNGs (train.py passes evaluation.sample_grid's)
          progress: bool = True,                 # tqdm bar
          on_step: Optional[Callable[[int], None]] = None,  # called with the step after each step (benchmarks)
          accelerator: Any = None,               # an accelerate.Accelerator; default: a new one
          ) -> TrainResult:
    """Train the baseline `cfg.model.type` on `cfg.data.prepared` as `cfg.train` says; returns how it ended."""
    from accelerate import Accelerator

    tc = cfg.train
    if tc is None or cfg.get("model") is None:
        raise UserError(cfg.path or "config", "training needs the `model` and `train` sections")
    acc = accelerator or Accelerator()
    if acc.num_processes > 1:
        raise UserError("model.type", f"the {cfg.model.type} baseline trains in one process; run it with "
                                      "python train.py (not with several processes)")
    threads = train_threads(tc.threads, 1)
    check_fresh(Path(tc.out_dir), resume, "train.out_dir", "--resume latest or choose another train.out_dir")
    if getattr(tc, "dp", None) is not None:
        raise UserError("train.dp", f"differentially private training is implemented for the diffusion models, "
                                    f"not for the {cfg.model.type} baseline")
    task = BaselineTask(cfg, acc, threads, plot_fn)
    return run_training(task, acc, resume, stop_after, progress, on_step)


def train_baseline(cfg: Config, stage: str = "all", *, retrain: bool = False, resume: Optional[str] = None,
                   plot_fns: Optional[dict[str, Callable[..., Any]]] = None, progress: bool = True) -> list[TrainResult]:
    """train.py's entry for a baseline (training.MODEL_KINDS): one run, so `stage` and `retrain` do not apply;
    plot_fns["samples"] draws the epoch plots."""
    return [train(cfg, resume=resume, plot_fn=(plot_fns or {}).get("samples"), progress=progress)]
