"""Progress on stderr: a tqdm bar on a terminal; on a pipe or a log file, plain lines instead.

A bar redrawn with carriage returns is unreadable in a log file (or nothing at all, when disabled), and a
long step that prints nothing until it ends looks hung. `LineProgress` prints `desc: done/total units (pct%)
T s` each time another `every_pct` percent is done or `every_s` seconds have passed, and once at the end.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import IO, Iterator, Optional, Union

from tqdm.auto import tqdm


class LineProgress:
    """Log-line progress with tqdm's `update(k)`; also callable as `progress(done, total)` (an `on_batch`)."""

    def __init__(self, desc: str, total: int, unit: str = "step", initial: int = 0, every_pct: float = 10.0,
                 every_s: float = 30.0, stream: Optional[IO[str]] = None) -> None:
        self.desc, self.total, self.unit, self.n = desc, int(total), unit, int(initial)
        self.every_pct, self.every_s = every_pct, every_s
        self.stream = stream if stream is not None else sys.stderr
        self._t0 = self._last_t = time.perf_counter()
        self._last_pct = self._pct()

    def _pct(self) -> float:
        return 100.0 * self.n / self.total if self.total > 0 else 100.0

    def update(self, k: int = 1) -> None:
        """`k` more units are done; print a line if another `every_pct` percent or `every_s` seconds passed."""
        self(self.n + int(k))

    def __call__(self, done: int, total: Optional[int] = None) -> None:
        if total is not None:
            self.total = int(total)
        self.n = int(done)
        now, pct = time.perf_counter(), self._pct()
        if self.n >= self.total or pct - self._last_pct >= self.every_pct or now - self._last_t >= self.every_s:
            self._last_t, self._last_pct = now, pct
            print(f"{self.desc}: {self.n}/{self.total} {self.unit}s ({pct:.0f}%) {now - self._t0:.0f} s",
                  file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to release (tqdm's API)."""


def progress_bar(desc: str, total: int, unit: str = "step", initial: int = 0,
                 enabled: bool = True) -> Union[tqdm, LineProgress]:
    """A tqdm bar when stderr is a terminal, `LineProgress` lines when it is not; a silent bar when not enabled.
    Close it (or use it as `contextlib.closing`)."""
    if enabled and not sys.stderr.isatty():
        return LineProgress(desc, total, unit, initial=initial)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                leave=True, dynamic_ncols=True)


@contextlib.contextmanager
def metric_bar(desc: str, total: int = 1, unit: str = "step") -> Iterator[Union[tqdm, LineProgress]]:
    """A bar for one metric's work; the caller calls `bar.update(k)`. When stderr is not a terminal, progress
    lines while it runs (LineProgress: the last one says `total/total`) and `desc: N s` when it ends."""
    tty = sys.stderr.isatty()
    bar = progress_bar(desc, total, unit)
    t0 = time.perf_counter()
    try:
        yield bar
        if tty and bar.n < total:  # off a terminal the closing `desc: N s` line says it ended
            bar.update(total - bar.n)
    finally:
        bar.close()
        if not tty:
            print(f"  {desc}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
