"""Heart-rate control of generation: `generate.py --bpm 72` (R-peak rate of an ECG lead) and
`--baseline_bpm 140` (FIGO baseline of a heart-rate channel such as CTG's FHR).

Two ways, chosen per model, and written to the output file's `heart_rate_control` attribute (JSON):
- `label` (the real method): the model has a derived heart-rate label (`source: heart_rate` with the flag's
  method, dataloader/heart_rate.py) measured on every training window at preparation time. Every generated
  window gets the bin that contains the target in that label column; a class CSV that sets the same column
  is refused. The target must lie inside the label's edges, in a bin that held training windows.
- the fallback, for a model without such a label (or a GAN / VAE baseline): each generated window is
  measured with the same function and corrected after sampling. `--bpm` (`resample`): the window is
  stretched or compressed in time by measured / target with a band-limited polyphase resampler
  (scipy.signal.resample_poly), then cropped to the window, or, when it came out shorter, continued by
  repeating its last whole beats (R-peak to R-peak, so the joins keep the rhythm). `--baseline_bpm`
  (`offset`): a heart-rate trace is a rate in bpm, so stretching it in time would not move its baseline;
  the channel is shifted by target - measured instead (then clipped to the channel's range). A window whose
  rate cannot be measured is left as it is (counted and reported). Retiming measures again and repeats up to
  three times (cropping an irregular rhythm keeps a different set of beats), keeping the closest result.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from dataloader.class_csv import LabelPlan, RequestPlan, read_class_csv
from dataloader.errors import UserError
from dataloader.heart_rate import measure, r_peaks
from dataloader.labels import build_coder

from .checkpoint import ModelMeta

FLAGS = {"bpm": "rpeaks", "baseline_bpm": "baseline"}   # command-line option -> heart-rate method


@dataclass
class RateTarget:
    """One heart-rate request of the command line."""

    flag: str                                   # "--bpm" or "--baseline_bpm"
    method: str                                 # dataloader.heart_rate.METHODS name
    bpm: float                                  # the target rate


def rate_target(a: argparse.Namespace) -> Optional[RateTarget]:
    """--bpm / --baseline_bpm as a RateTarget (None when neither is given); both at once, or a value that is
    not a positive finite number, is a UserError."""
    given = [(k, getattr(a, k, None)) for k in FLAGS if getattr(a, k, None) is not None]
    if not given:
        return None
    if len(given) > 1:
        raise UserError("--bpm", "give --bpm or --baseline_bpm, not both")
    key, v = given[0]
    if not (np.isfinite(v) and v > 0):
        raise UserError(f"--{key}", f"must be a positive number of beats per minute (got {v:g})")
    return RateTarget(f"--{key}", FLAGS[key], float(v))


def rate_label(meta: ModelMeta, method: str) -> Optional[int]:
    """Index of the model's heart-rate label column measured by `method`, or None (diffusion models only:
    the GAN / VAE baselines use the fallback)."""
    if meta.config.model.type != "diffusion":
        return None
    cols = [j for j, lab in enumerate(meta.config.data.label_columns)
            if lab.source == "heart_rate" and lab.method == method]
    return cols[0] if cols else None


def rate_code(meta: ModelMeta, column: int, target: RateTarget) -> int:
    """The class code of label `column` whose bin holds the target; outside the label's edges, or in a bin
    without training windows, is a UserError naming the range the model covers."""
    coder = build_coder(meta.config.data.label_columns[column])
    lo, hi = coder.edges[0], coder.edges[-1]
    where = f"{target.flag}"
    if not (lo <= target.bpm <= hi) or target.bpm == (hi if not coder.right else lo):
        raise UserError(where, f"{target.bpm:g} bpm is outside the model's heart-rate label {coder.name!r}: "
                               f"its bins cover {lo:g}-{hi:g} bpm")
    code = coder.bin_code(target.bpm)
    counts = np.asarray(meta.data.label_counts, np.int64).reshape(-1, len(meta.data.label_names) + 1)
    seen = sorted({int(c) for c in counts[:, column]} - {coder.missing_code})
    if code not in seen:
        inner = [c for c in seen if 0 < c < len(coder.edges)]
        span = (f"{coder.edges[inner[0] - 1]:g}-{coder.edges[inner[-1]]:g} bpm" if inner else "no inner bin")
        raise UserError(where, f"{target.bpm:g} bpm falls in {coder.name!r} class {coder.classes[code]!r}, "
                               f"which held no training window (the training data covers {span})")
    return code


def plan_with_rate(samples: str, meta: ModelMeta, seed: int, column: int, code: int, flag: str) -> LabelPlan:
    """`--samples N` or a class CSV with label `column` set to `code` in every row; the other columns as
    without a target (drawn like the training windows of that class, or as the CSV asks)."""
    from .generation import parse_count

    d = meta.data
    counts = np.asarray(d.label_counts, np.int64).reshape(-1, len(d.label_names) + 1)
    n = parse_count(samples)
    if n is not None:
        return RequestPlan([column], [([code], n)], counts, len(d.label_names), seed)
    columns, rows = read_class_csv(str(samples).strip(), d.label_names, d.class_names)
    if column in columns:
        raise UserError(flag, f"the class CSV also sets the heart-rate label {d.label_names[column]!r}; "
                              "give one or the other")
    return RequestPlan(columns + [column], [(codes + [code], c) for codes, c in rows], counts,
                       len(d.label_names), seed)


def retime(x: np.ndarray, fs: float, target_bpm: float, measured_bpm: float) -> np.ndarray:
    """A window (C, L) stretched in time so that a rate of `measured_bpm` becomes `target_bpm`, at the same
    rate fs and length L (see the module docstring); the R-peaks for repeating beats are found on channel 0
    of what is passed, so pass the measured channel first or alone."""
    C, L = x.shape
    ratio = Fraction(measured_bpm / target_bpm).limit_denominator(100)  # new length / old length
    y = resample_poly_rows(x, ratio.numerator, ratio.denominator)
    if y.shape[1] >= L:
        return y[:, :L]
    p = r_peaks(y[0], fs)
    if len(p) < 2:                              # no whole beat to repeat: continue by reflection
        return np.pad(y, ((0, 0), (0, L - y.shape[1])), mode="reflect")[:, :L]
    beats = y[:, p[0]:p[-1]]                    # whole beats, R-peak to R-peak
    reps = int(np.ceil((L - p[-1]) / beats.shape[1]))
    return np.concatenate([y[:, :p[-1]]] + [beats] * reps, axis=1)[:, :L]


def resample_poly_rows(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """(C, L) -> (C, ceil(L up / down)) by scipy.signal.resample_poly (Kaiser-windowed FIR, band-limited)."""
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(x, np.float64), up, down, axis=1, padtype="line")


def correct_batch(x: np.ndarray, fs: float, channel: int, target: RateTarget,
                  ranges: tuple[list[float], list[float]]) -> tuple[np.ndarray, int]:
    """The fallback on a batch (B, C, L) in physical units: -> (corrected batch, windows left unchanged
    because their rate could not be measured)."""
    lo, hi = np.asarray(ranges[0])[:, None], np.asarray(ranges[1])[:, None]
    out = np.array(x, dtype=np.float64, copy=True)
    unmeasured = 0
    for i, w in enumerate(out):
        r = measure(target.method, w[channel], fs)
        if not np.isfinite(r):
            unmeasured += 1
            continue
        if target.method == "baseline":
            w[channel] += target.bpm - r
        else:
            out[i] = _retime_measured(w, fs, channel, target.bpm, r)
        out[i] = np.clip(out[i], lo, hi)
    return out.astype(np.float32), unmeasured


RETIME_ROUNDS = 3   # an irregular rhythm's crop keeps other beats than the whole window: measure and retime again


def _retime_measured(w: np.ndarray, fs: float, channel: int, target: float, r: float) -> np.ndarray:
    """One window (C, L) retimed to `target` bpm, measured again after each round (up to RETIME_ROUNDS, until
    within 1 bpm); returns the round closest to the target."""
    order = [channel] + [c for c in range(len(w)) if c != channel]
    best, best_err, x = w, abs(r - target), w
    for _ in range(RETIME_ROUNDS):
        y = np.empty_like(x)
        y[order] = retime(x[order], fs, target, r)
        r = measure("rpeaks", y[channel], fs)
        if not np.isfinite(r):
            break
        if abs(r - target) < best_err:
            best, best_err = y, abs(r - target)
        if best_err <= 1.0:
            break
        x = y
    return best


def fallback_name(target: RateTarget) -> str:
    return "offset" if target.method == "baseline" else "resample"


def control_attrs(target: RateTarget, how: str, meta: ModelMeta, column: Optional[int] = None,
                  code: Optional[int] = None, channel: Optional[int] = None) -> dict[str, Any]:
    """The `heart_rate_control` attribute of the output file (JSON text)."""
    d: dict[str, Any] = {"method": how, "option": target.flag, "target_bpm": target.bpm, "measure": target.method}
    if column is not None and code is not None:
        d.update(label=meta.data.label_names[column], code=int(code), **{"class": meta.data.class_names[column][code]})
    if channel is not None:
        d.update(channel=meta.data.channel_names[channel])
    return {"heart_rate_control": json.dumps(d, sort_keys=True)}


def channel_index(meta: ModelMeta, name: Optional[str]) -> int:
    """--rate_channel (a channel name; default: the first channel) as an index."""
    names = meta.data.channel_names
    if name is None:
        return 0
    if name not in names:
        raise UserError("--rate_channel", f"unknown channel {name!r} (the model's channels: {', '.join(names)})")
    return names.index(name)


class Fallback:
    """The fallback as `generate_file`'s `post` hook; counts the windows it could not measure."""

    def __init__(self, meta: ModelMeta, channel: int, target: RateTarget) -> None:
        self.fs, self.channel, self.target, self.ranges = float(meta.data.fs), channel, target, meta.data.ranges
        self.unmeasured = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y, n = correct_batch(x, self.fs, self.channel, self.target, self.ranges)
        self.unmeasured += n
        return y


