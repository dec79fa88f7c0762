"""Diffusion training: `train(cfg, resume=...)`, the diffusion step and hooks of training/engine.py
(docs/design.md section 3, "Training loop").

accelerate supplies devices, processes (DDP; gloo on CPU) and mixed precision (from the launcher: `accelerate
launch --mixed_precision bf16 ...`); nothing here names a device. Each optimizer step is `grad_accum`
micro-batches of `batch_size` windows on each process: AdamW, global-norm clipping, EMA of the weights,
a warm-up + cosine / plateau / constant learning rate (training/lr_schedule.py).

Exact resume: every random draw of training comes from state that the checkpoint holds. The data order is
a pure function of (seed, micro-batch number) (training/data_order.py); noise, timesteps and label dropout
come from one torch.Generator per process, handed to `training_loss`; the global RNG (dropout layers) is
saved by accelerate. So N steps in one go and N/2 + stop + resume give identical weights on CPU.

Each "epoch" (`train.epoch_steps` optimizer steps): validation loss on fixed validation windows with fixed
noise (comparable across epochs), a CSV row (training/train_log.py), a PNG of fixed-seed EMA samples
beside real validation windows (few sampler steps), a resumable checkpoint (training/train_state.py) and
the inference file `model.safetensors` (EMA weights, training/model_file.py).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader

from dataloader.config import Config
from dataloader.config.typed import to_dict
from dataloader.dataset import WindowDataset
from dataloader.errors import UserError
from dataloader.subset import window_patient_numbers
from first_stage import load_trained_first_stages
from training.data import epoch_steps_for, label_titles, plot_batch, spread, training_data, val_generator
from training.data_order import WindowOrder
from training.engine import Run, TrainResult, TrainTask, check_fresh, ema_weights, run_training, train_threads
from training.lr_schedule import LRSchedule
from training.model_file import save_model_file

# plot_fn(path, synthetic (M, C, L), fs, channels, real=(N, C, L), synthetic_titles=..., real_titles=..., title=...)
PlotFn = Callable[..., Any]


class _LossForward(torch.nn.Module):
    """Makes `training_loss` the module's forward, so DDP syncs gradients and autocast applies to it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.model.training_loss(x, labels, generator=generator)


