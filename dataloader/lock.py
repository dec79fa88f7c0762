"""Exclusive locks on outputs: one writer per output file or run folder, the second told so at once.

`exclusive(target, where)` holds an advisory `flock` on a hidden lock file beside the target
(`.<name>.lock`) for the block. A second process asking for the same target gets one line
(`UserError`: which process holds it) instead of waiting or clobbering the first one's work; the first
is untouched. The kernel drops a lock when its holder dies, so a killed run never blocks the next one;
the lock file itself is removed on release (and a stale one from a killed run is simply locked again).

Removing the file on release races with a process that opened it just before: that process would lock
an unlinked inode while a third one creates and locks a new file. So after locking, the holder checks
that the path still names the inode it locked, and otherwise starts over on the new file.
Locks are re-entrant within a process (nested holders of one target share it), because a run that holds
its output may write it through code that takes the same lock (atomic_path).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from .errors import UserError

_HELD: dict[str, list[int]] = {}  # lock path -> [fd, nesting depth] held by this process


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of an output: `.<name>.lock` beside it."""
    p = Path(target)
    return p.with_name(f".{p.name}.lock")


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f"process {int(path.read_text().strip())}"
    return "another process"


def _acquire(lock: Path, target: Path, where: str) -> int:
    """Open, lock and return the fd of `lock` (retrying when the file was replaced under us)."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(where, f"cannot create the lock file {lock} ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UserError(where, f"cannot lock {lock} ({e.strerror})") from None
            raise UserError(where, f"{target} is being written by {_holder(lock)}; wait for it to finish or "
                                   "choose another output") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the previous holder removed the file after we opened it: lock the current one


@contextlib.contextmanager
def exclusive(target: str | os.PathLike, where: str) -> Iterator[Path]:
    """Hold the exclusive lock of `target` (a file or folder path; its parent folder must exist) for the
    block; raises `UserError(where, ...)` at once when another process holds it. Yields the lock path."""
    target = Path(target)
    lock = lock_path(target)
    key = str(lock.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
    else:
        _HELD[key] = [_acquire(lock, target, where), 1]
    try:
        yield lock
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            fd = _HELD.pop(key)[0]
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # while still locked, so nobody else can be holding this inode
            os.close(fd)
