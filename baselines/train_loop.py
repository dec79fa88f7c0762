"""Training of the GAN / VAE baselines: `train(cfg, resume=...)`, called by train.py when model.type is not
"diffusion". Same data, outputs and guarantees as diffusion/train_loop.py, from the same parts:

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

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from dataloader.atomic import write_text_atomic
from dataloader.config import Config
from dataloader.config.baseline_schema import BaselineConfig
from dataloader.config.typed import to_dict
from dataloader.errors import UserError
from training.model_file import save_model_file
from training.ema import EMA
from training.lr_schedule import LRSchedule
from training.train_log import TrainLog
from diffusion.train_loop import (PlotFn, TrainResult, ema_weights, epoch_steps_for, label_titles, stop_now,
                                  train_threads, training_data)
from training.train_state import (claim_run, find_checkpoint, list_checkpoints, load_checkpoint, read_state,
                                   save_checkpoint)

from .base import build_baseline


def _model_config(cfg: Config) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it: the model section and its baseline part."""
    section = cfg.get("baseline") or BaselineConfig()
    return {"model": to_dict(cfg.model), "baseline": to_dict(getattr(section, cfg.model.type))}


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
    from tqdm.auto import tqdm

    tc = cfg.train
    if tc is None or cfg.get("model") is None:
        raise UserError(cfg.path or "config", "training needs the `model` and `train` sections")
    acc = accelerator or Accelerator()
    if acc.num_processes > 1:
        raise UserError("model.type", f"the {cfg.model.type} baseline trains in one process; run it with "
                                      "python train.py (not with several processes)")
    threads = train_threads(tc.threads, 1)
    out = Path(tc.out_dir)
    ckpt = find_checkpoint(out, resume) if resume else None
    if ckpt is None and list_checkpoints(out):
        raise UserError("train.out_dir", f"{out} already holds checkpoints; continue with --resume latest "
                                         "or choose another train.out_dir")
    # ---- data --------------------------------------------------------------------------------
    if getattr(tc, "dp", None) is not None:
        raise UserError("train.dp", f"differentially private training is implemented for the diffusion models, "
                                    f"not for the {cfg.model.type} baseline")
    train_ds, val_ds, spec, order = training_data(cfg)  # all training patients, or train.patients
    C, L = len(train_ds.channels), int(train_ds.window_len)
    epoch_steps = epoch_steps_for(cfg, len(train_ds), 1)

    # ---- model, optimizers, EMA, schedules, generator -------------------------------------------
    torch.manual_seed(tc.seed)  # the same initial weights in every rerun
    model = build_baseline(cfg, C, L, list(train_ds.label_classes))
    with contextlib.ExitStack() as run:  # only now that data and model are good: the run folder, locked
        ckpt = claim_run(run, acc, out, resume, "train.out_dir")
        (out / "plots").mkdir(exist_ok=True)
        write_text_atomic(out / "config.yaml", cfg.yaml(), "train.out_dir")
        opts = model.make_optimizers(tc)
        prepared = acc.prepare(model, *opts.values())
        model, opts = prepared[0], dict(zip(opts, prepared[1:]))
        ema = EMA(model, decay=tc.ema_decay, warmup=tc.ema_warmup).to(acc.device)
        scheds = {k: LRSchedule(o, tc.lr_schedule, tc.lr, tc.max_steps, tc.warmup_steps, tc.lr_min,
                                tc.plateau_patience, tc.plateau_factor) for k, o in opts.items()}
        gen = torch.Generator(device=acc.device).manual_seed(tc.seed * 1000 + 17)
        torch.manual_seed(tc.seed * 1000 + 29)  # global RNG: nothing should draw from it, but keep it seeded
        st: dict[str, Any] = {"step": 0, "epoch": 0, "consumed": 0, "elapsed_s": 0.0, "loss_sum": 0.0,
                              "loss_n": 0, "val_loss": None}
        if ckpt is not None:
            saved = read_state(ckpt)
            if saved.get("model_config") != _model_config(cfg) or saved["manifest_sha256"] != spec.manifest_sha256:
                raise UserError("--resume", f"{ckpt} was trained with another model / baseline section or other "
                                            "data; use its config.yaml")
            st, tensors, rank_tensors = load_checkpoint(acc, ckpt)
            ema.load_state_dict({**st["ema"], **{k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}})
            for k, s in scheds.items():
                s.load_state_dict(st["lr_schedules"][k])
            gen.set_state(rank_tensors["generator"])
        log = TrainLog(out / "log.csv", st["step"] if ckpt else None)

        batches = order.batches(st["consumed"])

        def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
            """The next training batch (B, C, L), (B, n_labels) on the device; counted for exact resume."""
            x, y, _ = train_ds.get_batch(next(batches))
            st["consumed"] += 1
            return x.to(acc.device), y.to(acc.device)

        val_idx = np.unique(np.linspace(0, len(val_ds) - 1, min(len(val_ds), tc.val_batches * tc.batch_size))
                            .round().astype(np.int64)) if len(val_ds) else np.zeros(0, np.int64)
        model_file, last_ckpt = out / "model.safetensors", ckpt

        def validate() -> float:
            """Mean validation loss over the fixed validation windows, fixed noise per window batch."""
            model.eval()
            tot, n = 0.0, 0
            with torch.no_grad():
                for b in range(0, len(val_idx), tc.batch_size):
                    idx = val_idx[b:b + tc.batch_size]
                    x, y, _ = val_ds.get_batch(idx)
                    g = torch.Generator(device=acc.device).manual_seed(tc.seed * 7919 + 1_000_003 + int(idx[0]))
                    tot += float(model.validation_loss(x.to(acc.device), y.to(acc.device), g)) * len(idx)
                    n += len(idx)
            model.train()
            return tot / n if n else float("nan")

        def plot(epoch: int) -> None:
            ds, pool = (val_ds, val_idx) if len(val_idx) else (train_ds, np.arange(len(train_ds)))
            idx = pool[np.unique(np.linspace(0, len(pool) - 1, min(len(pool), tc.plot_samples)).round().astype(np.int64))]
            x, y, _ = ds.get_batch(idx)
            with torch.random.fork_rng(devices=[]), ema_weights(model, ema):  # plots never touch training RNG
                syn = model.sample(len(y), y.to(acc.device), seed=tc.seed)
            model.train()
            titles = label_titles(y, spec)
            plot_fn(out / "plots" / f"epoch-{epoch:04d}.png", ds.to_physical(syn), spec.fs, spec.channels,
                    real=ds.to_physical(x), synthetic_titles=titles if model.conditional else ["unconditional"] * len(y),
                    real_titles=titles, title=f"step {st['step']}: {cfg.model.type} EMA samples beside real "
                                              "validation windows")

        def save() -> Path:
            state = dict(st, world_size=1, model_config=_model_config(cfg), manifest_sha256=spec.manifest_sha256,
                         lr_schedules={k: s.state_dict() for k, s in scheds.items()}, epoch_steps=epoch_steps)
            ema_state = ema.state_dict()
            state["ema"] = {k: v for k, v in ema_state.items() if not isinstance(v, torch.Tensor)}
            tensors = {f"ema.{k}": v for k, v in ema_state.items() if isinstance(v, torch.Tensor)}
            def write_model(path: Path) -> None:  # the inference file travels inside the checkpoint
                with ema_weights(model, ema):
                    save_model_file(path, model.state_dict(), cfg.yaml(), spec, st["step"])

            return save_checkpoint(acc, out, st["step"], state, tensors, {"generator": gen.get_state()},
                                   cfg.yaml(), tc.keep_checkpoints, inference={model_file.name: write_model})

        # ---- the loop ----------------------------------------------------------------------------
        print(f"training {cfg.model.type}: {sum(p.numel() for p in model.parameters()):,} parameters, {threads} "
              f"thread(s), device {acc.device}; {len(train_ds)} training / {len(val_ds)} validation windows; "
              f"{epoch_steps} steps per epoch; step {st['step']} -> {tc.max_steps}", flush=True)
        bar = tqdm(total=tc.max_steps, initial=st["step"], disable=not progress, dynamic_ncols=True,
                   desc=f"train {cfg.model.type}")
        t0, t_epoch, stopped = time.time(), time.time(), False
        elapsed0 = float(st["elapsed_s"])
        consumed_epoch = st["consumed"]
        losses: dict[str, float] = {}
        model.train()
        while st["step"] < tc.max_steps:
            for s in scheds.values():
                s.apply(st["step"])
            losses = model.train_step(next_batch, st["step"], opts, gen, tc.grad_clip)
            st["loss_sum"] += next(iter(losses.values()))
            st["loss_n"] += 1
            st["step"] += 1
            ema.update(model)
            if on_step is not None:
                on_step(st["step"])
            bar.update(1)
            if st["step"] % 10 == 0 or st["step"] == 1:
                bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()})
            stopped = stop_now(st["step"], stop_after, tc.max_minutes, t0 - elapsed0)  # one process: no trigger
            end_epoch = st["step"] % epoch_steps == 0 or st["step"] == tc.max_steps
            if not (end_epoch or stopped):
                continue
            st["elapsed_s"] = elapsed0 + time.time() - t0
            if end_epoch:
                st["epoch"] += 1
                train_time = time.time() - t_epoch
                windows = (st["consumed"] - consumed_epoch) * tc.batch_size
                val = validate() if len(val_idx) else float("nan")
                for s in scheds.values():
                    s.observe(val)
                st["val_loss"] = val
                lr = next(iter(opts.values())).param_groups[0]["lr"]
                log.append(step=st["step"], epoch=st["epoch"], train_loss=st["loss_sum"] / max(1, st["loss_n"]),
                           val_loss=val, lr=lr, windows_per_s=windows / train_time, elapsed_s=st["elapsed_s"])
                bar.write(f"epoch {st['epoch']} step {st['step']} ({model.phase(st['step'] - 1)}): "
                          + " ".join(f"{k} {v:.4f}" for k, v in losses.items())
                          + f" | train {st['loss_sum'] / max(1, st['loss_n']):.4f} val {val:.4f} lr {lr:.2e} "
                            f"{windows / train_time:.1f} windows/s")
                if plot_fn is not None and tc.plot_every and st["epoch"] % tc.plot_every == 0:
                    plot(st["epoch"])
                st["loss_sum"], st["loss_n"] = 0.0, 0
            last_ckpt = save()
            t_epoch, consumed_epoch = time.time(), st["consumed"]
            if stopped:
                break
        bar.close()
        return TrainResult(st["step"], model_file, last_ckpt, float(st["val_loss"] or float("nan")),
                           stopped and st["step"] < tc.max_steps, True)
