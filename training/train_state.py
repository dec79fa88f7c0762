"""Resumable training state on disk: `out_dir/checkpoints/step-XXXXXXX/`, written whole or not at all.

A checkpoint folder holds what accelerate's `save_state` writes (model weights as safetensors, optimizer
state, the global RNG states of each process) plus our own part, kept free of pickles:
    trainer_state.json            step, epoch, micro-batches consumed, LR schedule, running sums, world size
    trainer_state.safetensors     EMA weights (and any other tensors the loop hands over)
    rng_rank<r>.safetensors       per-process generator states (noise, t, label dropout)
    config.yaml                   the resolved config of the run
    inference/model.safetensors   the inference file(s) of this step, part of the state (see below)
Every process writes into `checkpoints/.tmp-step-XXXXXXX/`; after all are done the main process records
the sha256 of every file in `trainer_state.json` (written last, so its presence marks a complete folder),
renames the folder to `step-XXXXXXX`, prunes the oldest beyond `keep`, and only then copies the inference
file(s) to `out_dir/`. A kill at any point leaves either the previous complete checkpoint or the new one;
since the inference file is inside it, `--resume latest` always ends with the current `out_dir` file (it
is installed again from the checkpoint when missing or stale). A crash mid-write leaves a `.tmp-` folder,
which the next run removes and `latest` never picks. Loading checks every recorded sha256 first, so a
truncated or altered file is refused with one line rather than resumed inexactly (accelerate itself skips
an unreadable RNG file silently). accelerate loads its files with `torch.load(weights_only=True)`; we do
not use `register_for_checkpointing`, whose loader unpickles.

`claim_run` holds the run folder's lock (dataloader/lock.py) for the whole run: a second run on the
same `out_dir` is refused at once instead of interleaving checkpoints with the first.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dataloader.atomic import atomic_path, remove_stale_temporaries
from dataloader.errors import UserError
from dataloader.lock import exclusive

from .model_file import file_sha256

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


# file writers of the inference file(s) that a checkpoint carries: name -> fn(path to write)
InferenceWriters = dict[str, Callable[[Path], None]]


def save_checkpoint(accelerator: Any, out_dir: str | Path, step: int, state: dict[str, Any],
                    tensors: dict[str, torch.Tensor], rank_tensors: dict[str, torch.Tensor],
                    config_text: str, keep: int, inference: Optional[InferenceWriters] = None) -> Path:
    """Save a resumable state of `step` on every process (collective: all processes must call it).

    `state`: JSON-able loop state; `tensors`: main-process tensors (EMA weights); `rank_tensors`: this
    process's tensors (generator states); `inference`: the inference files to write into the checkpoint
    (main process) and then install into `out_dir`. Returns the final folder.
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
    accelerator.wait_for_everyone()  # every process's files are in place before they are hashed
    if accelerator.is_main_process:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                  str(tmp / "trainer_state.safetensors"))
        (tmp / "config.yaml").write_text(config_text)
        if inference:
            (tmp / INFERENCE_DIR).mkdir()
        for name, write in (inference or {}).items():
            write(tmp / INFERENCE_DIR / name)
        # the JSON last: its presence marks a complete folder for list_checkpoints
        (tmp / STATE_JSON).write_text(json.dumps(dict(state, files=_file_hashes(tmp)), indent=1))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # a rerun from an earlier checkpoint reached this step again
            shutil.rmtree(final)
        tmp.rename(final)
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old)
        install_inference_files(final, out_dir)
    accelerator.wait_for_everyone()
    return final


