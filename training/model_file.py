"""The inference file `out_dir/model.safetensors` of every model kind: EMA weights and what is needed to use them.

safetensors only (no pickles). Metadata (string -> string):
    format            "physiodiff-model-1"
    config            the resolved config text of the training run (model, data, train, sample)
    data              JSON: channels (name, unit, range), fs, window_len, label names, classes per label,
                      class names, the training windows' label distribution (unique rows + counts, used by
                      `generate.py --samples N`) and the sha256 of the split manifest; no patient ids
    step              training step of the weights
    package_version   physiodiff version that wrote it
`load_model_file` rebuilds the model from the stored config, loads the weights and checks the file
against the config the user passed: a missing or truncated file, other channels or another window length
are `UserError`s that name both sides.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from safetensors import SafetensorError, safe_open

from dataloader.tensor_file import save_tensors
from dataloader.config import Config, config_from_text
from dataloader.errors import UserError

FORMAT = "physiodiff-model-1"


def package_version() -> str:
    """The installed physiodiff version ("unknown" when run from a tree that was never installed)."""
    try:
        from importlib.metadata import version

        return version("physiodiff")
    except Exception:
        return "unknown"


@dataclass
class DataSpec:
    """What the model was trained on: shapes, units, labels (travels inside model and synthetic files)."""

    channels: list[dict[str, Any]]              # [{"name", "unit", "range": [lo, hi]}] in channel order
    fs: float                                   # sampling rate of the windows (Hz)
    window_len: int                             # L, samples per window
    label_names: list[str] = field(default_factory=list)        # one per label column
    class_names: list[list[str]] = field(default_factory=list)  # class names per label column
    label_counts: list[list[int]] = field(default_factory=list)  # training windows: unique label rows + count
    manifest_sha256: str = ""                   # sha256 of the patient split manifest (no ids)

    @property
    def label_classes(self) -> list[int]:
        return [len(c) for c in self.class_names]

    @property
    def channel_names(self) -> list[str]:
        return [str(c["name"]) for c in self.channels]

    @property
    def ranges(self) -> tuple[list[float], list[float]]:
        """(lo, hi) per channel, for dataloader.scaling."""
        return [float(c["range"][0]) for c in self.channels], [float(c["range"][1]) for c in self.channels]

    def label_spec(self) -> list[dict[str, Any]]:
        return [{"name": n, "classes": list(c)} for n, c in zip(self.label_names, self.class_names)]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "DataSpec":
        return cls(**json.loads(text))


@dataclass
class ModelMeta:
    """The metadata of a model file, parsed."""

    config: Config
    config_text: str
    data: DataSpec
    step: int
    package_version: str
    sha256: str
    shipped: bool = False  # the file holds a model card (`card`): tools.ship wrote it, its README.md checks it


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_HASHES: dict[tuple[str, int, int, int, int], str] = {}  # (real path, device, inode, size, mtime ns) -> sha256
_RACY_S = 2.0  # a file modified this recently is hashed again next time (see cached_file_sha256)


def cached_file_sha256(path: str | os.PathLike) -> str:
    """file_sha256, remembered for the process while the file's (path, device, inode, size, mtime) stay the
    same: a model file is hashed once although its metadata is read and its card checked more than once
    (generate.py --model, the web app at start and before loading). A file modified less than _RACY_S before
    it was hashed is not remembered: mtime ticks in jiffies, so an edit in the same tick as the write before
    it would keep the key (git's "racily clean" entries); a file that changed while it was hashed neither."""
    def key() -> tuple[str, int, int, int, int]:
        st = os.stat(path)
        return os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    before = key()
    if before in _HASHES:
        return _HASHES[before]
    digest = file_sha256(path)
    if key() == before and time.time() - before[-1] / 1e9 > _RACY_S:
        _HASHES[before] = digest
    return digest


def save_model_file(path: str | os.PathLike, weights: dict[str, torch.Tensor], config_text: str,
                    data: DataSpec, step: int, extra: Optional[dict[str, str]] = None) -> None:
    """Write the inference file atomically (temporary name in the same folder, then rename). `extra`: more
    metadata entries (a DP run adds "dp": JSON of the spent epsilon, delta, unit, noise; diffusion/dp.py)."""
    meta = {"format": FORMAT, "config": config_text, "data": data.to_json(), "step": str(step),
            "package_version": package_version(), **(extra or {})}
    save_tensors(path, weights, meta, "train.out_dir")  # sorted header: same run, same bytes


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _data_spec(raw: Any, path: str) -> DataSpec:
    """The `data` metadata, every field's type and shape checked: a damaged or hand-edited file is refused
    here, naming the field, instead of failing deep inside generation (e.g. label_counts = "x")."""
    def bad(name: str, what: str) -> UserError:
        return UserError(path, f"damaged model metadata: data.{name} {what}")

    names = {f.name for f in dataclasses.fields(DataSpec)}
    if not isinstance(raw, dict) or not {"channels", "fs", "window_len"} <= set(raw) or not set(raw) <= names:
        raise UserError(path, f"damaged model metadata: data must be a JSON object with the keys {sorted(names)}")
    ch = raw["channels"]
    if not isinstance(ch, list) or not ch or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("unit", ""), str)
            and isinstance(c.get("range"), list) and len(c["range"]) == 2 and all(map(_is_num, c["range"]))
            and c["range"][0] < c["range"][1] for c in ch):
        raise bad("channels", "must be a non-empty list of {name, unit, range: [lo, hi]} with finite lo < hi")
    if not _is_num(raw["fs"]) or raw["fs"] <= 0:
        raise bad("fs", f"must be a positive number (got {raw['fs']!r:.40})")
    if not _is_int(raw["window_len"]) or raw["window_len"] < 1:
        raise bad("window_len", f"must be a positive integer (got {raw['window_len']!r:.40})")
    labels, classes = raw.get("label_names", []), raw.get("class_names", [])
    if not isinstance(labels, list) or not all(isinstance(n, str) for n in labels):
        raise bad("label_names", "must be a list of names")
    if not isinstance(classes, list) or len(classes) != len(labels) or not all(
            isinstance(c, list) and c and all(isinstance(n, str) for n in c) for c in classes):
        raise bad("class_names", f"must hold a non-empty list of class names for each of the {len(labels)} labels")
    _check_label_counts(raw.get("label_counts", []), [len(c) for c in classes], bad)
    if not isinstance(raw.get("manifest_sha256", ""), str):
        raise bad("manifest_sha256", "must be a string")
    return DataSpec(**raw)


