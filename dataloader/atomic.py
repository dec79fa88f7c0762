"""Atomic file output: write to a temporary name in the target folder, then `os.replace`.

A failure (exception, Ctrl-C) removes the temporary file, so no partial output is ever left
behind and an existing file of the same name is not lost. A kill (SIGKILL, power loss) cannot run that
clean-up; its temporary file is removed by the next write of the same target, which holds the target's
lock (dataloader/lock.py) and so knows that no live writer owns it. The lock also makes a second
concurrent writer of one output fail at once instead of racing the first.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from .errors import UserError
from .lock import exclusive


def check_out_dir(path: str | os.PathLike, where: str = "output") -> Path:
    """Return `path` as a Path after checking that its parent folder exists (no silent mkdir)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(where, f"folder {str(parent)!r} does not exist")
    return p


def check_out_file(path: str | os.PathLike, where: str = "output") -> Path:
    """`check_out_dir`, and `path` is not an existing folder (so the rename at the end cannot fail)."""
    p = check_out_dir(path, where)
    if p.is_dir():
        raise UserError(where, f"{str(p)!r} is a folder (expected a file name)")
    return p


def remove_stale_temporaries(folder: Path, name: Optional[str] = None) -> list[Path]:
    """Delete what killed atomic writers left in `folder`: files named as `atomic_path` names its temporaries
    (`.tmp-<name>.XXXXXXXX`, mkstemp's suffix), of target `name` only or of any target. Call only while
    holding the lock of that target (or of the whole folder). Other hidden files, such as generate.py's
    resumable `.tmp-<name>.partial`, are never matched. Returns the removed paths."""
    pat = re.compile(r"^\.tmp-" + (re.escape(name) if name is not None else ".+") + r"\.[A-Za-z0-9_]{8}$")
    gone = []
    for q in folder.iterdir() if folder.is_dir() else ():
        if pat.match(q.name) and q.is_file():
            with contextlib.suppress(FileNotFoundError):
                q.unlink()
                gone.append(q)
    return gone


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, where: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds."""
    final = check_out_file(path, where)
    with exclusive(final, where):
        remove_stale_temporaries(final.parent, final.name)
        with _temporary(final) as tmp:
            yield tmp


@contextlib.contextmanager
def _temporary(final: Path) -> Iterator[Path]:
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