def _file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file below `folder` (relative POSIX paths, sorted)."""
    return {p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != STATE_JSON}


def install_inference_files(ckpt: Path, out_dir: str | Path) -> list[Path]:
    """Copy the checkpoint's inference files (`inference/<name>`) to `out_dir/<name>` where the copy there
    is missing or differs from the sha256 the checkpoint recorded; returns the files written."""
    done = []
    for rel, digest in read_state(ckpt).get("files", {}).items():
        parts = Path(rel).parts
        if len(parts) != 2 or parts[0] != INFERENCE_DIR:
            continue
        dst = Path(out_dir) / parts[1]
        if dst.is_file() and file_sha256(dst) == digest:
            continue
        with atomic_path(dst, "train.out_dir") as tmp:
            shutil.copyfile(ckpt / rel, tmp)
        done.append(dst)
    return done


# the checkpoint subfolder of the inference files (accelerate's own model.safetensors sits beside it)
INFERENCE_DIR = "inference"


def claim_run(stack: contextlib.ExitStack, accelerator: Any, out_dir: str | Path, resume: Optional[str],
              where: str = "train.out_dir") -> Optional[Path]:
    """Start writing a run folder: create it, hold its lock until `stack` closes (main process), remove
    what killed runs left (unfinished checkpoint folders, temporary files), and return the checkpoint to
    resume from (found again under the lock), with its inference files reinstalled where missing or stale."""
    out = Path(out_dir)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        stack.enter_context(exclusive(out, where))
        for p in checkpoints_dir(out).glob(".tmp-step-*"):
            shutil.rmtree(p, ignore_errors=True)
        remove_stale_temporaries(out)  # any target's: the run folder's lock covers them all
    accelerator.wait_for_everyone()
    ckpt = find_checkpoint(out, resume) if resume else None
    if ckpt is None and list_checkpoints(out):
        raise UserError(where, f"{out} already holds checkpoints; continue with --resume latest "
                               f"or choose another {where}")
    if ckpt is not None and accelerator.is_main_process:  # once, not per process: they share the files
        verify_checkpoint(ckpt)
        install_inference_files(ckpt, out)
    accelerator.wait_for_everyone()
    return ckpt


_STATE_KEYS = {"step": int, "epoch": int, "consumed": int, "world_size": int}


def read_state(path: Path) -> dict[str, Any]:
    """The loop state of a checkpoint folder (to check it before loading anything)."""
    try:
        state = json.loads((path / STATE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(str(path / STATE_JSON), f"cannot read the training state ({e})") from None
    if not isinstance(state, dict):
        raise UserError(str(path / STATE_JSON), f"expected a JSON object (got {type(state).__name__})")
    for key, kind in _STATE_KEYS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool) or state[key] < 0:
            raise UserError(str(path / STATE_JSON), f"{key!r} must be a non-negative integer "
                                                    f"(got {state.get(key)!r})")
    files = state.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise UserError(str(path / STATE_JSON), "'files' must map file names to sha256 sums")
    return state


def verify_checkpoint(path: Path) -> None:
    """Check every file the checkpoint recorded against its sha256 (a truncated or altered file, or one
    missing, would resume silently wrong); folders written before hashes were recorded pass unchecked."""
    for name, digest in read_state(path).get("files", {}).items():
        f = path / name
        if ".." in Path(name).parts or not f.is_file():
            raise UserError(str(path), f"checkpoint file {name} is missing")
        if file_sha256(f) != digest:
            raise UserError(str(f), "does not match the sha256 its checkpoint recorded (truncated or altered); "
                                    "resume from an earlier checkpoint")


def load_checkpoint(accelerator: Any, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor],
                                                           dict[str, torch.Tensor]]:
    """Restore accelerate's part (model, optimizer, global RNG) and return (state, tensors, rank_tensors).
    The files' sha256 sums are checked by `claim_run`, which every training loop calls first."""
    try:
        state = read_state(path)
        tensors = load_file(str(path / "trainer_state.safetensors"))
        rank_file = path / f"rng_rank{accelerator.process_index}.safetensors"
        if not rank_file.is_file():
            raise UserError(str(path), f"has no generator state for process {accelerator.process_index} "
                                       f"(it was saved by {state.get('world_size')} process(es), "
                                       f"this run has {accelerator.num_processes})")
        rank_tensors = load_file(str(rank_file))
        rng = _global_rng_states(path, accelerator.process_index)
        accelerator.load_state(str(path))
    except (OSError, ValueError, SafetensorError, RuntimeError, pickle.UnpicklingError, EOFError, KeyError,
            TypeError, AttributeError) as e:
        # torch.load(weights_only=True) refuses a pickle that names anything but tensors and plain data
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(str(path), f"cannot read the checkpoint ({type(e).__name__}: {first[:200]})") from None
    if not torch.equal(torch.get_rng_state(), rng):  # accelerate skips an unreadable RNG file silently
        raise UserError(str(path), "accelerate did not restore the global RNG state; the resume would not be exact")
    return state, tensors, rank_tensors


def _global_rng_states(path: Path, rank: int) -> torch.Tensor:
    """The torch CPU RNG state that accelerate saved for `rank` (loaded as accelerate loads it)."""
    from accelerate.utils import load

    states = load(path / f"random_states_{rank}.pkl", weights_only=True)
    if not isinstance(states, dict) or not isinstance(states.get("torch_manual_seed"), torch.Tensor):
        raise ValueError(f"random_states_{rank}.pkl holds no torch RNG state")
    return states["torch_manual_seed"]
