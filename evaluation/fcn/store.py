"""Trained FCN feature extractors per prepared file and label column: find, check, train, save.

One FCN per label column (docs/evaluation.md: "one FCN per label column"), trained on windows of the TRAIN patients,
early-stopped on the VALIDATION patients, scored on the TEST patients. The file
`<eval.fcn.dir>/<prepared stem>-<label>.safetensors` holds the weights and metadata (evaluation/fcn/weights.py):
the prepared file's sha256, the label spec (name and class names), the training settings and the test scores.
A stored FCN is reused only when all of these match the current data and config; otherwise it is retrained.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evaluation.config import FCNConfig
from dataloader.errors import UserError
from dataloader.prepared import PreparedFile

from ..metrics.tstr import macro_f1
from ..real_data import data_sha256, real_subset
from .model import FCN, predict_proba, train_fcn
from .weights import extractor_meta, load_extractor, save_extractor


def fcn_path(cfg: FCNConfig, prepared: str, label: str) -> Path:
    """Where the FCN of `label` for the prepared file `prepared` lives."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
    return Path(cfg.dir) / f"{Path(prepared).stem}-{safe}.safetensors"


def label_entry(pf: PreparedFile, label: str) -> tuple[int, dict[str, Any]]:
    """(column index, label spec entry) of a label name of the prepared file; UserError listing the names."""
    names = pf.label_names
    if label not in names:
        raise UserError("eval.labels", f"unknown label {label!r}; the prepared file {pf.path} has: "
                                       f"{', '.join(names) or '(no labels)'}")
    j = names.index(label)
    return j, pf.label_spec[j]


def _settings(cfg: FCNConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d.pop("dir")
    return d


def mismatch(meta: dict[str, Any], sha: str, label: str, classes: list[str], pf: PreparedFile,
             cfg: FCNConfig) -> str | None:
    """Why a stored FCN does not fit the data and config (None when it does)."""
    if meta.get("kind") != "fcn":
        return "not an FCN"
    if meta.get("data_sha256") != sha:
        return "trained on another version of the prepared file"
    if meta.get("label") != label or meta.get("class_names") != list(classes):
        return "trained for another label spec"
    if meta.get("channels") != pf.channel_names or meta.get("window_len") != pf.window_len:
        return "trained on other channels or window length"
    if meta.get("settings") != _settings(cfg):
        return "trained with other eval.fcn settings"
    return None


def train_label_fcn(pf: PreparedFile, label: str, cfg: FCNConfig, *, device: str = "cpu",
                    log: Callable[[str], None] | None = None) -> tuple[FCN, dict[str, Any]]:
    """Train the FCN of one label column on train patients (val patients for early stopping) and score it on
    the test patients. Returns (model, metadata for `save_extractor`)."""
    j, spec = label_entry(pf, label)
    classes = list(spec["classes"])
    tr = real_subset(pf, "train", cfg.max_train_windows, cfg.seed)
    va = real_subset(pf, "val", cfg.max_val_windows, cfg.seed)
    te = real_subset(pf, "test", None, cfg.seed)
    if len(va.x) == 0:
        raise UserError(pf.path, "the validation split has no windows: the FCN needs it for early stopping")
    t0 = time.perf_counter()
    model = train_fcn(tr.x, tr.y[:, j], va.x, va.y[:, j], len(classes), epochs=cfg.epochs, max_steps=cfg.max_steps,
                      batch=cfg.batch_size, lr=cfg.lr, patience=cfg.patience, seed=cfg.seed, device=device,
                      downsample=cfg.downsample, balanced=cfg.balanced, log=log)
    train_s = time.perf_counter() - t0
    pred = predict_proba(model, te.x, device=device).argmax(axis=1)
    yt = te.y[:, j]
    counts = np.bincount(yt, minlength=len(classes))
    recall = [float((pred[yt == k] == k).mean()) for k in range(len(classes)) if counts[k]]
    scores = {"test_accuracy": float((pred == yt).mean()), "test_macro_f1": macro_f1(yt, pred, len(classes)),
              "test_balanced_accuracy": float(np.mean(recall)),
              "test_majority_share": float(counts.max() / counts.sum()), "n_test": int(len(yt)),
              "n_train": int(len(tr.x)), "n_val": int(len(va.x)), "train_seconds": round(train_s, 1),
              "test_patients": te.n_patients}
    meta = extractor_meta(model, label=label, class_names=classes, channels=pf.channel_names,
                          window_len=pf.window_len, data_sha256=data_sha256(pf.path), fs=pf.fs,
                          prepared=str(pf.path), settings=_settings(cfg), **scores)
    return model, meta


def load_or_train(pf: PreparedFile, labels: list[str], cfg: FCNConfig, *, train_missing: bool = True,
                  force: bool = False, device: str = "cpu",
                  log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)
                  ) -> dict[str, tuple[FCN, dict[str, Any]]]:
    """The FCN of every label in `labels`: the stored one when it matches the data and config, else a newly
    trained one (saved). `train_missing=False` turns a missing or stale FCN into a UserError instead."""
    sha = data_sha256(pf.path)
    out: dict[str, tuple[FCN, dict[str, Any]]] = {}
    for label in labels:
        _, spec = label_entry(pf, label)
        path = fcn_path(cfg, pf.path, label)
        why = "--force" if force else "none stored"
        if path.is_file() and not force:
            model, meta = load_extractor(path, device)
            why = mismatch(meta, sha, label, spec["classes"], pf, cfg)
            if why is None:
                out[label] = (model, meta)
                continue
        if not train_missing:
            raise UserError(str(path), f"no matching FCN ({why}); run python -m evaluation.fcn.train --config ...")
        log(f"training the FCN for {label!r} ({why}) -> {path}")
        model, meta = train_label_fcn(pf, label, cfg, device=device, log=lambda m: log(f"  {label}: {m}"))
        path.parent.mkdir(parents=True, exist_ok=True)
        save_extractor(path, model, meta)
        log(f"  {label}: test accuracy {meta['test_accuracy']:.3f} (majority class {meta['test_majority_share']:.3f}"
            f", balanced {meta['test_balanced_accuracy']:.3f}, macro-F1 {meta['test_macro_f1']:.3f}) on "
            f"{meta['n_test']} windows of {meta['test_patients']} test patients; {meta['train_seconds']} s")
        out[label] = (model, meta)
    return out
