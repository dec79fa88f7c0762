"""THE training function: `train(cfg, resume=...)` (docs/design.md section 3, "Training loop").

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

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from dataloader.atomic import write_text_atomic
from dataloader.class_csv import count_label_rows, label_text
from dataloader.cli import set_threads
from dataloader.config import Config
from dataloader.config.typed import to_dict
from dataloader.dataset import WindowDataset
from dataloader.errors import UserError
from dataloader.subset import patient_subset, window_patient_numbers
from first_stage import load_trained_first_stages

from training.model_file import DataSpec, save_model_file
from training.data_order import WindowOrder
from training.lr_schedule import LRSchedule
from training.train_log import TrainLog
from training.train_state import claim_run, find_checkpoint, list_checkpoints, load_checkpoint, read_state, save_checkpoint

# plot_fn(path, synthetic (M, C, L), fs, channels, real=(N, C, L), synthetic_titles=..., real_titles=..., title=...)
PlotFn = Callable[..., Any]


@dataclass
class TrainResult:
    """What a call to `train` ended with."""

    step: int                                   # optimizer steps done (counting resumed ones)
    model_file: Path                            # out_dir/model.safetensors (EMA weights)
    checkpoint: Path                            # the last resumable state written
    val_loss: float                             # last validation loss (nan without validation)
    stopped_early: bool                         # stopped by stop_after or train.max_minutes before max_steps
    is_main: bool = True                        # this is the main process (the one that reports)


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


@contextlib.contextmanager
def ema_weights(model: torch.nn.Module, ema: Any) -> Iterator[None]:
    """Run a block with the EMA weights in `model`, then put the trained weights back exactly."""
    backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema.copy_to(model)
    try:
        yield
    finally:
        model.load_state_dict(backup)


def train_threads(n: Optional[int], local_world: int) -> int:
    """torch threads of this process: train.threads, else OMP_NUM_THREADS, else cores / local processes."""
    if n is None and not os.environ.get("OMP_NUM_THREADS"):
        n = max(1, len(os.sched_getaffinity(0)) // max(1, local_world))
    return set_threads(n)


def epoch_steps_for(cfg: Config, n_train: int, world: int) -> int:
    tc = cfg.train
    if tc.epoch_steps:
        return tc.epoch_steps
    one_pass = max(1, n_train // (tc.batch_size * tc.grad_accum * world))
    return max(1, min(one_pass, 2000, math.ceil(tc.max_steps / 10)))


def check_data(ds: WindowDataset, cfg: Config) -> None:
    names = [c.name for c in cfg.data.channels]
    have = [str(c["name"]) for c in ds.channels]
    if names != have:
        raise UserError(cfg.data.prepared, f"prepared channels {have} differ from the config's {names}; "
                                           "prepare the data again with this config")


def data_spec(ds: WindowDataset, manifest_sha256: str) -> DataSpec:
    return DataSpec(channels=[{"name": c["name"], "unit": c.get("unit", ""), "range": list(c["range"])}
                              for c in ds.channels],
                    fs=float(ds.fs), window_len=int(ds.window_len), label_names=list(ds.label_names),
                    class_names=[list(c) for c in ds.class_names],
                    label_counts=count_label_rows(ds.labels).tolist(), manifest_sha256=manifest_sha256)


@dataclass
class _TrainingData:
    """What every training loop (diffusion, first stage, baselines) reads: data, its description, its order."""

    train: WindowDataset                        # train-split windows (all train patients, or train.patients)
    val: WindowDataset                          # validation-patient windows
    spec: DataSpec                              # channels, rate, window length, labels, manifest hash
    order: WindowOrder                          # batch order: a pure function of (seed, micro-batch number)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.train, self.val, self.spec, self.order))


def training_data(cfg: Config, rank: int = 0, world: int = 1) -> _TrainingData:
    """Open the prepared file's train (restricted to `train.patients` when set) and val splits, check them
    against the config, and build the data order of process `rank` of `world` (balanced by `data.balance_by`).
    Unpacks as `train_ds, val_ds, spec, order`."""
    tc = cfg.train
    train_ds = patient_subset(WindowDataset(cfg.data.prepared, "train"), getattr(tc, "patients", None))
    val_ds = WindowDataset(train_ds.file, "val")
    check_data(train_ds, cfg)
    if len(val_ds) == 0 and tc.lr_schedule == "plateau":
        raise UserError("train.lr_schedule", "plateau needs validation windows, and the val split has none")
    spec = data_spec(train_ds, str(getattr(train_ds.file, "manifest_sha256", "")))
    weights = None
    if cfg.data.balance_by:
        from dataloader.sampler import BalancedSampler

        weights = BalancedSampler(train_ds, cfg.data.balance_by).p
    order = WindowOrder(len(train_ds), tc.batch_size, tc.seed, rank, world, weights)
    return _TrainingData(train_ds, val_ds, spec, order)


def stop_now(step: int, stop_after: Optional[int], max_minutes: Optional[float], start: float,
             acc: Any = None) -> bool:
    """Whether a training loop stops early after optimizer step `step`: at `stop_after`, or once
    `max_minutes` of training time have passed since `start` (time.time() minus the seconds of earlier runs
    of a resumed job). With an accelerator only the main process reads the clock and tells the others
    through accelerate's trigger, so that every process stops at the same step."""
    stop = stop_after is not None and step >= stop_after
    if max_minutes is not None:
        over = time.time() - start >= 60 * max_minutes
        if acc is None:
            stop = stop or over
        else:
            if over and acc.is_main_process:
                acc.set_trigger()
            stop = acc.check_trigger() or stop
    return stop


