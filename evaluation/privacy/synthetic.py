"""The black-box attacks' inputs: the target's synthetic windows (with the labels they were generated with)
and the DOMIAS feature extractor, each cached in the audit folder (privacy.out_dir) and reused."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from dataloader.config import Config
from dataloader.errors import UserError


def synthetic_labels(pc: Any, labels_pool: np.ndarray) -> np.ndarray:
    """(privacy.synthetic, n_labels) label codes of the target's sample: drawn from `labels_pool` with the seed."""
    rng = np.random.default_rng([pc.seed, 99])
    return labels_pool[rng.integers(0, len(labels_pool), pc.synthetic)]


def target_synthetic(cfg: Config, model_file: Path, labels_pool: np.ndarray, ds: Any
                     ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Scaled synthetic windows (M, C, L) and their label codes (M, n_labels): privacy.synthetic_file (labels
    None: the file's are read by `file_labels`), or a cached sample of the target model with the labels it was
    generated with (those of `labels_pool`, the members' windows, drawn with the seed)."""
    pc = cfg.privacy
    if pc.synthetic_file:
        from dataloader.scaling import to_scaled
        from dataloader.synthetic import read_synthetic

        x, _, _ = read_synthetic(pc.synthetic_file)
        if x.shape[1:] != (len(ds.channels), ds.window_len):
            raise UserError(f"privacy.synthetic_file {pc.synthetic_file}", f"windows {x.shape[1:]} differ from the "
                                                                           f"data's {(len(ds.channels), ds.window_len)}")
        return to_scaled(x, ds.file.lo, ds.file.hi).astype(np.float32), None
    lab = synthetic_labels(pc, labels_pool)
    f = model_file.parent / f"synthetic-{pc.synthetic}-{pc.sampler}-{pc.steps}-{pc.seed}.npy"
    if f.is_file():
        return np.load(f), lab
    import torch

    from diffusion.checkpoint import load_model_file

    model, _ = load_model_file(model_file)
    x = model.sample(pc.synthetic, torch.as_tensor(lab), sampler=pc.sampler, steps=pc.steps, seed=pc.seed,
                     batch_size=250)
    x = x.cpu().numpy().astype(np.float32)
    tmp = f.with_name(".tmp-" + f.name)
    np.save(tmp, x)
    tmp.rename(f)
    return x, lab


def domias_fcn(cfg: Config, ds: Any, log: Any) -> Any:
    """The DOMIAS feature extractor: privacy.fcn, or an FCN trained on the reference patients (cached)."""
    from dataloader.dataset import WindowDataset
    from evaluation.fcn.model import train_fcn
    from evaluation.fcn.weights import extractor_meta, file_sha256, load_extractor, save_extractor

    pc = cfg.privacy
    if pc.fcn:
        return load_extractor(pc.fcn)[0]
    f = Path(pc.out_dir) / f"fcn-{pc.fcn_label}-{pc.fcn_steps}-{pc.seed}.safetensors"
    if f.is_file():
        return load_extractor(f)[0]
    names = ds.label_names
    if pc.fcn_label not in names:
        raise UserError("privacy.fcn_label", f"unknown label {pc.fcn_label!r}; labels: {', '.join(names)}")
    j = names.index(pc.fcn_label)
    xs, ys = [], []
    for s in pc.reference_splits:
        r = WindowDataset(ds.file, s)
        x, y, _ = r.get_batch(np.arange(len(r)))
        xs.append(ds.file.to_physical(x.numpy()).astype(np.float32))
        ys.append(y.numpy()[:, j])
    x, y = np.concatenate(xs), np.concatenate(ys)
    n_cls = len(ds.class_names[j])
    keep = y < n_cls                                  # drop the "missing" class
    x, y = x[keep], y[keep]
    cut = np.random.default_rng([pc.seed, 5]).random(len(x)) < 0.8
    log(f"training the DOMIAS FCN on {int(cut.sum())} reference windows ({pc.fcn_label}, {pc.fcn_steps} steps)")
    model = train_fcn(x[cut], y[cut], x[~cut], y[~cut], n_cls, max_steps=pc.fcn_steps, seed=pc.seed,
                      downsample=max(1, ds.window_len // 512))
    meta = extractor_meta(model, label=pc.fcn_label, class_names=list(ds.class_names[j]),
                          channels=[c["name"] for c in ds.channels], window_len=ds.window_len,
                          data_sha256=file_sha256(cfg.data.prepared), purpose="DOMIAS features of a privacy audit")
    save_extractor(f, model, meta)
    return model
