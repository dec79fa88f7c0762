"""Patient-level train/val/test split and its manifest hash.

Splitting by patient (never by window) is what keeps overlapping windows of one patient from landing
on both sides (docs/design.md section 8). The split depends only on the seed, the fractions, the set of
patient ids and (if stratified) their classes: ids are sorted before shuffling, so file order and
worker scheduling cannot change it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Mapping, Optional

import numpy as np

from .config.data_schema import SplitSpec
from .errors import UserError

SPLITS = ("train", "val", "test")


def _allocate(n: int, targets: np.ndarray) -> list[int]:
    """Split n items into 3 counts close to `targets` (wanted counts) by largest remainder; sums to n."""
    t = np.clip(np.asarray(targets, dtype=np.float64), 0.0, None)
    t = t * (n / t.sum()) if t.sum() > 0 else np.array([n, 0.0, 0.0])
    counts = [int(np.floor(v + 1e-9)) for v in t]
    order = sorted(range(3), key=lambda i: (-(t[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def split_patients(patients: list[str], spec: SplitSpec,
                   strata: Optional[Mapping[str, int]] = None) -> dict[str, list[str]]:
    """Patient ids -> {"train": [...], "val": [...], "test": [...]}, each list sorted.

    strata: optional class code per patient; each class is split in the requested fractions
    (largest remainder), so rare classes reach every split when they have enough patients.
    """
    ids = sorted(set(patients))
    if len(ids) != len(patients):
        raise UserError("data.split", "patient ids are not unique")
    fracs = (spec.train, spec.val, spec.test)
    rng = np.random.default_rng(spec.seed)
    groups: dict[int, list[str]] = {}
    for p in ids:
        groups.setdefault(int(strata[p]) if strata is not None else 0, []).append(p)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    # stratified: allocate per class, but keep the totals close to the requested fractions by
    # carrying each class's rounding over to the next class
    carry = np.zeros(3)
    for g in sorted(groups):
        members = [groups[g][i] for i in rng.permutation(len(groups[g]))]
        want = np.array(fracs) * len(members) + carry
        counts = _allocate(len(members), want)
        carry = want - np.array(counts)
        a, b = counts[0], counts[0] + counts[1]
        out["train"] += members[:a]
        out["val"] += members[a:b]
        out["test"] += members[b:]
    if not out["train"]:
        raise UserError("data.split", f"{len(ids)} patient(s) leave none for training; add data or raise train")
    return {s: sorted(v) for s, v in out.items()}


def canonical_json(manifest: Mapping[str, list[str]]) -> str:
    """The manifest as canonical JSON: keys train, val, test in that order, ids sorted, no spaces."""
    return json.dumps({s: sorted(manifest.get(s, [])) for s in SPLITS}, separators=(",", ":"),
                      ensure_ascii=False)


def manifest_sha256(manifest: Mapping[str, list[str]]) -> str:
    """sha256 (hex) of the canonical JSON of the manifest."""
    return hashlib.sha256(canonical_json(manifest).encode("utf-8")).hexdigest()
