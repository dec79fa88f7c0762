"""Feature extractors for FID-type metrics: the FCN classifier and, for unlabelled data, a conv autoencoder.

FCN (Wang, Yan & Oates 2017, "Time series classification from scratch with deep neural networks"):
three Conv1d blocks with 128, 256, 128 filters and kernels 8, 5, 3 ('same' padding), each BatchNorm + ReLU,
global average pooling, a linear head. `embed` returns the global-average-pooled 128-d layer BEFORE the head:
the FCN-FID features (as in TimeVQVAE's supervised FID); logits are never used as features.

ConvAutoencoder: the unlabelled fallback (docs/evaluation.md: "trained without labels ... the report says which").
Context-FID (Diffusion-TS) uses a TS2Vec encoder; here a small strided conv autoencoder trained on reconstruction
error, whose bottleneck (128 channels, L/8 steps) averaged over time is the 128-d feature. Report its FID as
"AE-FID", never as FCN-FID.

Both models standardise their input per channel with the training data's mean and std (stored as buffers and
saved with the weights), so they take windows `(B, C, L)` in physical units, any C and L. `downsample` > 1
averages blocks of that many samples first (a cheaper model for long CPU-bound windows; stored in the model file).
Training (`train_fcn`, `train_autoencoder`): Adam, early stopping on validation loss with the best weights
restored, deterministic for a seed on CPU (on CUDA with cudnn.deterministic during training).
"""
from __future__ import annotations

import contextlib
import copy
import math
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dataloader.errors import UserError

FEATURE_DIM = 128


class _Standardise(nn.Module):
    """(x - mean) / std per channel, then optional block means; mean/std are buffers set from training data."""

    def __init__(self, in_channels: int, downsample: int) -> None:
        super().__init__()
        self.downsample = int(downsample)
        self.register_buffer("mean", torch.zeros(in_channels))
        self.register_buffer("std", torch.ones(in_channels))

    def fit(self, x: np.ndarray) -> None:
        """Set mean/std from training windows `(N, C, L)` (a constant channel gets std 1)."""
        m, s = x.mean(axis=(0, 2)), x.std(axis=(0, 2))
        self.mean.copy_(torch.as_tensor(m, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.where(s > 0, s, 1.0), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean[None, :, None]) / self.std[None, :, None]
        if self.downsample > 1:
            x = F.avg_pool1d(x, self.downsample)
        return x


def _block(c_in: int, c_out: int, k: int) -> nn.Sequential:
    # 'same' padding as in Wang et al.'s Keras code; an even kernel pads one more on the right
    return nn.Sequential(nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0), nn.Conv1d(c_in, c_out, k),
                         nn.BatchNorm1d(c_out), nn.ReLU())