def _check_label_counts(counts: Any, n_classes: list[int], bad: Callable[[str, str], UserError]) -> None:
    """label_counts: rows [code per label..., window count], codes within their label's classes, count >= 1."""
    width = len(n_classes) + 1
    if not isinstance(counts, list) or not all(isinstance(r, list) and len(r) == width and all(map(_is_int, r))
                                               for r in counts):
        raise bad("label_counts", f"must be a list of rows of {width} integers (codes, then a window count)")
    for i, r in enumerate(counts):
        if r[-1] < 1 or any(not 0 <= c < k for c, k in zip(r[:-1], n_classes)):
            raise bad(f"label_counts.{i}", f"{r} has a code outside its label's classes or a count < 1")


def read_model_meta(path: str | os.PathLike, where: str = "--checkpoint") -> ModelMeta:
    """Parse a model file's metadata (no weights). Missing/truncated/foreign files raise `UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{where} {path}", "model file not found (train first, or pass --checkpoint)")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(str(path), f"not a readable safetensors file, truncated or damaged? ({e})") from None
    if meta.get("format") != FORMAT:
        raise UserError(str(path), f"not a physiodiff model file (expected metadata format {FORMAT})")
    for key in ("data", "step", "config"):
        if not isinstance(meta.get(key), str):
            raise UserError(str(path), f"damaged model metadata: {key!r} is missing")
    try:
        raw = json.loads(meta["data"])
    except (ValueError, RecursionError):
        raise UserError(str(path), "damaged model metadata: 'data' is not JSON") from None
    data = _data_spec(raw, str(path))
    step = meta["step"].strip()
    if not (step.isascii() and step.isdigit() and len(step) < 19):
        raise UserError(str(path), f"damaged model metadata: 'step' must be a non-negative integer (got {step[:40]!r})")
    step = int(step)
    cfg = config_from_text(meta["config"], f"{path} (stored config)")
    return ModelMeta(cfg, meta["config"], data, step, meta.get("package_version", ""), cached_file_sha256(p),
                     "card" in meta)


def check_against_config(data: DataSpec, cfg: Config, path: str) -> None:
    """The model's channels and window length must be the config's (else a `UserError` naming both)."""
    from dataloader.windows import window_length

    names = [c.name for c in cfg.data.channels]
    if names != data.channel_names:
        raise UserError(str(path), f"model channels {data.channel_names} differ from the config's "
                                   f"data.channels {names}")
    units = [c.unit for c in cfg.data.channels]
    model_units = [str(c.get("unit", "")) for c in data.channels]
    if units != model_units:
        raise UserError(str(path), f"model channel units {model_units} differ from the config's {units}")
    fs = cfg.data.target_fs or cfg.data.fs or data.fs
    length, _ = window_length(cfg.data, float(fs))
    if length != data.window_len:
        raise UserError(str(path), f"model window length {data.window_len} samples differs from the config's "
                                   f"{length} (data.window / data.window_s at {fs:g} Hz)")
    if abs(float(fs) - float(data.fs)) > 1e-9:
        raise UserError(str(path), f"model rate {data.fs:g} Hz differs from the config's {fs:g} Hz")


def load_model_file(path: str | os.PathLike, cfg: Optional[Config], device: str | torch.device,
                    build: Callable[[ModelMeta], torch.nn.Module]) -> tuple[torch.nn.Module, ModelMeta]:
    """Rebuild the model from the file's stored config and load its (EMA) weights.

    `cfg`: the user's config, checked against the file (channels, window length, rate). `build`: makes the
    untrained model from the metadata (diffusion/checkpoint.py passes the diffusion model's, baselines
    theirs). Returns the model in eval mode on `device` and its metadata.
    """
    meta = read_model_meta(path)
    if cfg is not None:
        check_against_config(meta.data, cfg, str(path))
    model = build(meta)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(str(path), f"cannot read the weights, truncated or damaged? ({e})") from None
    for k, t in weights.items():  # NaN or inf weights would generate a file of NaN with exit code 0
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(str(path), f"tensor {k!r} holds non-finite values (NaN or inf): the model is damaged "
                                       "or its training diverged")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise UserError(str(path), f"weights do not fit the model its stored config builds ({first})") from None
    return model.to(device).eval(), meta