@dataclass
class RateControl:
    """What generate.py does for a heart-rate target: the label plan, the post hook, the attributes."""

    labels: LabelPlan
    post: Optional[Fallback]
    attrs: dict[str, Any]
    note: str


def plan_rate_control(a: argparse.Namespace, meta: ModelMeta, seed: int, labels: LabelPlan
                      ) -> Optional[RateControl]:
    """--bpm / --baseline_bpm for this model (None without either): the label method where the model has the
    heart-rate label, else the fallback (module docstring). `labels` is the plan made without a target."""
    target = rate_target(a)
    if target is None:
        return None
    column = rate_label(meta, target.method)
    if column is not None:
        if a.rate_channel is not None:
            raise UserError("--rate_channel", "only for the fallback: this model's heart-rate label "
                                              f"{meta.data.label_names[column]!r} names its own channel")
        code = rate_code(meta, column, target)
        plan = plan_with_rate(a.samples, meta, seed, column, code, target.flag)
        cls = meta.data.class_names[column][code]
        return RateControl(plan, None, control_attrs(target, "label", meta, column, code),
                           f"heart rate: label {meta.data.label_names[column]!r} class {cls!r} for {target.bpm:g} bpm")
    channel = channel_index(meta, a.rate_channel)
    how = fallback_name(target)
    return RateControl(labels, Fallback(meta, channel, target), control_attrs(target, how, meta, channel=channel),
                       f"heart rate: the model has no {target.method} heart-rate label; fallback {how!r} of channel "
                       f"{meta.data.channel_names[channel]!r} to {target.bpm:g} bpm")
