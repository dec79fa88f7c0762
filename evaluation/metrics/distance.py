"""Distance-based fidelity and diversity metrics on windows `(N, C, L)` (docs/evaluation.md section 1).

- `dtw_nn`: multichannel DTW from each query window to its nearest reference window (synthetic -> real test;
  the floor is real test -> real train, the same call with other arrays).
- `nn_rmse_prd`: nearest-neighbour RMSE and PRD (percent root-mean-square difference).
- `mmd_rbf`: unbiased MMD^2 with an RBF kernel and the median-heuristic bandwidth.
- `diversity`: mean pairwise distance within each set and the mode-collapse share.

Distances are in the units of the arrays. Channels with different units (FHR in bpm, UC in mmHg) add up as they
are; to weigh them equally, scale first (e.g. `prep.minmax_fit` on real, `prep.minmax_apply` on both).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from dataloader.errors import UserError

from .parallel import map_groups
from .prep import as_windows, block_mean, block_size_for, same_shape_tail


# ----------------------------------------------------------------------------------------------------- DTW
def dtw_nn(query: np.ndarray, reference: np.ndarray, *, window: float | None = 0.1, max_len: int | None = 256,
           exclude_self: bool = False, workers: int = 1) -> dict[str, Any]:
    """Exact nearest-neighbour dependent multichannel DTW from each query `(Nq, C, L)` to reference `(Nr, C, L)`.

    Dependent DTW (DTW_D, Shokoohi-Yekta et al. 2017): one warping path for all channels, the cost of matching
    steps i and j is the squared Euclidean distance across channels, and the distance is the square root of the
    path's summed cost (dtaidistance's `dtw_ndim`, C implementation).
    - window: Sakoe-Chiba band as a fraction of the (block-meaned) length: |i - j| <= round(window * L');
      None = unconstrained.
    - max_len: windows longer than this are read as means of consecutive blocks of b = ceil(L / max_len)
      samples first (the same rule as the discriminative score), for speed; None keeps every sample.
      DTW is O(L' * band) per pair, so this matters: at L = 2048 it is ~60x cheaper with max_len = 256.
    - exclude_self: when query and reference are the same set, skip the pair (i, i) (leave-one-out).
    - workers: split the query windows over that many processes (the result does not depend on it).
    The search is exact: candidates are visited in order of the LB_Keogh lower bound (Keogh & Ratanamahatana
    2005, summed over channels for DTW_D), stopping once the bound exceeds the best distance so far, and each
    DTW is abandoned early past that distance (dtaidistance `max_dist`). How much that saves depends on the data:
    on CTG-like windows (2 x 2048 at 1 Hz, block 8) nearest and typical distances are close, ~1500 of 2000
    candidates still need a DTW, ~80 ms of CPU per query; use `workers` for large sets.
    Returns {"distances" (Nq,), "index" (Nq,) into reference, "mean", "median", "block", "band" (samples),
    "length" (L'), "dtw_computed" (how many full DTWs were needed)}.
    """
    where = "dtw_nn"
    q = as_windows(query, f"{where}: query")
    r = as_windows(reference, f"{where}: reference", 2 if exclude_self else 1)
    same_shape_tail(q, r, where)
    if exclude_self and q.shape[0] != r.shape[0]:
        raise UserError(where, "exclude_self needs query and reference to be the same set")
    block = block_size_for(q.shape[2], max_len)
    q = np.ascontiguousarray(block_mean(q, block).transpose(0, 2, 1), dtype=np.float64)   # (Nq, L', C)
    r = np.ascontiguousarray(block_mean(r, block).transpose(0, 2, 1), dtype=np.float64)   # (Nr, L', C)
    length = q.shape[1]
    if window is not None and window < 0:
        raise UserError(where, f"window must be a fraction >= 0 or None, got {window}")
    band = length - 1 if window is None else min(length - 1, int(round(window * length)))
    found = map_groups(_nn_search, len(q), workers, q, r, band, exclude_self)
    dist = np.array([f[0] for f in found])
    idx = np.array([f[1] for f in found], dtype=np.int64)
    computed = int(sum(f[2] for f in found))
    return {"distances": dist, "index": idx, "mean": float(dist.mean()), "median": float(np.median(dist)),
            "block": block, "band": band, "length": length, "dtw_computed": computed}


def _nn_search(ids: list[int], q: np.ndarray, r: np.ndarray, band: int,
               exclude_self: bool) -> list[tuple[float, int, int]]:
    """(distance, index, DTWs computed) of the nearest reference `(Nr, L, C)` for the queries q[ids] `(L, C)`."""
    from dtaidistance import dtw_ndim

    upper, lower = _envelope(r, band)
    out = []
    for i in ids:
        lb = _lb(q[i], upper, lower)
        if exclude_self:
            lb[i] = np.inf
        best, best_j, computed = np.inf, -1, 0
        for j in np.argsort(lb, kind="stable"):
            if lb[j] >= best:
                break
            # dtaidistance's window w allows |i - j| < w, so the band is w - 1
            d = dtw_ndim.distance_fast(q[i], r[j], window=band + 1, max_dist=None if np.isinf(best) else best)
            computed += 1
            if d < best:
                best, best_j = d, int(j)
        out.append((float(best), best_j, computed))
    return out


def _envelope(r: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray]:
    """LB_Keogh envelope of reference windows `(Nr, L, C)`: running max and min over +/- band samples."""
    return (maximum_filter1d(r, size=2 * band + 1, axis=1, mode="nearest"),
            minimum_filter1d(r, size=2 * band + 1, axis=1, mode="nearest"))


def _lb(q: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """LB_Keogh of one query `(L, C)` against every envelope `(Nr, L, C)`: the distance from the query to the
    band, summed over samples and channels; every warping path within the band costs at least this much."""
    return np.sqrt((np.maximum(q - upper, 0.0) ** 2 + np.maximum(lower - q, 0.0) ** 2).sum(axis=(1, 2)))


def lb_keogh(query: np.ndarray, reference: np.ndarray, band: int) -> np.ndarray:
    """LB_Keogh lower bounds `(Nq, Nr)` of dependent DTW between windows `(Nq, C, L)` and `(Nr, C, L)` with a
    Sakoe-Chiba band of `band` samples (exposed for tests: it must never exceed the DTW distance)."""
    upper, lower = _envelope(np.asarray(reference, np.float64).transpose(0, 2, 1), band)
    return np.stack([_lb(qi, upper, lower) for qi in np.asarray(query, np.float64).transpose(0, 2, 1)])


# ------------------------------------------------------------------------------------ Euclidean helpers
def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float64, copy=False)


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances `(Na, Nb)` between flattened windows `(Na, ...)` and `(Nb, ...)` (float64)."""
    fa, fb = _flat(a), _flat(b)
    mu = fa.mean(axis=0)                      # distances are shift invariant; centring limits cancellation
    fa, fb = fa - mu, fb - mu
    d = (fa * fa).sum(1)[:, None] + (fb * fb).sum(1)[None, :] - 2.0 * (fa @ fb.T)
    return np.maximum(d, 0.0)


def nn_rmse_prd(synth: np.ndarray, real: np.ndarray) -> dict[str, Any]:
    """Nearest-neighbour RMSE and PRD of synthetic windows `(Ns, C, L)` against real windows `(Nr, C, L)`.

    For each synthetic window y, x = its nearest real window in Euclidean distance (all channels and samples);
    RMSE = sqrt(mean (x - y)^2); PRD = 100 sqrt(sum (x - y)^2 / sum x^2) with the real window x as the reference
    (the ECG-compression convention, as in the LSTM-GAN ECG report). PRD needs signals away from 0
    (e.g. FHR in bpm, ECG in mV with its baseline); a real window of all zeros gives PRD = inf.
    Returns {"rmse", "prd" (means over synthetic windows), "rmse_all", "prd_all" (Ns,), "index" (Ns,)}.
    """
    where = "nn_rmse_prd"
    s, r = as_windows(synth, f"{where}: synthetic"), as_windows(real, f"{where}: real")
    same_shape_tail(s, r, where)
    d2 = sq_dists(s, r)
    idx = d2.argmin(axis=1)
    x = _flat(r)[idx]
    y = _flat(s)
    sse = ((x - y) ** 2).sum(axis=1)
    rmse = np.sqrt(sse / x.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        prd = 100.0 * np.sqrt(sse / (x * x).sum(axis=1))
    return {"rmse": float(rmse.mean()), "prd": float(prd.mean()), "rmse_all": rmse, "prd_all": prd, "index": idx}


def mmd_rbf(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> dict[str, float]:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) between windows `(Nx, C, L)` and `(Ny, C, L)`, flattened.

    Kernel k(a, b) = exp(-||a - b||^2 / (2 sigma^2)); sigma = the median Euclidean distance between distinct
    points of the pooled sample (the median heuristic, Gretton et al. 2012) unless `bandwidth` is given.
    The unbiased estimate can be slightly negative for samples of the same distribution. Memory is O((Nx + Ny)^2).
    Returns {"mmd2", "bandwidth"}.
    """
    where = "mmd_rbf"
    a, b = as_windows(x, f"{where}: x", 2), as_windows(y, f"{where}: y", 2)
    same_shape_tail(a, b, where)
    pooled = np.concatenate([_flat(a), _flat(b)])
    d2 = sq_dists(pooled, pooled)
    m, n = len(a), len(b)
    if bandwidth is None:
        iu = np.triu_indices(m + n, k=1)
        sigma = float(np.sqrt(np.median(d2[iu])))
        if sigma <= 0:
            sigma = 1.0                           # every point identical: any bandwidth gives MMD^2 = 0
    else:
        if bandwidth <= 0:
            raise UserError(where, f"bandwidth must be > 0, got {bandwidth}")
        sigma = float(bandwidth)
    k = np.exp(-d2 / (2.0 * sigma * sigma))
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    mmd2 = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2.0 * kxy.mean())
    return {"mmd2": float(mmd2), "bandwidth": sigma}


def diversity(synth: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Within-set diversity and the mode-collapse share, with RMS Euclidean distance sqrt(mean (a - b)^2).

    - synth_mean_pairwise / real_mean_pairwise: mean distance over all pairs of distinct windows of each set
      (a generator that collapses has a smaller value than real data);
    - real_min_distance: the smallest distance between two distinct real windows;
    - mode_collapse_share: fraction of synthetic windows whose nearest OTHER synthetic window is closer than
      real_min_distance, i.e. closer than any two real windows are (near-copies of each other).
    If the real set holds exact duplicates, real_min_distance is 0 and the share is 0: read it with that number.
    For synthetic data from the real distribution the share is small but not 0 (a synthetic nearest-neighbour
    distance is a minimum over Ns - 1 pairs, real_min_distance one over Nr (Nr - 1) / 2): compare with the floor,
    real test windows passed as `synth`.
    """
    where = "diversity"
    s, r = as_windows(synth, f"{where}: synthetic", 2), as_windows(real, f"{where}: real", 2)
    same_shape_tail(s, r, where)
    per = float(np.prod(s.shape[1:]))
    ds = np.sqrt(sq_dists(s, s) / per)
    dr = np.sqrt(sq_dists(r, r) / per)
    iu_s, iu_r = np.triu_indices(len(s), k=1), np.triu_indices(len(r), k=1)
    real_min = float(dr[iu_r].min())
    np.fill_diagonal(ds, np.inf)
    nn_s = ds.min(axis=1)
    return {"synth_mean_pairwise": float(ds[iu_s].mean()), "real_mean_pairwise": float(dr[iu_r].mean()),
            "real_min_distance": real_min, "mode_collapse_share": float((nn_s < real_min).mean())}
