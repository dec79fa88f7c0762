"""The reference scores' network and optimiser, TensorFlow-1 semantics, in torch, batched over independent runs.

TimeGAN (`metrics/*_metrics.py`, TF1 graph) and Diffusion-TS (`Utils/discriminative_metric.py`,
`Utils/predictive_metric.py`, the same TF1 code through `tf.compat.v1`) build their post-hoc networks from
`tf.compat.v1.nn.rnn_cell.GRUCell` + `dynamic_rnn` + `tf.compat.v1.layers.dense` and train them with
`tf.compat.v1.train.AdamOptimizer()`. That GRU is NOT torch.nn.GRU, so it is written out here:

- `GRUCell` (reset gate applied BEFORE the candidate matmul, one bias per gate, gate order r then u):
      [r, u] = sigmoid([x, h] @ W_g + b_g)          W_g (D + H, 2H), b_g initialised to 1.0
      c      = tanh([x, r * h] @ W_c + b_c)          W_c (D + H, H),  b_c initialised to 0.0
      h'     = u * h + (1 - u) * c
  (torch.nn.GRU applies r after the hidden matmul, has two biases per gate and zero-ish bias init.)
- kernels without an initializer get TF1's default `glorot_uniform`: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
  with fan_in, fan_out = the kernel's two dimensions (the whole concatenated kernel, (D + H) x 2H for W_g);
  `layers.dense`: glorot-uniform kernel (H, 1), zero bias;
- `dynamic_rnn(..., sequence_length=t)`: every window here has the same length T, so the lengths mask nothing
  and the last state is h_T (both references compute t with `extract_time`, which gives T for every window);
- `AdamOptimizer()`: lr 1e-3, beta1 0.9, beta2 0.999, epsilon 1e-8 in TF's form
  lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t);  w -= lr_t m / (sqrt(v) + epsilon)
  (torch.optim.Adam adds epsilon to the bias-corrected sqrt(v_hat) instead; the two differ while v is small).

Why batched: the protocol trains 5 independent tiny GRUs (hidden int(C/2)) for thousands of iterations; on a CPU
that is per-op overhead, so the R runs are stacked on a leading axis (every weight `(R, ...)`, one `bmm` per
step for all runs). The runs stay independent: the loss is the sum of the runs' losses, so run r's gradient is
its own loss's gradient, and Adam is elementwise. The input halves of both matmuls are computed for all steps
at once before the recurrence, leaving two small `bmm`s per step.
"""
from __future__ import annotations

import math

import numpy as np
import torch

ADAM_LR, ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 1e-3, 0.9, 0.999, 1e-8   # tf.compat.v1.train.AdamOptimizer()


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """TF's default kernel initializer: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); shape (fan_in, fan_out)."""
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_in, fan_out)).astype(np.float32)


def init_gru_dense(rngs: list[np.random.Generator], n_in: int, hidden: int) -> dict[str, torch.Tensor]:
    """Parameters of R = len(rngs) GRUCell + dense(1) networks, run r from rngs[r], as leaf tensors:
    w_g `(R, D + H, 2H)`, b_g `(R, 1, 2H)` = 1, w_c `(R, D + H, H)`, b_c `(R, 1, H)` = 0, w_o `(R, H, 1)`,
    b_o `(R, 1, 1)` = 0."""
    d, h, r = n_in, hidden, len(rngs)
    w_g = np.stack([glorot_uniform(g, d + h, 2 * h) for g in rngs])
    w_c = np.stack([glorot_uniform(g, d + h, h) for g in rngs])
    w_o = np.stack([glorot_uniform(g, h, 1) for g in rngs])
    p = {"w_g": torch.from_numpy(w_g), "b_g": torch.ones(r, 1, 2 * h), "w_c": torch.from_numpy(w_c),
         "b_c": torch.zeros(r, 1, h), "w_o": torch.from_numpy(w_o), "b_o": torch.zeros(r, 1, 1)}
    for v in p.values():
        v.requires_grad_(True)
    return p


def gru_states(p: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """Hidden states h_1..h_T, each `(R, H, B)`, of the R GRUs for inputs x `(R, B, T, D)` (h_0 = 0).

    Batch-last inside (state `(R, H, B)`, weights transposed): torch's CPU bmm of (R, 2H, H) x (R, H, B) is
    ~5x faster than (R, B, H) x (R, H, 2H) at these sizes.
    """
    r_, b, t_len, d = x.shape
    h_dim = p["w_c"].shape[2]
    wg_t, wc_t = p["w_g"].transpose(1, 2), p["w_c"].transpose(1, 2)        # (R, 2H, D + H), (R, H, D + H)
    # input halves of both matmuls for every step at once; time-major so that step t is one contiguous block
    xt = x.permute(0, 3, 2, 1).reshape(r_, d, t_len * b)
    xg = torch.baddbmm(p["b_g"].transpose(1, 2), wg_t[:, :, :d], xt)
    xg = xg.reshape(r_, 2 * h_dim, t_len, b).permute(2, 0, 1, 3).contiguous()   # (T, R, 2H, B)
    xc = torch.baddbmm(p["b_c"].transpose(1, 2), wc_t[:, :, :d], xt)
    xc = xc.reshape(r_, h_dim, t_len, b).permute(2, 0, 1, 3).contiguous()       # (T, R, H, B)
    wg_h, wc_h = wg_t[:, :, d:].contiguous(), wc_t[:, :, d:].contiguous()
    h = x.new_zeros(r_, h_dim, b)
    out = []
    for t in range(t_len):
        gates = torch.sigmoid(torch.baddbmm(xg[t], wg_h, h))
        r, u = gates[:, :h_dim], gates[:, h_dim:]
        c = torch.tanh(torch.baddbmm(xc[t], wc_h, r * h))
        h = c + u * (h - c)                           # u h + (1 - u) c
        out.append(h)
    return out


def dense(p: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """The dense(1) read-out's logits `(R, B)` for states h `(R, H, B)`."""
    return torch.baddbmm(p["b_o"], p["w_o"].transpose(1, 2), h).squeeze(1)


class TFAdam:
    """tf.compat.v1.train.AdamOptimizer() (see the module docstring for how it differs from torch's Adam)."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params
        self.m = [torch.zeros_like(q) for q in params]
        self.v = [torch.zeros_like(q) for q in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter from its .grad (then the grads are cleared)."""
        self.t += 1
        lr_t = ADAM_LR * math.sqrt(1.0 - ADAM_BETA2 ** self.t) / (1.0 - ADAM_BETA1 ** self.t)
        for q, m, v in zip(self.params, self.m, self.v):
            g = q.grad
            m.mul_(ADAM_BETA1).add_(g, alpha=1.0 - ADAM_BETA1)
            v.mul_(ADAM_BETA2).addcmul_(g, g, value=1.0 - ADAM_BETA2)
            q.addcdiv_(m, v.sqrt().add_(ADAM_EPS), value=-lr_t)
            q.grad = None
