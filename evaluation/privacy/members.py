"""Who is a member: the audit population, the target's member manifest and the shadows' keep matrix.

Membership is per patient (docs/evaluation.md section 2): a member's windows all trained the target, a
non-member's none. The population is the prepared file's train split (or `privacy.patients` of them drawn
with the seed); the target's members are a random half. The keep matrix (K, P) says which patients each shadow
model trains on: each column holds exactly K/2 True (rounded down for odd K, alternating up), so each patient
is IN for half of the shadows, and each shadow gets about half of the population (Carlini et al. 2022).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dataloader.atomic import write_text_atomic
from dataloader.errors import UserError

FORMAT = "physiodiff-privacy-members-1"


@dataclass
class Membership:
    """The audit's population, the target's members and the shadows' keep matrix."""

    population: list[str]                 # patient ids, sorted
    members: list[str]                    # the target's training patients (subset of population), sorted
    keep: np.ndarray                      # (K, P) bool: shadow k trains on population[p]
    seed: int
    prepared: str                         # the prepared file the ids come from
    manifest_sha256: str                  # its split manifest

    @property
    def is_member(self) -> np.ndarray:
        """(P,) bool, population order."""
        m = set(self.members)
        return np.array([p in m for p in self.population], dtype=bool)

    def shadow_patients(self, k: int) -> list[str]:
        return [p for p, keep in zip(self.population, self.keep[k]) if keep]

    def to_json(self) -> str:
        non = [p for p in self.population if p not in set(self.members)]
        return json.dumps({"format": FORMAT, "prepared": self.prepared, "manifest_sha256": self.manifest_sha256,
                           "seed": self.seed, "population": self.population, "members": self.members,
                           "non_members": non,
                           "keep": [self.shadow_patients(k) for k in range(len(self.keep))]}, indent=1)


def balanced_keep(n_models: int, n_patients: int, seed: int) -> np.ndarray:
    """(K, P) bool keep matrix: column p has K // 2 or ceil(K / 2) True (alternating), at random rows."""
    if n_models < 2:
        raise UserError("--shadows", f"LiRA needs at least 2 shadow models (got {n_models})")
    rng = np.random.default_rng([seed, 4242])
    ranks = rng.random((n_models, n_patients)).argsort(axis=0).argsort(axis=0)
    half = np.full(n_patients, n_models // 2) + (np.arange(n_patients) % 2) * (n_models % 2)
    return ranks < half[None, :]


def draw_membership(train_patients: list[str], n_population: Optional[int], n_shadows: int, seed: int,
                    prepared: str, manifest_sha256: str) -> Membership:
    """Population (n of the train patients, or all), members (a random half), keep matrix for n_shadows."""
    ids = sorted(train_patients)
    rng = np.random.default_rng([seed, 1717])
    if n_population is not None:
        if n_population > len(ids):
            raise UserError("privacy.patients", f"the train split has only {len(ids)} patients (asked {n_population})")
        ids = sorted(rng.choice(ids, n_population, replace=False).tolist())
    if len(ids) < 4:
        raise UserError("privacy.patients", f"an audit needs at least 4 patients (got {len(ids)})")
    members = sorted(rng.choice(ids, len(ids) // 2, replace=False).tolist())
    keep = balanced_keep(n_shadows, len(ids), seed) if n_shadows >= 2 else np.zeros((0, len(ids)), bool)
    return Membership(ids, members, keep, seed, prepared, manifest_sha256)


def read_membership(path: str | os.PathLike, train_patients: list[str], where: str = "privacy.members") -> Membership:
    """Load a manifest; every id must be a train-split patient of the prepared file (else `UserError`)."""
    p = Path(path)
    try:
        d: dict[str, Any] = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{where} {path}", f"cannot read the member manifest ({e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise UserError(f"{where} {path}", f"not a member manifest (expected format {FORMAT})")
    try:
        population, members = [str(x) for x in d["population"]], [str(x) for x in d["members"]]
        keep_ids = [set(map(str, row)) for row in d.get("keep", [])]
    except (KeyError, TypeError) as e:
        raise UserError(f"{where} {path}", f"damaged member manifest ({e})") from None
    known = set(train_patients)
    unknown = sorted((set(population) | set(members) | set().union(*keep_ids)) - known)
    if unknown:
        raise UserError(f"{where} {path}", f"{len(unknown)} patient(s) are not in the train split of the prepared "
                                           f"file: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    if not set(members) <= set(population):
        raise UserError(f"{where} {path}", "members must be a subset of the population")
    keep = np.array([[p in row for p in population] for row in keep_ids], dtype=bool).reshape(len(keep_ids), len(population))
    return Membership(sorted(population), sorted(members), keep, int(d.get("seed", 0)), str(d.get("prepared", "")),
                      str(d.get("manifest_sha256", "")))


def with_shadows(m: Membership, n_shadows: int) -> Membership:
    """The same population and members with a keep matrix for n_shadows (kept if it already has that many)."""
    if len(m.keep) == n_shadows:
        return m
    return Membership(m.population, m.members, balanced_keep(n_shadows, len(m.population), m.seed), m.seed,
                      m.prepared, m.manifest_sha256)


def save_membership(path: str | os.PathLike, m: Membership) -> None:
    write_text_atomic(path, m.to_json() + "\n", "privacy.out_dir")
