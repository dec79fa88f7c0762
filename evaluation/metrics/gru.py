"""A 1-layer GRU with hand-written backpropagation through time, batched over independent runs, in numpy.

Why not torch.nn.GRU: the TimeGAN scores train tiny GRUs (hidden 4) for thousands of iterations on sequences of
up to 256 steps. On a CPU that is all per-step overhead (about 0.1 s per iteration of nn.GRU with batch 256, so
5 runs x 2000 iterations would take 17 minutes). Here the R independent runs of a score are stacked into one
array, so R runs cost little more than one, and a step is about 25 small numpy ops on preallocated arrays. The
outputs and gradients are checked against torch autograd in tests/test_eval_metrics.py.

Equations and initialisation follow torch.nn.GRU (gate order r, z, n; all weights U(-1/sqrt(H), 1/sqrt(H))):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
Implementation: one matmul per step computes all pre-activations from the stacked state s = [x; h; 1]:
W_big `(R, 4H, D + H + 1)` has rows [r, z] (input + hidden + both biases), [n input part], [n hidden part].
Arrays are time-major with the batch last, x `(T, R, D, B)`, so every gate slice is a contiguous block.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

PARAMS = ("w_ih", "w_hh", "b_ih", "b_hh")


@contextlib.contextmanager
def small_math() -> Iterator[None]:
    """Settings for many tiny numpy ops, restored afterwards:
    - one BLAS thread (threadpoolctl, which comes with scikit-learn; skipped if absent): the matmuls are tiny
      and thread hand-offs cost more than they save;
    - flush denormals to zero (torch.set_flush_denormal, which sets the CPU's FTZ/DAZ flags for this thread):
      gradients that decay through 256 steps reach float32 denormals, which are ~100x slower on x86; this
      alone makes a discriminator step ~1.5x faster. Values below 1e-38 become 0, which changes nothing here.
    """
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        except ImportError:
            pass
        import torch
        flushed = torch.set_flush_denormal(True)
        try:
            yield
        finally:
            if flushed:
                torch.set_flush_denormal(False)


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """Logistic function in place, as 0.5 tanh(a / 2) + 0.5 (no overflow; scipy's expit is ~10x slower here)."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def init_params(runs: int, n_in: int, hidden: int, rng: np.random.Generator,
                dtype: type = np.float32) -> dict[str, np.ndarray]:
    """Weights of `runs` independent GRUs in torch.nn.GRU's layout and initialisation (U(-k, k), k = 1/sqrt(H)):
    w_ih `(R, 3H, D)`, w_hh `(R, 3H, H)`, b_ih and b_hh `(R, 3H)`."""
    k = 1.0 / np.sqrt(hidden)

    def u(*shape: int) -> np.ndarray:
        return rng.uniform(-k, k, size=shape).astype(dtype)

    return {"w_ih": u(runs, 3 * hidden, n_in), "w_hh": u(runs, 3 * hidden, hidden),
            "b_ih": u(runs, 3 * hidden), "b_hh": u(runs, 3 * hidden)}


class BatchedGRU:
    """R independent GRUs run in lockstep. `forward` keeps what `backward` needs in reusable buffers."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.p = params
        self.runs, three_h, self.n_in = params["w_ih"].shape
        self.hidden = three_h // 3
        self.dtype = params["w_ih"].dtype
        self._shape: tuple[int, int] | None = None

    def _big(self) -> np.ndarray:
        """W_big `(R, 4H, D + H + 1)` from the torch-layout parameters (see the module docstring)."""
        p, h, d = self.p, self.hidden, self.n_in
        w = np.zeros((self.runs, 4 * h, d + h + 1), self.dtype)
        w[:, : 2 * h, :d] = p["w_ih"][:, : 2 * h]
        w[:, : 2 * h, d: d + h] = p["w_hh"][:, : 2 * h]
        w[:, : 2 * h, -1] = p["b_ih"][:, : 2 * h] + p["b_hh"][:, : 2 * h]
        w[:, 2 * h: 3 * h, :d] = p["w_ih"][:, 2 * h:]
        w[:, 2 * h: 3 * h, -1] = p["b_ih"][:, 2 * h:]
        w[:, 3 * h:, d: d + h] = p["w_hh"][:, 2 * h:]
        w[:, 3 * h:, -1] = p["b_hh"][:, 2 * h:]
        return w

    def _buffers(self, t_len: int, b: int) -> None:
        if self._shape == (t_len, b):
            return
        r, h, d, dt = self.runs, self.hidden, self.n_in, self.dtype
        self.s = np.zeros((t_len + 1, r, d + h + 1, b), dt)   # stacked state [x_t; h_t; 1]; h_0 = 0
        self.s[:, :, -1] = 1.0
        self.pre = np.empty((t_len, r, 4 * h, b), dt)          # pre-activations, then gates r, z in rows :2H
        self.n = np.empty((t_len, r, h, b), dt)
        s, pre, nn = self.s, self.pre, self.n
        # per-step views, made once: slicing inside the step loops costs as much as some of the arithmetic
        self._views = [(s[t], pre[t], pre[t, :, : 2 * h], pre[t, :, :h], pre[t, :, h: 2 * h],
                        pre[t, :, 2 * h: 3 * h], pre[t, :, 3 * h:], nn[t], s[t, :, d: d + h], s[t + 1, :, d: d + h],
                        s[t].transpose(0, 2, 1)) for t in range(t_len)]
        self._shape = (t_len, b)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Hidden states `(T + 1, R, H, B)` (index 0 is h_0 = 0) for inputs x `(T, R, D, B)`; a view into a
        buffer that the next forward overwrites."""
        t_len, runs, d, b = x.shape
        if runs != self.runs or d != self.n_in:
            raise ValueError(f"x {x.shape} does not fit {self.runs} runs of {self.n_in} inputs")
        self._buffers(t_len, b)
        h = self.hidden
        self.w = self._big()
        w_half = self.w.copy()
        w_half[:, : 2 * h] *= 0.5        # sigmoid(a) = 0.5 tanh(a / 2) + 0.5: the r, z rows give a / 2 directly
        self.s[:t_len, :, :d] = x        # s[t] holds x_t and h_t; s[T]'s x part is unused
        for s_t, pre_t, rz, _, z, nin, ghn, n, h_t, h_next, _ in self._views[:t_len]:
            np.matmul(w_half, s_t, out=pre_t)
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5                                           # r, z
            np.multiply(rz[:, :h], ghn, out=n)                  # r * (W_hn h + b_hn)
            n += nin
            np.tanh(n, out=n)
            np.subtract(h_t, n, out=h_next)                     # h' = n + z (h - n)
            h_next *= z
            h_next += n
        return self.s[:, :, d: d + h]

    def backward(self, dh_ext: np.ndarray | None = None, dh_last: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Weight gradients (torch layout) of the last forward, given dL/dh from the read-out.

        dh_ext `(T, R, H, B)`: gradients for h_1..h_T (a read-out at every step), and/or dh_last `(R, H, B)`:
        the gradient for h_T (a read-out of the last state).
        """
        t_len, b = self._shape
        r_, h, d, dt = self.runs, self.hidden, self.n_in, self.dtype
        w_h = np.ascontiguousarray(self.w.transpose(0, 2, 1)[:, d: d + h])   # (R, H, 4H): rows that feed h
        dw = np.zeros_like(self.w)
        dw_t = np.empty_like(self.w)
        dpre = np.empty((r_, 4 * h, b), dt)
        drz, dr, dz = dpre[:, : 2 * h], dpre[:, :h], dpre[:, h: 2 * h]
        dan, dghn = dpre[:, 2 * h: 3 * h], dpre[:, 3 * h:]
        dh = np.zeros((r_, h, b), dt) if dh_last is None else dh_last.astype(dt, copy=True)
        back = np.empty((r_, h, b), dt)
        omz = np.empty((r_, h, b), dt)
        tmp = np.empty((r_, h, b), dt)
        tmp2 = np.empty((r_, 2 * h, b), dt)
        for t in range(t_len - 1, -1, -1):
            _, _, rz, r, z, _, ghn, n, h_t, _, s_t_tr = self._views[t]
            if dh_ext is not None:
                dh += dh_ext[t]
            np.subtract(1.0, z, out=omz)
            np.multiply(n, n, out=tmp)
            np.subtract(1.0, tmp, out=tmp)
            np.multiply(dh, omz, out=dan)
            dan *= tmp                                                 # dL/d(pre-activation of n)
            np.multiply(dan, r, out=dghn)                              # dL/d(W_hn h + b_hn)
            np.multiply(dan, ghn, out=dr)                              # dL/dr
            np.subtract(h_t, n, out=dz)
            dz *= dh                                                   # dL/dz
            drz *= rz
            np.subtract(1.0, rz, out=tmp2)
            drz *= tmp2                                                # dL/d(pre-activations of r, z)
            np.matmul(dpre, s_t_tr, out=dw_t)                          # dW_big += dpre s_t^T
            dw += dw_t
            np.matmul(w_h, dpre, out=back)
            dh *= z
            dh += back
        return {"w_ih": np.concatenate([dw[:, : 2 * h, :d], dw[:, 2 * h: 3 * h, :d]], axis=1),
                "w_hh": np.concatenate([dw[:, : 2 * h, d: d + h], dw[:, 3 * h:, d: d + h]], axis=1),
                "b_ih": np.concatenate([dw[:, : 2 * h, -1], dw[:, 2 * h: 3 * h, -1]], axis=1),
                "b_hh": np.concatenate([dw[:, : 2 * h, -1], dw[:, 3 * h:, -1]], axis=1)}


class Adam:
    """Adam (Kingma & Ba 2015) with the torch / TF defaults betas (0.9, 0.999), eps 1e-8; updates in place."""

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.p, self.lr, self.b1, self.b2, self.eps, self.t = params, lr, betas[0], betas[1], eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        """One update with `grads` (same keys and shapes as the parameters)."""
        self.t += 1
        c1, c2 = 1.0 - self.b1 ** self.t, 1.0 - self.b2 ** self.t
        for k, g in grads.items():
            m, v = self.m[k], self.v[k]
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * g * g
            self.p[k] -= (self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(self.p[k].dtype)
