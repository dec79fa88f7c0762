"""Atomic file output: write to a temporary name in the target folder, then `os.replace`.

A failure (exception, Ctrl-C) removes the temporary file, so no partial output is ever left
behind and an existing file of the same name is not lost.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import UserError


def check_out_dir(path: str | os.PathLike, where: str = "output") -> Path:
    """Return `path` as a Path after checking that its parent folder exists (no silent mkdir)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(where, f"folder {str(parent)!r} does not exist")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, where: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds."""
    final = check_out_dir(path, where)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{final.name}.", dir=final.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the usual permissions (0666 minus the umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str, where: str = "output") -> None:
    """Write a text file atomically."""
    with atomic_path(path, where) as tmp:
        tmp.write_text(text)
