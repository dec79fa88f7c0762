"""Split independent work items (score runs, query windows) over worker processes.

'spawn' processes: safe after torch or OpenMP threads were used in the parent (fork is not). Each worker imports
the module of `fn` afresh, so `fn` must be a module-level function and its arguments picklable.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def map_groups(fn: Callable[..., list], n_items: int, workers: int, *args: Any) -> list:
    """fn(item_ids, *args) -> one result per item, for items 0..n_items-1 split into `workers` contiguous groups,
    one process each (in this process when workers <= 1). Results come back in item order."""
    groups = [g.tolist() for g in np.array_split(np.arange(n_items), max(1, min(workers, n_items))) if len(g)]
    if len(groups) <= 1:
        return fn(groups[0] if groups else [], *args)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(len(groups), mp_context=mp.get_context("spawn")) as ex:
        parts = list(ex.map(fn, groups, *[[a] * len(groups) for a in args]))
    return [r for part in parts for r in part]
