"""THE training loop, shared by every model kind: `run_training(task, accelerator, ...)` (docs/design.md
section 3, "Training loop").

A model kind (diffusion/train_loop.py, first_stage/train_loop.py, baselines/train_loop.py) supplies a
`TrainTask`: its optimizers, one optimizer step, the epoch's validation and log fields, its plot and what its
checkpoint holds besides the engine's state. The engine owns the rest, so it is written once:

- the run folder: refused when it holds checkpoints and no resume was asked (`check_fresh`, before the task
  builds anything), claimed and locked for the run, `config.yaml` and `plots/` (main process);
- the EMA of the weights (when the task has `ema_model`), the per-process torch.Generator (seed
  `seed * 1000 + task.gen_offset + rank`) and the global RNG (`seed * 1000 + 29 + rank`: dropout, VAE draws);
- exact resume: `trainer_state.json` (step, epoch, data position, elapsed time, the epoch's loss so far, the
  task's own entries), the EMA and the generator state, then `task.load`;
- the clock: steps, epochs of `task.epoch_steps`, `max_steps`, `stop_after` and `max_minutes` (a resumed run
  counts the time of earlier runs; `stop_now`);
- per epoch: the log.csv row (train_log.py), the progress bar's line, the epoch plot, the checkpoint and the
  inference file inside it (train_state.py).
"""
from __future__ import annotations

import contextlib
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from dataloader.atomic import write_text_atomic
from dataloader.cli import set_threads
from dataloader.config import Config
from dataloader.errors import UserError

from .ema import EMA
from .train_log import COLUMNS, TrainLog
from .train_state import claim_run, find_checkpoint, list_checkpoints, load_checkpoint, read_state, save_checkpoint


@dataclass
class TrainResult:
    """What a training run ended with."""

    step: int                                   # optimizer steps done (counting resumed ones)
    model_file: Path                            # the inference file (EMA weights), e.g. out_dir/model.safetensors
    checkpoint: Path                            # the last resumable state written
    val_loss: float                             # last validation loss (nan without validation)
    stopped_early: bool                         # stopped by stop_after or max_minutes before max_steps
    is_main: bool = True                        # this is the main process (the one that reports)


class TrainTask(ABC):
    """What one model kind adds to the engine. Attributes the engine reads (set them in `__init__` or
    `prepare`); methods it calls, in this order: prepare, check_resume + load (resumed runs), start, then
    step per optimizer step and flush + epoch_end (+ plot) at each epoch end or stop, state / rank_tensors /
    write_file at each save."""

    cfg: Config                                 # the run's config (config.yaml, train.seed, keep_checkpoints)
    out: Path                                   # the run folder
    out_key: str = "train.out_dir"              # the config key named in errors about the run folder
    model_file: Path                            # the inference file, written inside every checkpoint
    max_steps: int
    epoch_steps: int
    max_minutes: Optional[float] = None
    desc: str = "train"                         # progress bar label
    log_columns: tuple[str, ...] = COLUMNS
    gen_offset: int = 17                        # seed of the task's generator: seed * 1000 + gen_offset + rank
    ema_model: Optional[torch.nn.Module] = None  # the weights to average (None: no EMA)
    sync_stop: bool = True                      # the main process's clock decides the stop for every process
    log_every_stop: bool = False                # a stop inside an epoch also validates and writes a row
    first_state: dict[str, Any] = {}            # the task's entries of a fresh run's state (e.g. val_loss)
    plot_fn: Optional[Callable[..., Any]] = None
    plot_every: int = 0

    def prepare(self, acc: Any) -> None:
        """Optimizers, accelerate's prepare, LR schedules (after the run folder is claimed)."""

    def check_resume(self, saved: dict[str, Any], ckpt: Path, world: int) -> None:
        """Refuse a checkpoint of another model, data or process count (UserError), before it is loaded."""

    def load(self, st: dict[str, Any], rank_tensors: dict[str, torch.Tensor]) -> None:
        """Restore the task's own checkpointed state (LR schedules, DP state)."""

    @abstractmethod
    def start(self, run: "Run") -> str:
        """Begin the data at `run.st["consumed"]`; returns the line the main process prints."""

    @abstractmethod
    def step(self, run: "Run") -> tuple[Any, int]:
        """One optimizer step (run.st["step"] is the step's number); adds to run.st's loss_sum / loss_n (or
        to its own sums, see flush); returns (losses for the bar, windows trained on by all processes)."""

    def postfix(self, losses: Any) -> dict[str, str]:
        return {}

    def flush(self, run: "Run") -> None:
        """Move loss sums kept on the device into run.st (at each epoch end or stop)."""

    @abstractmethod
    def epoch_end(self, run: "Run", windows_per_s: float) -> tuple[dict[str, Any], str]:
        """Validate; returns the log row's fields besides step, epoch, train_loss, windows_per_s and
        elapsed_s, and the line the bar writes."""

    def plot(self, run: "Run", epoch: int) -> None:
        """Draw plots/epoch-XXXX.png (main process)."""

    def state(self, run: "Run") -> dict[str, Any]:
        """The task's entries of trainer_state.json (after the engine's)."""
        return {}

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        """This process's checkpointed tensors besides the generator state."""
        return {}

    @abstractmethod
    def write_file(self, run: "Run", path: Path) -> None:
        """Write the inference file to `path`."""


