"""Save and load feature extractors (FCN, ConvAutoencoder): weights in safetensors, metadata as JSON.

One file: the safetensors header's metadata holds one key, "physiodiff", whose value is a JSON object:
    format 1; kind "fcn" | "autoencoder"; in_channels; n_classes; downsample; label (the label column the FCN
    predicts, None for the autoencoder); class_names; channels (names, in order); window_len; data_sha256 (of
    the prepared data file it was trained on); and anything else the caller adds (fs, seed, epochs, ...).
Loading rebuilds the model from that metadata and checks every tensor (strict).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from torch import nn

from dataloader.tensor_file import save_tensors
from dataloader.errors import UserError

from .model import FCN, ConvAutoencoder

FORMAT = 1
META_KEY = "physiodiff"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (the data file an extractor was trained on)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as e:
        raise UserError(str(path), f"cannot read: {e.strerror}") from None
    return h.hexdigest()


def extractor_meta(model: nn.Module, *, label: str | None, class_names: list[str] | None, channels: list[str],
                   window_len: int, data_sha256: str, **extra: Any) -> dict[str, Any]:
    """The metadata dict for `save_extractor`; checks that names and counts agree with the model."""
    kind = "fcn" if isinstance(model, FCN) else "autoencoder" if isinstance(model, ConvAutoencoder) else None
    if kind is None:
        raise TypeError(f"not a feature extractor: {type(model).__name__}")
    if len(channels) != model.in_channels:
        raise UserError("extractor_meta", f"{len(channels)} channel names for a model of {model.in_channels}")
    if kind == "fcn":
        if not label:
            raise UserError("extractor_meta", "an FCN needs the name of the label it predicts")
        if class_names is None or len(class_names) != model.n_classes:
            raise UserError("extractor_meta", f"an FCN of {model.n_classes} classes needs {model.n_classes} "
                                              f"class names, got {class_names}")
    meta = {"format": FORMAT, "kind": kind, "in_channels": model.in_channels, "n_classes": model.n_classes,
            "downsample": model.prep.downsample, "label": label if kind == "fcn" else None,
            "class_names": list(class_names) if kind == "fcn" else None, "channels": list(channels),
            "window_len": int(window_len), "data_sha256": data_sha256}
    meta.update(extra)
    return meta


def save_extractor(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write `model`'s weights and `meta` (from `extractor_meta`) to one safetensors file, atomically."""
    save_tensors(path, model.state_dict(), {META_KEY: json.dumps(meta)}, "save_extractor")


def load_extractor(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Read a file written by `save_extractor`: (model in eval mode on `device`, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    where = str(path)
    if not os.path.isfile(path):
        raise UserError(where, "no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise UserError(where, f"not a readable safetensors file ({e})") from None
    if raw is None:
        raise UserError(where, f"no '{META_KEY}' metadata: not a physiodiff feature extractor")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(where, f"metadata is not JSON ({e})") from None
    if meta.get("format") != FORMAT:
        raise UserError(where, f"extractor format {meta.get('format')} is not supported (expected {FORMAT})")
    try:
        if meta["kind"] == "fcn":
            model: nn.Module = FCN(meta["in_channels"], meta["n_classes"], meta["downsample"])
        elif meta["kind"] == "autoencoder":
            model = ConvAutoencoder(meta["in_channels"], meta["downsample"])
        else:
            raise UserError(where, f"unknown extractor kind {meta['kind']!r} (expected 'fcn' or 'autoencoder')")
    except KeyError as e:
        raise UserError(where, f"metadata lacks {e}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise UserError(where, f"weights do not match the metadata: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), meta
