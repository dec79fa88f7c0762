"""Cache of the real-vs-real floor row per prepared file, so that it is computed once, not per evaluation.

The key is the sha256 of everything the floor depends on: the prepared file's sha256, the reference split,
subset sizes and seed, the label columns, the FCN files (their sha256) and every metric setting. The cache
file `<eval.cache_dir>/<prepared stem>-<data sha256[:12]>-floor-<key[:16]>.json` maps metric -> result and
seconds; metrics asked for later are computed and added. Written atomically.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from dataloader.atomic import write_text_atomic

from .context import EvalContext
from .fcn.store import fcn_path
from .fcn.weights import file_sha256

VERSION = 1


def floor_key(ctx: EvalContext) -> str:
    """sha256 over the floor's inputs and settings (see module docstring)."""
    ev = dataclasses.asdict(ctx.ev)
    for k in ("metrics", "n_synthetic", "cache_dir", "grid_windows", "workers"):   # do not change the numbers
        ev.pop(k)
    ev["fcn"].pop("dir")
    fcns = {lab: file_sha256(fcn_path(ctx.ev.fcn, ctx.pf.path, lab)) for lab in sorted(ctx.fcns)}
    blob = {"version": VERSION, "data_sha256": ctx.sha, "eval": ev, "labels": ctx.labels, "fcns": fcns,
            "physio": ctx.physio}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def cache_file(ctx: EvalContext) -> Path:
    return Path(ctx.ev.cache_dir) / f"{Path(ctx.pf.path).stem}-{ctx.sha[:12]}-floor-{floor_key(ctx)[:16]}.json"


def load_floor(ctx: EvalContext) -> dict[str, Any]:
    """{"results": {metric: ...}, "seconds": {metric: s}} from the cache (empty when there is none)."""
    p = cache_file(ctx)
    if p.is_file():
        try:
            d = json.loads(p.read_text())
            if d.get("version") == VERSION:
                return {"results": d["results"], "seconds": d["seconds"]}
        except (json.JSONDecodeError, KeyError):
            pass                                  # a damaged cache is recomputed
    return {"results": {}, "seconds": {}}


def save_floor(ctx: EvalContext, floor: dict[str, Any]) -> Path:
    p = cache_file(ctx)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(p, json.dumps({"version": VERSION, "prepared": str(ctx.pf.path), "data_sha256": ctx.sha,
                                     **floor}, indent=1, default=float) + "\n")
    return p
