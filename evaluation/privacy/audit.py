"""One audit folder (privacy.out_dir): its member manifest and its models, created on first use, reused after.

    members.json        population, members, non-members and the keep matrix (members.py)
    target/             the audited model, trained on the members (models.py)
    shadows/KNN-kk/     shadow model k of K (LiRA; RMIA uses the first R as its reference models)
    synthetic.npz       the target's synthetic sample for the black-box attacks
    privacy_<attack>.json/.md/_roc.png   reports (report.py; attribute_run.py: no ROC)
"""
from __future__ import annotations

from pathlib import Path
from dataloader.config import Config
from dataloader.dataset import WindowDataset
from dataloader.errors import UserError

from .members import Membership, draw_membership, read_membership, save_membership, with_shadows


def train_split(cfg: Config) -> WindowDataset:
    return WindowDataset(cfg.data.prepared, "train")


def membership(cfg: Config, n_shadows: int, write: bool = True) -> Membership:
    """The audit's manifest: privacy.members if set, else out_dir/members.json if there, else a new draw.

    Checked against the prepared file's train split (unknown patients are a `UserError`). With write=True a
    new or extended manifest is saved to out_dir/members.json.
    """
    pc = cfg.privacy
    ds = train_split(cfg)
    train_ids = ds.patients()
    sha = str(getattr(ds.file, "manifest_sha256", ""))
    own = Path(pc.out_dir) / "members.json"
    if pc.members:
        m = read_membership(pc.members, train_ids)
    elif own.is_file():
        m = read_membership(own, train_ids, "privacy.out_dir")
    else:
        m = draw_membership(train_ids, pc.patients, n_shadows, pc.seed, str(cfg.data.prepared), sha)
    if m.manifest_sha256 and sha and m.manifest_sha256 != sha:
        raise UserError("privacy.members", "the manifest was drawn on another split of the data (manifest sha256 "
                                           "differs from the prepared file's)")
    if n_shadows >= 2:
        m = with_shadows(m, n_shadows)
    if write:
        Path(pc.out_dir).mkdir(parents=True, exist_ok=True)
        save_membership(own, m)
    return m