class FCN(nn.Module):
    """Fully convolutional classifier of Wang et al. 2017 for windows `(B, C, L)`, any C and L."""

    def __init__(self, in_channels: int, n_classes: int, downsample: int = 1) -> None:
        super().__init__()
        self.in_channels, self.n_classes = int(in_channels), int(n_classes)
        self.prep = _Standardise(in_channels, downsample)
        self.body = nn.Sequential(_block(in_channels, 128, 8), _block(128, 256, 5), _block(256, FEATURE_DIM, 3))
        self.head = nn.Linear(FEATURE_DIM, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features before the head: `(B, C, L)` -> `(B, 128)`."""
        return self.body(self.prep(x)).mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `(B, n_classes)`."""
        return self.head(self.embed(x))


class ConvAutoencoder(nn.Module):
    """Unlabelled feature extractor: strided conv encoder (32-64-128 channels, /8 in time) and a transposed-conv
    decoder; `embed` = time average of the 128-channel bottleneck, `(B, C, L)` -> `(B, 128)`."""

    def __init__(self, in_channels: int, downsample: int = 1) -> None:
        super().__init__()
        self.in_channels, self.n_classes = int(in_channels), 0
        self.prep = _Standardise(in_channels, downsample)

        def enc(ci: int, co: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(ci, co, k, stride=2, padding=k // 2), nn.BatchNorm1d(co), nn.ReLU())

        def dec(ci: int, co: int) -> nn.Sequential:
            return nn.Sequential(nn.ConvTranspose1d(ci, co, 4, stride=2, padding=1), nn.BatchNorm1d(co), nn.ReLU())

        self.encoder = nn.Sequential(enc(in_channels, 32, 7), enc(32, 64, 5), enc(64, FEATURE_DIM, 3))
        self.decoder = nn.Sequential(dec(FEATURE_DIM, 64), dec(64, 32),
                                     nn.ConvTranspose1d(32, in_channels, 4, stride=2, padding=1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Time-averaged bottleneck `(B, 128)`."""
        return self.encoder(self.prep(x)).mean(dim=2)

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """MSE between the standardised (and block-meaned) input and its reconstruction."""
        z = self.prep(x)
        return F.mse_loss(self.decoder(self.encoder(z))[..., : z.shape[2]], z)


# --------------------------------------------------------------------------------------------- inference
def _batches(x: np.ndarray, batch: int, device: str) -> Iterator[torch.Tensor]:
    for i in range(0, len(x), batch):
        yield torch.as_tensor(np.asarray(x[i: i + batch], dtype=np.float32), device=device)


def _check_input(model: nn.Module, x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1] != model.in_channels:
        raise UserError(where, f"windows must be (N, {model.in_channels}, L), got shape {x.shape}")
    min_len = 8 * model.prep.downsample
    if x.shape[2] < min_len:
        raise UserError(where, f"windows need at least {min_len} samples, got {x.shape[2]}")
    if not np.isfinite(x).all():
        raise UserError(where, "windows contain NaN or inf")
    return x


@torch.no_grad()
def features(model: nn.Module, x: np.ndarray, batch: int = 256, device: str = "cpu") -> np.ndarray:
    """Features `(N, 128)` of windows `(N, C, L)` from an FCN (pooled layer before the head) or ConvAutoencoder."""
    x = _check_input(model, x, "features")
    model.eval().to(device)
    return np.concatenate([model.embed(b).cpu().numpy() for b in _batches(x, batch, device)]).astype(np.float64)


@torch.no_grad()
def features_and_proba(model: FCN, x: np.ndarray, batch: int = 256,
                       device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """FCN features `(N, 128)` and class probabilities `(N, K)` in one pass (FCN-FID and FCN-IS together)."""
    x = _check_input(model, x, "features_and_proba")
    model.eval().to(device)
    fs, ps = [], []
    for b in _batches(x, batch, device):
        f = model.embed(b)
        fs.append(f.cpu().numpy())
        ps.append(torch.softmax(model.head(f), dim=1).cpu().numpy())
    return np.concatenate(fs).astype(np.float64), np.concatenate(ps).astype(np.float64)


def predict_proba(model: FCN, x: np.ndarray, batch: int = 256, device: str = "cpu") -> np.ndarray:
    """Class probabilities `(N, K)` (softmax of the FCN logits) for windows `(N, C, L)`."""
    return features_and_proba(model, x, batch, device)[1]


# ---------------------------------------------------------------------------------------------- training
@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[torch.Generator]:
    """Seed torch and make cuDNN deterministic for the block (restored afterwards)."""
    old = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.manual_seed(seed)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def _fit(model: nn.Module, loss_fn: Callable[..., torch.Tensor], train: list[np.ndarray], val: list[np.ndarray],
         *, epochs: int, max_steps: int | None, batch: int, lr: float, patience: int, device: str,
         gen: torch.Generator, log: Callable[[str], None] | None) -> nn.Module:
    """Adam on loss_fn(model, *batch) with early stopping on the validation loss; keeps the best weights."""
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(train[0])
    best, best_state, bad, step = math.inf, copy.deepcopy(model.state_dict()), 0, 0
    val_t = [torch.as_tensor(v, device=device) for v in val]
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).numpy()
        for i in range(0, n, batch):
            ix = perm[i: i + batch]
            if len(ix) < 2:                      # BatchNorm needs > 1 sample in training mode
                continue
            loss = loss_fn(model, *[torch.as_tensor(t[ix], device=device) for t in train])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        model.eval()
        with torch.no_grad():
            vl = float(sum(loss_fn(model, *[v[i: i + 256] for v in val_t]) * len(val_t[0][i: i + 256])
                           for i in range(0, len(val_t[0]), 256)) / len(val_t[0]))
        if log:
            log(f"epoch {epoch + 1}: val loss {vl:.4f}")
        if vl < best - 1e-6:
            best, best_state, bad = vl, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        if bad >= patience or (max_steps is not None and step >= max_steps):
            break
    model.load_state_dict(best_state)
    return model.eval()


def _check_train(x: np.ndarray, where: str, min_n: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise UserError(where, f"windows must be (N, C, L), got shape {x.shape}")
    if len(x) < min_n:
        raise UserError(where, f"need at least {min_n} windows, got {len(x)}")
    if not np.isfinite(x).all():
        raise UserError(where, "windows contain NaN or inf")
    return x


def _check_labels(y: np.ndarray, n: int, n_classes: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(where, f"labels must be {n} integers, got shape {y.shape} dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise UserError(where, f"labels must be in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    return y.astype(np.int64)


def train_fcn(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int, *,
              epochs: int = 100, max_steps: int | None = None, batch: int = 64, lr: float = 1e-3,
              patience: int = 10, seed: int = 0, device: str = "cpu", downsample: int = 1,
              balanced: bool = False, log: Callable[[str], None] | None = None) -> FCN:
    """Train an FCN on windows `(N, C, L)` with integer labels `(N,)` in 0..n_classes-1.

    Cross-entropy, Adam (lr 1e-3 as Wang et al.), mini-batches of `batch`; after each epoch the validation loss
    decides early stopping (`patience` epochs without improvement) and the best weights are kept. `max_steps`
    caps the optimiser steps in total (for tests and CPU budgets). `balanced` weighs each class by
    N / (K * count) in the loss (training and validation), so that a rare class (pH < 7.05: 4 % of CTG windows)
    is not ignored: without it a short training run predicts the majority class and its features carry
    little about the label. Deterministic for a seed on one device.
    """
    where = "train_fcn"
    if n_classes < 2:
        raise UserError(where, f"need at least 2 classes, got {n_classes}")
    xt, xv = _check_train(x_train, f"{where}: x_train", 2), _check_train(x_val, f"{where}: x_val", 1)
    if xt.shape[1:] != xv.shape[1:]:
        raise UserError(where, f"train and validation windows differ in (C, L): {xt.shape[1:]} vs {xv.shape[1:]}")
    yt = _check_labels(y_train, len(xt), n_classes, f"{where}: y_train")
    yv = _check_labels(y_val, len(xv), n_classes, f"{where}: y_val")
    with _deterministic(seed) as gen:
        model = FCN(xt.shape[1], n_classes, downsample)
        model.prep.fit(xt)

        weight = None
        if balanced:
            counts = np.bincount(yt, minlength=n_classes).astype(np.float64)
            weight = torch.as_tensor(np.where(counts > 0, len(yt) / (n_classes * np.maximum(counts, 1)), 0.0),
                                     dtype=torch.float32, device=device)

        def loss_fn(m: FCN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(m(x), y, weight=weight)

        return _fit(model, loss_fn, [xt, yt], [xv, yv], epochs=epochs, max_steps=max_steps, batch=batch, lr=lr,
                    patience=patience, device=device, gen=gen, log=log)


def train_autoencoder(x_train: np.ndarray, x_val: np.ndarray, *, epochs: int = 100, max_steps: int | None = None,
                      batch: int = 64, lr: float = 1e-3, patience: int = 10, seed: int = 0, device: str = "cpu",
                      downsample: int = 1, log: Callable[[str], None] | None = None) -> ConvAutoencoder:
    """Train the unlabelled ConvAutoencoder on windows `(N, C, L)` (reconstruction MSE, early stopping as
    `train_fcn`)."""
    where = "train_autoencoder"
    xt, xv = _check_train(x_train, f"{where}: x_train", 2), _check_train(x_val, f"{where}: x_val", 1)
    if xt.shape[1:] != xv.shape[1:]:
        raise UserError(where, f"train and validation windows differ in (C, L): {xt.shape[1:]} vs {xv.shape[1:]}")
    with _deterministic(seed) as gen:
        model = ConvAutoencoder(xt.shape[1], downsample)
        model.prep.fit(xt)

        def loss_fn(m: ConvAutoencoder, x: torch.Tensor) -> torch.Tensor:
            return m.reconstruction_loss(x)

        return _fit(model, loss_fn, [xt], [xv], epochs=epochs, max_steps=max_steps, batch=batch, lr=lr,
                    patience=patience, device=device, gen=gen, log=log)
