"""One progress bar per metric (tqdm on stderr; on a non-terminal, one log line per metric instead)."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

from tqdm.auto import tqdm


@contextlib.contextmanager
def metric_bar(desc: str, total: int = 1, unit: str = "step") -> Iterator[tqdm]:
    """A bar for one metric's work; the caller calls `bar.update(k)`. Prints `desc: N s` when not a terminal."""
    tty = sys.stderr.isatty()
    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not tty, leave=True,
               dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        yield bar
        if bar.n < total:
            bar.update(total - bar.n)
    finally:
        bar.close()
        if not tty:
            print(f"  {desc}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
