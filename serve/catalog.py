"""The models the app serves: found once at start, described by a card, loaded on first use and then cached.

A model is a physiodiff inference file (`model.safetensors`, training/model_file.py). `--models` names files
or folders; a folder is searched for `*.safetensors` files (any depth, except in hidden folders and
training runs' `checkpoints/`). A model's name is its folder's name
when the file is called `model.safetensors` (models/ctg-4hz/model.safetensors -> "ctg-4hz"), else the file's
stem. Only the metadata is read at start (cheap); the weights are loaded by the first job that needs them,
once per model (a lock per model: two first jobs do not load it twice).

A shipped model (a file tools.ship wrote: it holds a `card`) must match the sha256 its README.md states
(training.model_card.check_shipped): one that does not, or has no such card, stops the app at start with one
line naming the README (a server that quietly offered fewer models would hide a damaged file). Before a model
is loaded its file is checked again (hashed anew only if its size, mtime or inode changed): a file replaced
since the start fails that job with the reason, and the log says so.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from dataloader.errors import UserError
from training.model_card import check_shipped
from training.model_file import ModelMeta, cached_file_sha256, read_model_meta

log = logging.getLogger("serve")


@dataclass
class ModelEntry:
    """One served model: its file, metadata and (once loaded) the network."""

    name: str
    path: Path
    meta: ModelMeta
    lock: threading.Lock = field(default_factory=threading.Lock)
    model: Any = None

    @property
    def window_seconds(self) -> float:
        return self.meta.data.window_len / float(self.meta.data.fs)

    def card(self) -> dict[str, Any]:
        """The model card: what the model makes and what it learned from (the file's metadata only)."""
        d, cfg = self.meta.data, self.meta.config
        train = cfg.get("train")
        return {
            "name": self.name,
            "channels": [{"name": str(c["name"]), "unit": str(c.get("unit", "")),
                          "range": [float(c["range"][0]), float(c["range"][1])]} for c in d.channels],
            "fs": float(d.fs), "window_len": int(d.window_len), "window_seconds": self.window_seconds,
            "labels": [{"name": s["name"], "classes": list(s["classes"])} for s in d.label_spec()],
            "training": {"step": int(self.meta.step), "windows": int(sum(r[-1] for r in d.label_counts)),
                         "model_type": cfg.model.type, "size": cfg.model.size,
                         "first_stage": cfg.model.first_stage.type,
                         "batch_size": None if train is None else int(train.batch_size),
                         "manifest_sha256": d.manifest_sha256, "package_version": self.meta.package_version},
            "sha256": self.meta.sha256,
        }

    def loaded(self, device: Any, prepare: Optional[Callable[[Any], None]] = None) -> Any:
        """The network in eval mode on `device`, loaded from the file the first time only; `prepare(model)`
        runs once, right after loading (render.py installs its progress hook there)."""
        with self.lock:
            if self.model is None:
                from diffusion.checkpoint import load_model_file

                self.check_unchanged()

                model, _ = load_model_file(self.path, None, device)
                if prepare is not None:
                    prepare(model)
                self.model = model
            return self.model


    def check_unchanged(self) -> None:
        """The file is still the one read at start (and, shipped, the one its card describes); else UserError,
        logged: the app offers what it read at start and never loads another file under that name."""
        try:
            digest = cached_file_sha256(self.path)
            if digest != self.meta.sha256:
                raise UserError(str(self.path), f"changed since the app started (sha256 {self.meta.sha256[:12]}... "
                                                f"then, {digest[:12]}... now): restart the app to serve it")
            if self.meta.shipped:
                check_shipped(self.path, digest)
        except (UserError, OSError) as e:
            err = e if isinstance(e, UserError) else UserError(str(self.path), f"cannot read the model file ({e})")
            log.error("model %s refused: %s", self.name, err)
            raise err from None


def _files(spec: Path) -> list[Path]:
    if spec.is_file():
        return [spec]
    if spec.is_dir():  # a training run's checkpoints/ hold resumable state, not inference files
        return sorted(p for p in spec.rglob("*.safetensors") if p.is_file()
                      and not any(part == "checkpoints" or part.startswith(".") for part in p.relative_to(spec).parts))
    raise UserError(f"--models {spec}", "no such file or folder")


def _name(path: Path) -> str:
    return path.parent.name if path.name == "model.safetensors" and path.parent.name else path.stem


def find_models(specs: Sequence[Path]) -> dict[str, ModelEntry]:
    """Every model file named by `specs` (files or folders), by name. UserError when there is none, when two
    share a name, when a file is not a diffusion model the app can run on its own, or when a shipped model
    does not match its card."""
    found: dict[str, ModelEntry] = {}
    for spec in specs:
        for path in _files(Path(spec)):
            meta = read_model_meta(path, "--models")
            if meta.config.model.type != "diffusion":
                raise UserError(f"--models {path}", f"a {meta.config.model.type} model; the app serves "
                                                    "diffusion models")
            if meta.config.get("sr") is not None:
                raise UserError(f"--models {path}", "a model with a super-resolution stage (two files); the app "
                                                    "serves single-file models")
            if meta.shipped:
                check_shipped(path, meta.sha256)
            name = _name(path)
            if name in found:
                raise UserError(f"--models {path}", f"a second model named {name!r} (the first: {found[name].path})")
            found[name] = ModelEntry(name, path, meta)
    if not found:
        shown = ", ".join(str(s) for s in specs) or "(none given)"
        raise UserError("--models", f"no model files (*.safetensors) in {shown}: train one (train.py) or pass "
                                    "its model.safetensors")
    return found
