"""Training of a learned first stage (VAE, VQ-VAE, VQ-GAN): `train_first_stage(cfg, resume=...)`.

Called by `train.py --stage first_stage`. It reuses the pieces of the diffusion loop (diffusion/train_loop.py):
accelerate for devices and processes, the seeded resumable data order (data_order.py), the LR schedule
(lr_schedule.py), resumable checkpoints (train_state.py: `--resume latest` is exact), the CSV log
(train_log.py) and the progress bar; it knows the first stage only through the `LearnedFirstStage`
training interface (`loss(x, step)`, `disc_loss(x, step)`, `ae_parameters()`, `disc_parameters()`).
It lives in diffusion/ because those pieces do (imports flow diffusion -> first_stage, docs/design.md section 1).

Writes into `model.first_stage.out_dir`: config.yaml, log.csv (per epoch: training loss, validation loss, and
per channel the RMSE and PRD of reconstructions in physical units on fixed validation-patient windows),
plots/epoch-XXXX.png (originals with their reconstructions drawn over them), checkpoints/ and
first_stage.safetensors (weights + latent scale factor + data description; what diffusion configs load).
Settings: `model.first_stage.train` (steps, batch, lr, crops) and the rest from `train`.
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
from dataloader.config.typed import to_dict
from dataloader.dataset import WindowDataset
from dataloader.errors import UserError
from first_stage import LearnedFirstStage, build_first_stage
from first_stage.files import first_stage_file, save_first_stage_file

from training.data_order import WindowOrder
from training.lr_schedule import LRSchedule
from training.train_log import TrainLog
from .train_loop import TrainResult, check_data, stop_now, train_threads
from training.train_state import claim_run, find_checkpoint, list_checkpoints, load_checkpoint, read_state, save_checkpoint

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


def train_first_stage(cfg: Config, *,
                      resume: Optional[str] = None,        # "latest", a checkpoint folder, or None (fresh run)
                      stop_after: Optional[int] = None,    # stop (checkpoint + file) at this step
                      plot_fn: Optional[ReconPlotFn] = None,  # draws the epoch PNGs (train.py passes evaluation's)
                      progress: bool = True,               # tqdm bar on the main process
                      accelerator: Any = None,             # an accelerate.Accelerator; default: a fresh one
                      ) -> TrainResult:
    """Train `cfg.model.first_stage` on `cfg.data.prepared`; returns how it ended (model_file = the stage file)."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    fc = cfg.model.first_stage
    ft, tc = fc.train, cfg.train
    if tc is None:
        raise UserError(cfg.path or "config", "training needs the `train` section")
    acc = accelerator or Accelerator()
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    threads = train_threads(tc.threads, world)
    out = Path(fc.out_dir or "")
    ckpt = find_checkpoint(out, resume) if resume else None
    if ckpt is None and list_checkpoints(out):
        raise UserError("model.first_stage.out_dir", f"{out} already holds checkpoints; continue with --resume "
                                                     "latest, retrain with --retrain, or choose another out_dir")
    train_ds = WindowDataset(cfg.data.prepared, "train")
    val_ds = WindowDataset(train_ds.file, "val")
    check_data(train_ds, cfg)
    C, L = len(train_ds.channels), int(train_ds.window_len)
    torch.manual_seed(tc.seed)
    stage = build_first_stage(fc, C, L)
    if not isinstance(stage, LearnedFirstStage):
        raise UserError("model.first_stage.type", f"{fc.type!r} has nothing to train")
    if ft.crop is not None and ft.crop > L:
        raise UserError("model.first_stage.train.crop", f"{ft.crop} is longer than the windows ({L} samples)")
    with contextlib.ExitStack() as run:  # the run folder, locked for the run (training/train_state.py)
        ckpt = claim_run(run, acc, out, resume, "model.first_stage.out_dir")
        if main:
            (out / "plots").mkdir(exist_ok=True)
            write_text_atomic(out / "config.yaml", cfg.yaml(), "model.first_stage.out_dir")
        data_desc = {"channels": [{"name": c["name"], "unit": c.get("unit", ""), "range": list(c["range"])}
                                  for c in train_ds.channels], "fs": float(train_ds.fs), "window_len": L}

        opt = torch.optim.AdamW(stage.ae_parameters(), lr=ft.lr, betas=tuple(tc.betas), eps=tc.adam_eps,
                                weight_decay=tc.weight_decay, foreach=True)
        d_params = stage.disc_parameters()
        opt_d = torch.optim.AdamW(d_params, lr=ft.lr, betas=(0.5, 0.9)) if d_params else None  # Esser et al. 2021
        loss_module, opt = acc.prepare(_StageLoss(stage), opt)
        if opt_d is not None:
            opt_d = acc.prepare(opt_d)
        sched = LRSchedule(opt, "cosine", ft.lr, ft.max_steps, ft.warmup_steps, ft.lr / 20, tc.plateau_patience,
                           tc.plateau_factor)
        order = WindowOrder(len(train_ds), ft.batch_size, tc.seed, rank, world)
        gen = torch.Generator(device=acc.device).manual_seed(tc.seed * 1000 + 43 + rank)  # crops
        torch.manual_seed(tc.seed * 1000 + 29 + rank)  # global RNG: VAE draws, codebook restarts
        st: dict[str, Any] = {"step": 0, "epoch": 0, "consumed": 0, "elapsed_s": 0.0, "loss_sum": 0.0, "loss_n": 0}
        if ckpt is not None:
            saved = read_state(ckpt)
            if saved.get("first_stage_config") != _arch(fc) or saved.get("world_size") != world:
                raise UserError("--resume", f"{ckpt} was trained with another first-stage section or process count")
            st, _, rank_tensors = load_checkpoint(acc, ckpt)
            gen.set_state(rank_tensors["generator"])
        names = [str(c["name"]) for c in train_ds.channels]
        columns = ("step", "epoch", "train_loss", "val_loss", "lr", "windows_per_s", "elapsed_s",
                   *[f"rmse_{n}" for n in names], *[f"prd_{n}" for n in names])
        log = TrainLog(out / "log.csv", st["step"] if ckpt else None, columns) if main else None
        n_val = min(len(val_ds), max(1, tc.val_batches) * ft.batch_size * world)
        val_idx = (np.unique(np.linspace(0, len(val_ds) - 1, n_val).round().astype(np.int64)) if len(val_ds)
                   else np.zeros(0, np.int64))
        scale_order = WindowOrder(len(train_ds), ft.batch_size, tc.seed + 1)  # fixed batches for the latent scale
        model_file = first_stage_file(out)

        def validate() -> tuple[float, np.ndarray, np.ndarray]:
            """(mean loss, RMSE (C,), PRD (C,)) on the fixed validation windows (whole windows; all processes)."""
            stage.eval()
            mine = val_idx[rank::world]
            sums = torch.zeros(2 + 3 * C, dtype=torch.float64, device=acc.device)
            with torch.no_grad():
                for b in range(0, len(mine), ft.batch_size):
                    x, _, _ = val_ds.get_batch(mine[b:b + ft.batch_size])
                    x = x.to(acc.device)
                    loss = stage.loss(x, st["step"])["loss"]
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

        def plot(epoch: int) -> None:
            ds, pool = (val_ds, val_idx) if len(val_idx) else (train_ds, np.arange(len(train_ds)))
            idx = pool[np.unique(np.linspace(0, len(pool) - 1, min(len(pool), tc.plot_samples)).round().astype(np.int64))]
            x, _, _ = ds.get_batch(idx)
            stage.eval()
            with torch.no_grad():
                r = stage(x.to(acc.device)).float().clamp(-1, 1).cpu()
            stage.train()
            plot_fn(out / "plots" / f"epoch-{epoch:04d}.png", ds.to_physical(x), ds.to_physical(r), train_ds.fs,
                    train_ds.channels, title=f"step {st['step']}: validation windows (black) and their {fc.type} "
                                              f"reconstructions (red), factor {fc.factor}")

        def save() -> Path:
            state = dict(st, world_size=world, first_stage_config=_arch(fc), lr_schedule=sched.state_dict())

            def write_stage(path: Path) -> None:  # the stage file travels inside the checkpoint
                stage.eval()
                with torch.no_grad():
                    batches = (train_ds.get_batch(i)[0].to(acc.device) for _, i in
                               zip(range(ft.scale_batches), scale_order.batches(0)))
                    scale = stage.fit_scale(batches)
                stage.train()
                save_first_stage_file(path, stage.state_dict(), stage.stage_config(), data_desc, scale,
                                      st["step"], cfg.yaml())

            return save_checkpoint(acc, out, st["step"], state, {}, {"generator": gen.get_state()}, cfg.yaml(),
                                   tc.keep_checkpoints, inference={model_file.name: write_stage})

        if ckpt is not None:
            sched.load_state_dict(st["lr_schedule"])
        if main:
            print(f"training {fc.type} first stage ({sum(p.numel() for p in stage.ae_parameters()):,} parameters"
                  + (f" + {sum(p.numel() for p in d_params):,} discriminator" if d_params else "")
                  + f") on {world} process(es) x {threads} thread(s), device {acc.device}; {len(train_ds)} training / "
                  f"{len(val_ds)} validation windows of {L} samples; step {st['step']} -> {ft.max_steps}", flush=True)
        bar = tqdm(total=ft.max_steps, initial=st["step"], disable=not (progress and acc.is_local_main_process),
                   dynamic_ncols=True, desc=f"train {fc.type}")
        t0, t_epoch, windows, stopped = time.time(), time.time(), 0, False
        elapsed0, last_ckpt = float(st["elapsed_s"]), ckpt
        batches = order.batches(st["consumed"])
        stage.train()
        while st["step"] < ft.max_steps:
            idx = next(batches)
            x = _crop(train_ds.get_batch(idx)[0].to(acc.device), ft.crop, gen)
            sched.apply(st["step"])
            with acc.autocast():
                parts = loss_module(x, st["step"])
            acc.backward(parts["loss"])
            if tc.grad_clip:
                acc.clip_grad_norm_(stage.ae_parameters(), tc.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if opt_d is not None:
                with acc.autocast():
                    d = loss_module(x, st["step"], disc=True)
                if d:
                    acc.backward(d["loss"])
                    opt_d.step()
                opt_d.zero_grad(set_to_none=True)
            st["consumed"] += 1
            st["step"] += 1
            st["loss_sum"] += float(parts["loss"].detach())
            st["loss_n"] += 1
            windows += len(x) * world
            bar.update(1)
            if st["step"] % 10 == 0 or st["step"] == 1:
                post = {k: f"{float(parts[k].detach()):.4f}" for k in ("rec", "ffl", "kl", "perplexity") if k in parts}
                bar.set_postfix(loss=f"{float(parts['loss'].detach()):.4f}", **post)
            stopped = stop_now(st["step"], stop_after, ft.max_minutes, t0 - elapsed0, acc)
            end_epoch = st["step"] % ft.epoch_steps == 0 or st["step"] == ft.max_steps
            if not (end_epoch or stopped):
                continue
            st["elapsed_s"] = elapsed0 + time.time() - t0
            st["epoch"] += int(end_epoch)
            train_time = max(1e-9, time.time() - t_epoch)
            val, rmse, prd = validate() if len(val_idx) else (float("nan"), np.full(C, np.nan), np.full(C, np.nan))
            if log is not None:
                log.append(step=st["step"], epoch=st["epoch"], train_loss=st["loss_sum"] / max(1, st["loss_n"]),
                           val_loss=val, lr=opt.param_groups[0]["lr"], windows_per_s=windows / train_time,
                           elapsed_s=st["elapsed_s"], **{f"rmse_{n}": float(v) for n, v in zip(names, rmse)},
                           **{f"prd_{n}": float(v) for n, v in zip(names, prd)})
                units = [str(c.get("unit", "")) for c in train_ds.channels]
                bar.write(f"epoch {st['epoch']} step {st['step']}: train {st['loss_sum'] / max(1, st['loss_n']):.4f} "
                          f"val {val:.4f}; RMSE " + ", ".join(f"{n} {v:.3g} {u}" for n, v, u in zip(names, rmse, units))
                          + "; PRD " + ", ".join(f"{n} {v:.3g} %" for n, v in zip(names, prd)))
            if plot_fn is not None and tc.plot_every and main and st["epoch"] % tc.plot_every == 0 and end_epoch:
                plot(st["epoch"])
            st["loss_sum"], st["loss_n"] = 0.0, 0
            last_ckpt = save()
            t_epoch, windows = time.time(), 0
            if stopped:
                break
        bar.close()
        return TrainResult(st["step"], model_file, last_ckpt, float("nan"), stopped and st["step"] < ft.max_steps, main)
