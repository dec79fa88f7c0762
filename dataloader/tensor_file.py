"""Safetensors files written byte-for-byte reproducibly, atomically.

`safetensors.torch.save_file` writes the JSON header's keys (the `__metadata__` entries, the tensor
entries) in an order that changes from one process to the next (a Rust hash map), so two identical
training runs gave model files with different sha256 sums. Here the header is re-serialised with sorted
keys, then padded with spaces to a multiple of 8 bytes as the format asks. The tensor bytes and their
offsets (relative to the end of the header) are left as safetensors laid them out, which is already
deterministic (sorted by dtype alignment, then name), so any safetensors reader loads the file unchanged.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import torch

from .atomic import atomic_path


def canonical_safetensors(tensors: dict[str, torch.Tensor], metadata: Optional[dict[str, str]] = None) -> bytes:
    """The bytes of a safetensors file of `tensors` (contiguous CPU tensors) with a sorted-key header."""
    from safetensors.torch import save

    raw = save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + n:]


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: Optional[dict[str, str]] = None, where: str = "output") -> None:
    """Write `tensors` (copied to contiguous CPU tensors) and string `metadata` to `path`, atomically."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = canonical_safetensors(cpu, metadata)
    with atomic_path(path, where) as tmp:
        tmp.write_bytes(data)
