"""Resumable training state on disk: `out_dir/checkpoints/step-XXXXXXX/`, written whole or not at all.

A checkpoint folder holds what accelerate's `save_state` writes (model weights as safetensors, optimizer
state, the global RNG states of each process) plus our own part, kept free of pickles:
    trainer_state.json            step, epoch, micro-batches consumed, LR schedule, running sums, world size
    trainer_state.safetensors     EMA weights (and any other tensors the loop hands over)
    rng_rank<r>.safetensors       per-process generator states (noise, t, label dropout)
    config.yaml                   the resolved config of the run
Every process writes into `checkpoints/.tmp-step-XXXXXXX/`; after all are done the main process renames it
to `step-XXXXXXX` and prunes the oldest beyond `keep`. A crash mid-write leaves only a `.tmp-` folder,
which the next save removes and `latest` never picks. accelerate loads its files with
`torch.load(weights_only=True)`; we do not use `register_for_checkpointing`, whose loader unpickles.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dataloader.errors import UserError

_STEP_DIR = re.compile(r"^step-(\d+)$")
STATE_JSON = "trainer_state.json"


def checkpoints_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    d = checkpoints_dir(out_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()
             and (p / STATE_JSON).is_file()]
    return [p for _, p in sorted(found)]


def find_checkpoint(out_dir: str | Path, resume: str) -> Path:
    """`--resume latest` -> newest complete folder in out_dir/checkpoints; otherwise a folder path."""
    if resume == "latest":
        found = list_checkpoints(out_dir)
        if not found:
            raise UserError("--resume latest", f"no checkpoint in {checkpoints_dir(out_dir)}")
        return found[-1]
    p = Path(resume)
    if not (p / STATE_JSON).is_file():
        raise UserError("--resume", f"{resume!r} is not a checkpoint folder (expected a folder with {STATE_JSON}, "
                                    "e.g. <train.out_dir>/checkpoints/step-0001000, or 'latest')")
    return p


def save_checkpoint(accelerator: Any, out_dir: str | Path, step: int, state: dict[str, Any],
                    tensors: dict[str, torch.Tensor], rank_tensors: dict[str, torch.Tensor],
                    config_text: str, keep: int) -> Path:
    """Save a resumable state of `step` on every process (collective: all processes must call it).

    `state`: JSON-able loop state; `tensors`: main-process tensors (EMA weights); `rank_tensors`: this
    process's tensors (generator states). Returns the final folder.
    """
    root = checkpoints_dir(out_dir)
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    save_file({k: v.detach().cpu().contiguous() for k, v in rank_tensors.items()},
              str(tmp / f"rng_rank{accelerator.process_index}.safetensors"))
    if accelerator.is_main_process:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                  str(tmp / "trainer_state.safetensors"))
        (tmp / "config.yaml").write_text(config_text)
        # the JSON last: its presence marks a complete folder for list_checkpoints
        (tmp / STATE_JSON).write_text(json.dumps(state, indent=1))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # a rerun from an earlier checkpoint reached this step again
            shutil.rmtree(final)
        tmp.rename(final)
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def read_state(path: Path) -> dict[str, Any]:
    """The loop state of a checkpoint folder (to check it before loading anything)."""
    try:
        return json.loads((path / STATE_JSON).read_text())
    except (OSError, ValueError) as e:
        raise UserError(str(path / STATE_JSON), f"cannot read the training state ({e})") from None


def load_checkpoint(accelerator: Any, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor],
                                                           dict[str, torch.Tensor]]:
    """Restore accelerate's part (model, optimizer, global RNG) and return (state, tensors, rank_tensors)."""
    try:
        state = read_state(path)
        tensors = load_file(str(path / "trainer_state.safetensors"))
        rank_file = path / f"rng_rank{accelerator.process_index}.safetensors"
        if not rank_file.is_file():
            raise UserError(str(path), f"has no generator state for process {accelerator.process_index} "
                                       f"(it was saved by {state.get('world_size')} process(es), "
                                       f"this run has {accelerator.num_processes})")
        rank_tensors = load_file(str(rank_file))
        accelerator.load_state(str(path))
    except (OSError, ValueError, SafetensorError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(str(path), f"cannot read the checkpoint ({type(e).__name__}: {first})") from None
    return state, tensors, rank_tensors