def label_titles(y: torch.Tensor, spec: DataSpec) -> list[str]:
    return [label_text(row, spec.label_names, spec.class_names) for row in y.tolist()]


def train(cfg: Config, *,
          resume: Optional[str] = None,          # "latest", a checkpoint folder, or None (fresh run, empty out_dir)
          stop_after: Optional[int] = None,      # stop (checkpoint + model file) at this step; for time-boxed jobs/tests
          plot_fn: Optional[PlotFn] = None,      # draws the epoch PNGs (train.py passes evaluation.sample_grid's)
          progress: bool = True,                 # tqdm bar on the main process
          on_step: Optional[Callable[[int], None]] = None,  # called with the step after each optimizer step (benchmarks)
          accelerator: Any = None,               # an accelerate.Accelerator; default: one built from the config
          build: Optional[Callable[..., Any]] = None,  # (model_cfg, C, L, label_classes) -> model; default
                                                       # build_diffusion (the SR stage passes diffusion.superres's)
          ) -> TrainResult:
    """Train `cfg.model` on `cfg.data.prepared` as `cfg.train` says; returns how it ended."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from training.ema import EMA
    from .model import build_diffusion
    from .samplers import list_samplers

    tc = cfg.train
    if tc is None or cfg.get("model") is None:
        raise UserError(cfg.path or "config", "training needs the `model` and `train` sections")
    if tc.plot_every and tc.plot_sampler not in list_samplers():
        raise UserError("train.plot_sampler", f"unknown sampler {tc.plot_sampler!r}; valid: "
                                              f"{', '.join(list_samplers())}")
    # several processes (torchrun / accelerate launch --multi_gpu) on a machine without CUDA: accelerate takes
    # that for one process unless told cpu=True, which selects DDP over gloo
    cpu_ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    acc = accelerator or Accelerator(gradient_accumulation_steps=tc.grad_accum, cpu=cpu_ddp)
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    threads = train_threads(tc.threads, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    out = Path(tc.out_dir)
    ckpt = find_checkpoint(out, resume) if resume else None
    if ckpt is None and list_checkpoints(out):
        raise UserError("train.out_dir", f"{out} already holds checkpoints; continue with --resume latest "
                                         "or choose another train.out_dir")
    # ---- data --------------------------------------------------------------------------------
    train_ds, val_ds, spec, order = training_data(cfg, rank, world)
    C, L = len(train_ds.channels), int(train_ds.window_len)
    dp = None
    if tc.dp is not None:  # DP-SGD: Poisson batches, per-sample clipping, noise, accountant (diffusion/dp.py)
        from .dp import DPTraining

        dp = DPTraining(tc, window_patient_numbers(train_ds), world, cfg.data.balance_by)
        order = dp.order
    epoch_steps = epoch_steps_for(cfg, len(train_ds), world)

    # ---- model, optimizer, EMA, schedule, generators -------------------------------------------
    torch.manual_seed(tc.seed)  # the same initial weights on every process and in every rerun
    model = (build or build_diffusion)(cfg.model, C, L, list(train_ds.label_classes))
    # latent diffusion: learned first stages come trained and frozen from their own file (checked against
    # this data: channels, rate, window length); fixed ones need nothing
    load_trained_first_stages(model, train_ds.channels, train_ds.fs, L)
    if dp is not None:
        dp.check_model(model)  # Opacus's validator: refuse (one line) before anything is written
    # only now that data and model are known to be good (bad input leaves nothing behind): the run folder is
    # created and locked for the rest of the run, and the checkpoint to resume is found again under the lock
    with contextlib.ExitStack() as run:
        ckpt = claim_run(run, acc, out, resume, "train.out_dir")
        if main:
            (out / "plots").mkdir(exist_ok=True)
            write_text_atomic(out / "config.yaml", cfg.yaml(), "train.out_dir")
        params = [p for p in model.parameters() if p.requires_grad]
        # foreach: one multi-tensor kernel per update instead of ~10 small ops per parameter (torch only picks it
        # by default on GPUs; on CPU it saves most of the optimizer time of small models)
        opt = torch.optim.AdamW(params, lr=tc.lr, betas=tuple(tc.betas), eps=tc.adam_eps,
                                weight_decay=tc.weight_decay, foreach=True)
        loss_module = _LossForward(model)
        if dp is not None:  # per-sample gradients + DPOptimizer (clip, noise) around AdamW
            loss_module, opt = dp.wrap(loss_module, opt, acc.device)
        loss_module, opt = acc.prepare(loss_module, opt)
        ema = EMA(model, decay=tc.ema_decay, warmup=tc.ema_warmup).to(acc.device)
        sched = LRSchedule(opt, tc.lr_schedule, tc.lr, tc.max_steps, tc.warmup_steps, tc.lr_min,
                           tc.plateau_patience, tc.plateau_factor)
        gen = torch.Generator(device=acc.device).manual_seed(tc.seed * 1000 + 17 + rank)
        torch.manual_seed(tc.seed * 1000 + 29 + rank)  # global RNG: dropout layers only, one stream per process
        st: dict[str, Any] = {"step": 0, "epoch": 0, "consumed": 0, "elapsed_s": 0.0, "loss_sum": 0.0,
                              "loss_n": 0, "val_loss": None}
        if ckpt is not None:
            saved = read_state(ckpt)
            if saved["world_size"] != world:
                raise UserError("--resume", f"{ckpt} was written by {saved['world_size']} process(es); resume it with "
                                            f"as many (this run has {world})")
            if saved["model_config"] != to_dict(cfg.model) or saved["manifest_sha256"] != spec.manifest_sha256:
                raise UserError("--resume", f"{ckpt} was trained with another model section or other data; "
                                            "use its config.yaml")
            st, tensors, rank_tensors = load_checkpoint(acc, ckpt)
            ema.load_state_dict({**st["ema"], **{k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}})
            sched.load_state_dict(st["lr_schedule"])
            gen.set_state(rank_tensors["generator"])
            if dp is not None:
                dp.load_rank_tensors(rank_tensors)
        log = TrainLog(out / "log.csv", st["step"] if ckpt else None) if main else None

        loader = DataLoader(_Batches(train_ds), batch_size=None, sampler=_Endless(order, st["consumed"]),
                            num_workers=tc.num_workers, pin_memory=acc.device.type == "cuda",
                            generator=torch.Generator().manual_seed(tc.seed))  # iter() must not draw global RNG
        data = iter(loader)
        val_idx = np.unique(np.linspace(0, len(val_ds) - 1, min(len(val_ds), tc.val_batches * tc.batch_size * world))
                            .round().astype(np.int64)) if len(val_ds) else np.zeros(0, np.int64)
        model_file, last_ckpt = out / "model.safetensors", ckpt

        def validate() -> float:
            """Mean loss over the fixed validation windows, fixed noise per window batch (all processes)."""
            model.eval()
            mine = val_idx[rank::world]
            tot = torch.zeros(2, dtype=torch.float64, device=acc.device)
            with torch.no_grad(), acc.autocast():
                for b in range(0, len(mine), tc.batch_size):
                    idx = mine[b:b + tc.batch_size]
                    x, y, _ = val_ds.get_batch(idx)
                    g = torch.Generator(device=acc.device).manual_seed(tc.seed * 7919 + 1_000_003 + int(idx[0]))
                    loss = model.training_loss(x.to(acc.device), y.to(acc.device), generator=g)
                    tot += torch.tensor([float(loss) * len(idx), len(idx)], dtype=torch.float64, device=acc.device)
            model.train()
            tot = acc.reduce(tot, reduction="sum")
            return float(tot[0] / tot[1]) if tot[1] > 0 else float("nan")

        def plot(epoch: int) -> None:
            ds, pool = (val_ds, val_idx) if len(val_idx) else (train_ds, np.arange(len(train_ds)))
            # windows spread over the pool (so over patients and classes), the same ones every epoch
            idx = pool[np.unique(np.linspace(0, len(pool) - 1, min(len(pool), tc.plot_samples)).round().astype(np.int64))]
            x, y, _ = ds.get_batch(idx)
            sample_cfg = cfg.get("sample")
            model.eval()
            with torch.random.fork_rng(devices=[]), ema_weights(model, ema):  # plots never touch training RNG
                syn = model.sample(len(y), y.to(acc.device), sampler=tc.plot_sampler, steps=tc.plot_steps,
                                   guidance_scale=getattr(sample_cfg, "guidance_scale", 1.0), seed=tc.seed,
                                   batch_size=len(y), **model.plot_inputs(x.to(acc.device)))
            model.train()
            titles = label_titles(y, spec)
            plot_fn(out / "plots" / f"epoch-{epoch:04d}.png", ds.to_physical(syn), spec.fs, spec.channels,
                    real=ds.to_physical(x), synthetic_titles=titles, real_titles=titles,
                    title=f"step {st['step']}: EMA samples ({tc.plot_sampler}, {tc.plot_steps} steps) beside real "
                          f"validation windows")

        def save() -> Path:
            state = dict(st, world_size=world, model_config=to_dict(cfg.model), manifest_sha256=spec.manifest_sha256,
                         lr_schedule=sched.state_dict(), epoch_steps=epoch_steps)
            ema_state = ema.state_dict()
            state["ema"] = {k: v for k, v in ema_state.items() if not isinstance(v, torch.Tensor)}
            tensors = {f"ema.{k}": v for k, v in ema_state.items() if isinstance(v, torch.Tensor)}
            def write_model(path: Path) -> None:  # the inference file travels inside the checkpoint
                with ema_weights(model, ema):
                    save_model_file(path, model.state_dict(), cfg.yaml(), spec, st["step"],
                                    None if dp is None else dp.model_meta(st["step"]))

            return save_checkpoint(acc, out, st["step"], state, tensors,
                                   {"generator": gen.get_state(), **(dp.rank_tensors() if dp is not None else {})},
                                   cfg.yaml(), tc.keep_checkpoints, inference={model_file.name: write_model})

        # ---- the loop ----------------------------------------------------------------------------
        if main:
            print(f"training {sum(p.numel() for p in params):,} parameters on {world} process(es) x {threads} "
                  f"thread(s), device {acc.device}; {len(train_ds)} training / {len(val_ds)} validation windows; "
                  f"{epoch_steps} steps per epoch; step {st['step']} -> {tc.max_steps}", flush=True)
            if dp is not None:
                print(dp.describe(), flush=True)
        bar = tqdm(total=tc.max_steps, initial=st["step"], disable=not (progress and acc.is_local_main_process),
                   dynamic_ncols=True, desc="train")
        t0, t_epoch, stopped = time.time(), time.time(), False
        elapsed0 = float(st["elapsed_s"])
        loss_acc = torch.zeros(2, dtype=torch.float64, device=acc.device)  # (sum of micro-batch losses, count)
        windows = 0  # windows trained on by all processes since the epoch (or this session) began
        model.train()
        while st["step"] < tc.max_steps:
            x, y = next(data)
            x, y = x.to(acc.device, non_blocking=True), y.to(acc.device, non_blocking=True)
            with acc.accumulate(loss_module):
                if dp is not None and dp.empty_batch(loss_module, x):  # an empty Poisson batch: noise-only step
                    loss = torch.zeros((), device=acc.device)
                else:
                    loss = loss_module(x, y, gen)
                    acc.backward(loss)
                if acc.sync_gradients:
                    if tc.grad_clip and dp is None:  # under DP, Opacus clips each sample's gradient instead
                        acc.clip_grad_norm_(params, tc.grad_clip)
                    sched.apply(st["step"])
                opt.step()
                opt.zero_grad(set_to_none=True)
            st["consumed"] += 1
            loss_acc[0] += loss.detach().double()
            loss_acc[1] += 1
            windows += len(x) * world
            if not acc.sync_gradients:
                continue
            st["step"] += 1
            ema.update(model)
            if on_step is not None:
                on_step(st["step"])
            bar.update(1)
            if st["step"] % 10 == 0 or st["step"] == 1:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
            stopped = stop_now(st["step"], stop_after, tc.max_minutes, t0 - elapsed0, acc)
            end_epoch = st["step"] % epoch_steps == 0 or st["step"] == tc.max_steps
            if not (end_epoch or stopped):
                continue
            # bookkeeping of the epoch so far (kept in the checkpoint, so a resumed epoch reports all its steps)
            sums = acc.reduce(loss_acc, "sum")
            st["loss_sum"] += float(sums[0])
            st["loss_n"] += int(sums[1])
            loss_acc.zero_()
            st["elapsed_s"] = elapsed0 + time.time() - t0
            if end_epoch:
                st["epoch"] += 1
                train_time = time.time() - t_epoch
                val = validate() if len(val_idx) else float("nan")
                sched.observe(val)
                st["val_loss"] = val
                if log is not None:
                    log.append(step=st["step"], epoch=st["epoch"], train_loss=st["loss_sum"] / max(1, st["loss_n"]),
                               val_loss=val, lr=opt.param_groups[0]["lr"], windows_per_s=windows / train_time,
                               elapsed_s=st["elapsed_s"])
                    bar.write(f"epoch {st['epoch']} step {st['step']}: train {st['loss_sum'] / max(1, st['loss_n']):.4f} "
                              f"val {val:.4f} lr {opt.param_groups[0]['lr']:.2e} {windows / train_time:.1f} windows/s"
                              + (f" DP epsilon {dp.epsilon(st['step']):.3f}" if dp is not None else ""))
                if plot_fn is not None and tc.plot_every and st["epoch"] % tc.plot_every == 0 and main:
                    plot(st["epoch"])
                st["loss_sum"], st["loss_n"] = 0.0, 0
            last_ckpt = save()
            t_epoch, windows = time.time(), 0
            if stopped:
                break
        bar.close()
        return TrainResult(st["step"], model_file, last_ckpt, float(st["val_loss"] or float("nan")),
                           stopped and st["step"] < tc.max_steps, main)


class _Endless:
    """The DataLoader's sampler: this process's index lists from micro-batch `start` on (see data_order)."""

    def __init__(self, order: WindowOrder, start: int) -> None:
        self.order, self.start = order, start

    def __iter__(self):  # type: ignore[no-untyped-def]
        return self.order.batches(self.start)