class _Batches(torch.utils.data.Dataset):
    """Index list -> one batch via the dataset's fast gather (used with `batch_size=None`)."""

    def __init__(self, ds: WindowDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, _ = self.ds.get_batch(idx)  # patient ids are not needed (and never leave the data layer)
        return x, y


class _Endless:
    """The DataLoader's sampler: this process's index lists from micro-batch `start` on (see data_order)."""

    def __init__(self, order: WindowOrder, start: int) -> None:
        self.order, self.start = order, start

    def __iter__(self):  # type: ignore[no-untyped-def]
        return self.order.batches(self.start)


class DiffusionTask(TrainTask):
    """The diffusion model's (or the SR model's) step and hooks for training/engine.py."""

    def __init__(self, cfg: Config, acc: Any, threads: int, plot_fn: Optional[PlotFn],
                 build: Optional[Callable[..., Any]], prebuilt: Any) -> None:
        from .model import build_diffusion

        tc = self.tc = cfg.train
        self.cfg, self.out, self.threads, self.plot_fn, self.plot_every = cfg, Path(tc.out_dir), threads, plot_fn, \
            tc.plot_every
        self.max_steps, self.max_minutes, self.first_state = tc.max_steps, tc.max_minutes, {"val_loss": None}
        world = acc.num_processes
        self.data = training_data(cfg, acc.process_index, world, prebuilt.data if prebuilt is not None else None)
        train_ds = self.data.train
        L = int(train_ds.window_len)
        self.dp = None
        if tc.dp is not None:  # DP-SGD: Poisson batches, per-sample clipping, noise, accountant (diffusion/dp.py)
            from .dp import DPTraining

            self.dp = DPTraining(tc, window_patient_numbers(train_ds), world, cfg.data.balance_by)
            self.data.order = self.dp.order
        self.epoch_steps = epoch_steps_for(cfg, len(train_ds), world)
        if prebuilt is not None and prebuilt.model is not None:  # built by the preflight, from the same seed
            self.model = prebuilt.model
            torch.set_rng_state(prebuilt.rng)
        else:
            torch.manual_seed(tc.seed)  # the same initial weights on every process and in every rerun
            self.model = (build or build_diffusion)(cfg.model, len(train_ds.channels), L,
                                                    list(train_ds.label_classes))
        # latent diffusion: learned first stages come trained and frozen from their own file (checked against
        # this data: channels, rate, window length); fixed ones need nothing
        load_trained_first_stages(self.model, train_ds.channels, train_ds.fs, L)
        if self.dp is not None:
            self.dp.check_model(self.model)  # Opacus's validator: refuse (one line) before anything is written
        self.ema_model, self.model_file = self.model, self.out / "model.safetensors"
        self.val_idx = spread(len(self.data.val), tc.val_batches * tc.batch_size * world)

    def prepare(self, acc: Any) -> None:
        tc = self.tc
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # fused: one vectorised kernel per parameter tensor, 2-4x faster than foreach's multi-tensor ops on this
        # CPU (issue 14; torch picks neither by default on CPU, and its per-parameter loop is slower still);
        # the two round differently, so `train.adam_impl: foreach` keeps the bits of runs made before
        impl = {"fused": True} if tc.adam_impl == "fused" else {"foreach": True}
        opt = torch.optim.AdamW(self.params, lr=tc.lr, betas=tuple(tc.betas), eps=tc.adam_eps,
                                weight_decay=tc.weight_decay, **impl)
        loss_module: torch.nn.Module = _LossForward(self.model)
        if self.dp is not None:  # per-sample gradients + DPOptimizer (clip, noise) around AdamW
            loss_module, opt = self.dp.wrap(loss_module, opt, acc.device)
        self.loss_module, self.opt = acc.prepare(loss_module, opt)
        self.sched = LRSchedule(self.opt, tc.lr_schedule, tc.lr, tc.max_steps, tc.warmup_steps, tc.lr_min,
                                tc.plateau_patience, tc.plateau_factor)

    def check_resume(self, saved: dict[str, Any], ckpt: Path, world: int) -> None:
        if saved["world_size"] != world:
            raise UserError("--resume", f"{ckpt} was written by {saved['world_size']} process(es); resume it with "
                                        f"as many (this run has {world})")
        if saved["model_config"] != to_dict(self.cfg.model) or saved["manifest_sha256"] != self.data.spec.manifest_sha256:
            raise UserError("--resume", f"{ckpt} was trained with another model section or other data; "
                                        "use its config.yaml")

    def load(self, st: dict[str, Any], rank_tensors: dict[str, torch.Tensor]) -> None:
        self.sched.load_state_dict(st["lr_schedule"])
        if self.dp is not None:
            self.dp.load_rank_tensors(rank_tensors)

    def start(self, run: Run) -> str:
        tc, acc, st, d = self.tc, run.acc, run.st, self.data
        loader = DataLoader(_Batches(d.train), batch_size=None, sampler=_Endless(d.order, st["consumed"]),
                            num_workers=tc.num_workers, pin_memory=acc.device.type == "cuda",
                            generator=torch.Generator().manual_seed(tc.seed))  # iter() must not draw global RNG
        self.batches = iter(loader)
        self.loss_acc = torch.zeros(2, dtype=torch.float64, device=acc.device)  # (sum of micro-batch losses, count)
        self.model.train()
        return (f"training {sum(p.numel() for p in self.params):,} parameters on {run.world} process(es) x "
                f"{self.threads} thread(s), device {acc.device}; {len(d.train)} training / {len(d.val)} validation "
                f"windows; {self.epoch_steps} steps per epoch; step {st['step']} -> {tc.max_steps}"
                + ("\n" + self.dp.describe() if self.dp is not None else ""))

    def step(self, run: Run) -> tuple[torch.Tensor, int]:
        """`grad_accum` micro-batches, then the optimizer step (accelerate decides which one syncs)."""
        acc, st, dp, windows = run.acc, run.st, self.dp, 0
        while True:
            x, y = next(self.batches)
            x, y = x.to(acc.device, non_blocking=True), y.to(acc.device, non_blocking=True)
            with acc.accumulate(self.loss_module):
                if dp is not None and dp.empty_batch(self.loss_module, x):  # an empty Poisson batch: noise-only step
                    loss = torch.zeros((), device=acc.device)
                else:
                    loss = self.loss_module(x, y, run.gen)
                    acc.backward(loss)
                if acc.sync_gradients:
                    if self.tc.grad_clip and dp is None:  # under DP, Opacus clips each sample's gradient instead
                        acc.clip_grad_norm_(self.params, self.tc.grad_clip)
                    self.sched.apply(st["step"])
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
            st["consumed"] += 1
            self.loss_acc[0] += loss.detach().double()
            self.loss_acc[1] += 1
            windows += len(x) * run.world
            if acc.sync_gradients:
                return loss, windows

    def postfix(self, losses: torch.Tensor) -> dict[str, str]:
        return {"loss": f"{float(losses.detach()):.4f}", "lr": f"{self.opt.param_groups[0]['lr']:.2e}"}

    def flush(self, run: Run) -> None:
        # the epoch's sums so far go into the state (checkpointed, so a resumed epoch reports all its steps)
        sums = run.acc.reduce(self.loss_acc, "sum")
        run.st["loss_sum"] += float(sums[0])
        run.st["loss_n"] += int(sums[1])
        self.loss_acc.zero_()

    def epoch_end(self, run: Run, windows_per_s: float) -> tuple[dict[str, Any], str]:
        st = run.st
        val = self.validate(run) if len(self.val_idx) else float("nan")
        self.sched.observe(val)
        st["val_loss"] = val
        lr = self.opt.param_groups[0]["lr"]
        line = (f"epoch {st['epoch']} step {st['step']}: train {st['loss_sum'] / max(1, st['loss_n']):.4f} "
                f"val {val:.4f} lr {lr:.2e} {windows_per_s:.1f} windows/s"
                + (f" DP epsilon {self.dp.epsilon(st['step']):.3f}" if self.dp is not None else ""))
        return {"val_loss": val, "lr": lr}, line

    def validate(self, run: Run) -> float:
        """Mean loss over the fixed validation windows, fixed noise per window batch (all processes)."""
        acc, tc, model = run.acc, self.tc, self.model
        model.eval()
        mine = self.val_idx[run.rank::run.world]
        tot = torch.zeros(2, dtype=torch.float64, device=acc.device)
        with torch.no_grad(), acc.autocast():
            for b in range(0, len(mine), tc.batch_size):
                idx = mine[b:b + tc.batch_size]
                x, y, _ = self.data.val.get_batch(idx)
                g = val_generator(tc.seed, idx[0], acc.device)
                loss = model.training_loss(x.to(acc.device), y.to(acc.device), generator=g)
                tot += torch.tensor([float(loss) * len(idx), len(idx)], dtype=torch.float64, device=acc.device)
        model.train()
        tot = acc.reduce(tot, reduction="sum")
        return float(tot[0] / tot[1]) if tot[1] > 0 else float("nan")

    def plot(self, run: Run, epoch: int) -> None:
        tc, model, spec, device = self.tc, self.model, self.data.spec, run.acc.device
        ds, x, y = plot_batch(self.data.val, self.val_idx, self.data.train, tc.plot_samples)
        model.eval()
        with torch.random.fork_rng(devices=[]), ema_weights(model, run.ema):  # plots never touch training RNG
            syn = model.sample(len(y), y.to(device), sampler=tc.plot_sampler, steps=tc.plot_steps,
                               guidance_scale=getattr(self.cfg.get("sample"), "guidance_scale", 1.0), seed=tc.seed,
                               batch_size=len(y), **model.plot_inputs(x.to(device)))
        model.train()
        titles = label_titles(y, spec)
        self.plot_fn(self.out / "plots" / f"epoch-{epoch:04d}.png", ds.to_physical(syn), spec.fs, spec.channels,
                     real=ds.to_physical(x), synthetic_titles=titles, real_titles=titles,
                     title=f"step {run.st['step']}: EMA samples ({tc.plot_sampler}, {tc.plot_steps} steps) beside "
                           f"real validation windows")

    def state(self, run: Run) -> dict[str, Any]:
        return dict(world_size=run.world, model_config=to_dict(self.cfg.model),
                    manifest_sha256=self.data.spec.manifest_sha256, lr_schedule=self.sched.state_dict(),
                    epoch_steps=self.epoch_steps)

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return self.dp.rank_tensors() if self.dp is not None else {}

    def write_file(self, run: Run, path: Path) -> None:
        step = run.st["step"]
        with ema_weights(self.model, run.ema):
            save_model_file(path, self.model.state_dict(), self.cfg.yaml(), self.data.spec, step,
                            None if self.dp is None else self.dp.model_meta(step))


def train(cfg: Config, *,
          resume: Optional[str] = None,          # "latest", a checkpoint folder, or None (fresh run, empty out_dir)
          stop_after: Optional[int] = None,      # stop (checkpoint + model file) at this step; for time-boxed jobs/tests
          plot_fn: Optional[PlotFn] = None,      # draws the epoch PNGs (train.py passes evaluation.sample_grid's)
          progress: bool = True,                 # tqdm bar on the main process
          on_step: Optional[Callable[[int], None]] = None,  # called with the step after each optimizer step (benchmarks)
          accelerator: Any = None,               # an accelerate.Accelerator; default: one built from the config
          build: Optional[Callable[..., Any]] = None,  # (model_cfg, C, L, label_classes) -> model; default
                                                       # build_diffusion (the SR stage passes diffusion.superres's)
          prebuilt: Any = None,                  # diffusion.stages.Prebuilt: the data and model the preflight made
          ) -> TrainResult:
    """Train `cfg.model` on `cfg.data.prepared` as `cfg.train` says; returns how it ended."""
    from accelerate import Accelerator

    tc = cfg.train
    if tc is None or cfg.get("model") is None:
        raise UserError(cfg.path or "config", "training needs the `model` and `train` sections")
    # several processes (torchrun / accelerate launch --multi_gpu) on a machine without CUDA: accelerate takes
    # that for one process unless told cpu=True, which selects DDP over gloo
    cpu_ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    acc = accelerator or Accelerator(gradient_accumulation_steps=tc.grad_accum, cpu=cpu_ddp)
    threads = train_threads(tc.threads, int(os.environ.get("LOCAL_WORLD_SIZE", acc.num_processes)))
    check_fresh(Path(tc.out_dir), resume, "train.out_dir", "--resume latest or choose another train.out_dir")
    task = DiffusionTask(cfg, acc, threads, plot_fn, build, prebuilt)
    return run_training(task, acc, resume, stop_after, progress, on_step)