def train_threads(n: Optional[int], local_world: int) -> int:
    """torch threads of this process: train.threads, else OMP_NUM_THREADS, else cores / local processes."""
    if n is None and not os.environ.get("OMP_NUM_THREADS"):
        n = max(1, len(os.sched_getaffinity(0)) // max(1, local_world))
    return set_threads(n)


def check_fresh(out: Path, resume: Optional[str], key: str, hint: str) -> None:
    """Before anything is built: a run folder holding checkpoints needs `resume` (`hint` says the ways on)."""
    ckpt = find_checkpoint(out, resume) if resume else None
    if ckpt is None and list_checkpoints(out):
        raise UserError(key, f"{out} already holds checkpoints; continue with {hint}")


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


@contextlib.contextmanager
def ema_weights(model: torch.nn.Module, ema: Any) -> Iterator[None]:
    """Run a block with the EMA weights in `model`, then put the trained weights back exactly."""
    backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema.copy_to(model)
    try:
        yield
    finally:
        model.load_state_dict(backup)


class Run:
    """One run of a task: what the task's hooks read (acc, st, gen, ema, rank, world, main)."""

    def __init__(self, task: TrainTask, acc: Any) -> None:
        self.task, self.acc = task, acc
        self.rank, self.world, self.main = acc.process_index, acc.num_processes, acc.is_main_process
        self.st: dict[str, Any] = {}
        self.ema: Optional[EMA] = None
        self.gen: Optional[torch.Generator] = None
        self.log: Optional[TrainLog] = None
        self.last_ckpt: Optional[Path] = None
        self.windows = 0                        # windows trained on by all processes since the epoch began

    def open(self, ckpt: Optional[Path]) -> None:
        """The task's optimizers, the EMA, the generators and, for a resumed run, the checkpoint's state."""
        task, acc, tc = self.task, self.acc, self.task.cfg.train
        if self.main:
            (task.out / "plots").mkdir(exist_ok=True)
            write_text_atomic(task.out / "config.yaml", task.cfg.yaml(), task.out_key)
        task.prepare(acc)
        if task.ema_model is not None:
            self.ema = EMA(task.ema_model, decay=tc.ema_decay, warmup=tc.ema_warmup).to(acc.device)
        self.gen = torch.Generator(device=acc.device).manual_seed(tc.seed * 1000 + task.gen_offset + self.rank)
        torch.manual_seed(tc.seed * 1000 + 29 + self.rank)  # global RNG: one stream per process
        self.st = {"step": 0, "epoch": 0, "consumed": 0, "elapsed_s": 0.0, "loss_sum": 0.0, "loss_n": 0,
                   **task.first_state}
        self.last_ckpt = ckpt
        if ckpt is not None:
            task.check_resume(read_state(ckpt), ckpt, self.world)
            self.st, tensors, rank_tensors = load_checkpoint(acc, ckpt)
            if self.ema is not None:
                self.ema.load_state_dict({**self.st["ema"],
                                          **{k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}})
            task.load(self.st, rank_tensors)
            self.gen.set_state(rank_tensors["generator"])
        if self.main:
            self.log = TrainLog(task.out / "log.csv", self.st["step"] if ckpt else None, task.log_columns)

    def save(self) -> Path:
        """A checkpoint of the current step, the inference file inside it."""
        task, st = self.task, self.st
        state = dict(st, **task.state(self))
        tensors: dict[str, torch.Tensor] = {}
        if self.ema is not None:
            ema_state = self.ema.state_dict()
            state["ema"] = {k: v for k, v in ema_state.items() if not isinstance(v, torch.Tensor)}
            tensors = {f"ema.{k}": v for k, v in ema_state.items() if isinstance(v, torch.Tensor)}
        assert self.gen is not None
        return save_checkpoint(self.acc, task.out, st["step"], state, tensors,
                               {"generator": self.gen.get_state(), **task.rank_tensors()}, task.cfg.yaml(),
                               task.cfg.train.keep_checkpoints,
                               inference={task.model_file.name: lambda path: task.write_file(self, path)})

    def epoch_boundary(self, end_epoch: bool, bar: Any, train_time: float) -> None:
        """At an epoch end, or a stop: the epoch's row, line and plot, then a checkpoint."""
        task, st = self.task, self.st
        task.flush(self)
        if end_epoch or task.log_every_stop:
            st["epoch"] += int(end_epoch)
            rate = self.windows / max(1e-9, train_time)
            fields, line = task.epoch_end(self, rate)
            if self.log is not None:
                self.log.append(step=st["step"], epoch=st["epoch"], train_loss=st["loss_sum"] / max(1, st["loss_n"]),
                                windows_per_s=rate, elapsed_s=st["elapsed_s"], **fields)
                bar.write(line)
            if (end_epoch and self.main and task.plot_fn is not None and task.plot_every
                    and st["epoch"] % task.plot_every == 0):
                task.plot(self, st["epoch"])
            st["loss_sum"], st["loss_n"] = 0.0, 0
        self.last_ckpt = self.save()
        self.windows = 0


def run_training(task: TrainTask, acc: Any, resume: Optional[str] = None, stop_after: Optional[int] = None,
                 progress: bool = True, on_step: Optional[Callable[[int], None]] = None) -> TrainResult:
    """Claim the run folder, resume or start, and step `task` to its max_steps (or a stop); returns how it
    ended. `on_step` is called with the step number after each optimizer step (benchmarks)."""
    from tqdm.auto import tqdm

    run = Run(task, acc)
    with contextlib.ExitStack() as stack:
        # the run folder is created and locked only now that data and model are known to be good (bad input
        # leaves nothing behind); the checkpoint to resume is found again under the lock
        run.open(claim_run(stack, acc, task.out, resume, task.out_key))
        st = run.st
        line = task.start(run)
        if run.main:
            print(line, flush=True)
        bar = tqdm(total=task.max_steps, initial=st["step"], dynamic_ncols=True, desc=task.desc,
                   disable=not (progress and acc.is_local_main_process))
        t0, t_epoch, stopped = time.time(), time.time(), False
        elapsed0 = float(st["elapsed_s"])
        while st["step"] < task.max_steps:
            losses, windows = task.step(run)
            run.windows += windows
            st["step"] += 1
            if run.ema is not None:
                run.ema.update(task.ema_model)
            if on_step is not None:
                on_step(st["step"])
            bar.update(1)
            if st["step"] % 10 == 0 or st["step"] == 1:
                bar.set_postfix(task.postfix(losses))
            stopped = stop_now(st["step"], stop_after, task.max_minutes, t0 - elapsed0,
                               acc if task.sync_stop else None)
            end_epoch = st["step"] % task.epoch_steps == 0 or st["step"] == task.max_steps
            if end_epoch or stopped:
                st["elapsed_s"] = elapsed0 + time.time() - t0
                run.epoch_boundary(end_epoch, bar, time.time() - t_epoch)
                t_epoch = time.time()
            if stopped:
                break
        bar.close()
        return TrainResult(st["step"], task.model_file, run.last_ckpt,  # type: ignore[arg-type]
                           float(st.get("val_loss") or float("nan")), stopped and st["step"] < task.max_steps,
                           run.main)
