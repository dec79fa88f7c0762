"""Unit tests of the data pieces: cleaning, windows, labels, split, scaling."""
from __future__ import annotations

import numpy as np
import pytest

from dataloader.clean import clean_recording, mark_missing, pool_mask
from dataloader.config.data_schema import ChannelSpec, LabelSpec, SplitSpec
from dataloader.errors import UserError
from dataloader.labels import annotation_codes, build_coder, read_labels_csv
from dataloader.scaling import dequantize_int16, fit_ranges, quantize_int16, to_physical, to_scaled
from dataloader.split import manifest_sha256, split_patients
from dataloader.windows import window_index, window_offsets

A = ChannelSpec(name="A", unit="bpm", range=(50.0, 210.0), missing=0.0, valid=(50.0, 240.0), required=True)
B = ChannelSpec(name="B", unit="nd", range=(0.0, 100.0), missing="nan", required=False)


# --- cleaning ----------------------------------------------------------------------------------

def test_mark_missing_sentinel_nan_and_valid():
    x = np.array([[140, 0, 30, 250, 150.0], [1, np.nan, 3, 4, 5]])
    m = mark_missing(x, [A, B])
    assert m.tolist() == [[False, True, True, True, False], [False, True, False, False, False]]


def test_short_gap_interpolated_long_gap_splits():
    a = np.full(100, 140.0)
    a[10:14] = 0          # 4 samples = 1 s: interpolated (max_gap 2 s = 8 samples)
    a[12] = 0
    a[20:22] = [100, 0]   # 1 sample gap after a step
    a[50:70] = 0          # 20 samples = 5 s: a long gap
    a[:3] = 0             # an edge gap is never interpolated
    a[9], a[14] = 130.0, 150.0
    x = np.stack([a, np.linspace(0, 99, 100)])
    cl = clean_recording(x, 4.0, [A, B], max_gap_s=2)
    assert cl.segments.tolist() == [[3, 47], [70, 30]]
    assert np.allclose(cl.x[0, 10:14], [134, 138, 142, 146])  # linear between 130 and 150
    assert cl.mask[0, 10:14].all() and not cl.mask[0, 9] and not cl.mask[0, 14]
    assert cl.mask[0, 21] and cl.x[0, 21] == 140 - (140 - 100) / 2
    assert np.isnan(cl.x[0, 50:70]).all() and cl.mask[0, 50:70].all()
    assert cl.missing_frac[0] == pytest.approx((4 + 1 + 20 + 3) / 100)


def test_optional_channel_filled_and_masked_inside_segment():
    a = np.full(40, 140.0)
    b = np.arange(40.0)
    b[10:30] = np.nan     # optional channel missing for 5 s inside the segment
    b[:5] = np.nan        # and at the start
    cl = clean_recording(np.stack([a, b]), 4.0, [A, B], max_gap_s=1)
    assert cl.segments.tolist() == [[0, 40]]
    assert np.allclose(cl.x[1, 10:30], np.interp(np.arange(10, 30), [9, 30], [9, 30]))
    assert np.allclose(cl.x[1, :5], 5.0)          # held at the first present value
    assert cl.mask[1, 10:30].all() and cl.mask[1, :5].all() and not cl.mask[1, 5:10].any()
    b2 = np.full(40, np.nan)                      # absent everywhere: left NaN, masked
    cl2 = clean_recording(np.stack([a, b2]), 4.0, [A, B], max_gap_s=1)
    assert np.isnan(cl2.x[1]).all() and cl2.mask[1].all()


def test_resampling_does_not_smear_gaps():
    n = 4 * 600
    a = np.full(n, 140.0)
    a[1000:1200] = 0      # 50 s long gap of zeros
    a[400:404] = 0        # 1 s short gap
    cl = clean_recording(np.stack([a, np.full(n, 10.0)]), 4.0, [A, B], max_gap_s=2, target_fs=1.0)
    assert cl.fs == 1.0 and cl.x.shape[1] == 600
    # output j covers source [4j - 2, 4j + 2): j = 250..300 touch the gap [1000, 1200)
    assert cl.segments.tolist() == [[0, 250], [301, 299]]
    seg = np.concatenate([cl.x[0, 0:250], cl.x[0, 301:600]])
    assert np.abs(seg - 140).max() < 1e-6          # the zeros never leak into clean samples
    assert cl.mask[0, 100] and cl.mask[0, 101] and not cl.mask[0, 99] and not cl.mask[0, 102]


def test_pool_mask_any_source_sample_in_output_period():
    m = np.zeros((1, 16), bool)
    m[0, 6] = True        # output 1 covers source [2, 6), output 2 covers [6, 10)
    assert np.flatnonzero(pool_mask(m, 4.0, 1.0, 4)[0]).tolist() == [2]
    m[0, 5] = True
    assert np.flatnonzero(pool_mask(m, 4.0, 1.0, 4)[0]).tolist() == [1, 2]
    up = pool_mask(m, 4.0, 8.0, 32)[0]    # upsampling: output 9 is at source 4.5, between 4 and 5
    assert np.flatnonzero(up).tolist() == [9, 10, 11, 12, 13]


# --- windows -----------------------------------------------------------------------------------

def test_window_offsets_and_index():
    assert window_offsets(100, 64, 16).tolist() == [0, 16, 32]
    assert window_offsets(63, 64, 16).tolist() == []
    idx = window_index(np.array([[0, 70], [100, 20], [200, 64]]), 64, 4, first_segment=5)
    assert idx.tolist() == [[5, 0], [5, 4], [7, 0]]


def test_window_length_rounds_down(tmp_path):
    from dataloader.config.data_schema import DataConfig
    from dataloader.windows import stride_samples, window_length

    d = DataConfig(source="x", prepared="y", channels=[A], fs=500.0, window_s=10.0, window_multiple=64)
    L, note = window_length(d, 500.0)
    assert L == 4992 and "rounded down from 5000" in note
    d.stride_s = 0.001
    with pytest.raises(UserError, match="less than one sample"):
        stride_samples(d, 500.0)


# --- labels ------------------------------------------------------------------------------------

def test_categorical_numbers_compare_numerically_and_strings_are_stripped():
    c = build_coder(LabelSpec(column="Sex", categories=["1", "2"]))
    assert [c.encode(v, "f:2") for v in ["1", " 1.0 ", "2", "2.00"]] == [0, 0, 1, 1]
    c2 = build_coder(LabelSpec(column="d", categories={"vaginal": [1], "caesarean": [2.0]}))
    assert c2.classes == ["vaginal", "caesarean"] and c2.encode("2", "f:3") == 1
    with pytest.raises(UserError, match=r"f:9: column 'Sex': value '3' is not one of"):
        c.encode("3", "f:9")


def test_prefix_match_and_missing():
    c = build_coder(LabelSpec(column="Rhythms", match="prefix", on_missing="class",
                              categories={"sr": ["Sinus rhythm"], "af": ["Atrial fibrillation", "Atrial flutter"]}))
    assert c.encode("Sinus rhythm\nWandering atrial pacemaker\n", "w") == 0
    assert c.encode("Atrial flutter, typical", "w") == 1
    assert c.classes[-1] == "missing" and c.encode("  ", "w") == 2 and c.encode("NA", "w") == 2
    drop = build_coder(LabelSpec(column="x", categories=["a"]))
    assert drop.encode("", "w") is None


def test_bins_names_and_edges():
    c = build_coder(LabelSpec(column="pH", kind="bins", edges=[7.05, 7.15]))
    assert c.classes == ["<7.05", "[7.05,7.15)", ">=7.15"]
    assert [c.encode(v, "w") for v in ["7.0", "7.05", "7.1", "7.15", "7.3"]] == [0, 1, 1, 2, 2]
    r = build_coder(LabelSpec(column="pH", kind="bins", edges=[7.05, 7.15], right=True))
    assert r.classes == ["<=7.05", "(7.05,7.15]", ">7.15"]
    assert [r.encode(v, "w") for v in ["7.05", "7.15", "7.16"]] == [0, 1, 2]
    with pytest.raises(UserError, match="not a number"):
        c.encode("acid", "w")
    assert c.to_dict()["classes"] == c.classes


def test_labels_csv_rows_and_duplicates(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text('id,Rhythms,score\n1,"Sinus rhythm\nextra",7.1\n2,Sinus rhythm,7.2\n')
    coders = [build_coder(LabelSpec(column="Rhythms", match="prefix", categories={"sr": ["Sinus rhythm"]})),
              build_coder(LabelSpec(column="score", kind="bins", edges=[7.15]))]
    assert read_labels_csv(str(p), "id", coders) == {"1": [0, 0], "2": [0, 1]}
    p.write_text('id,Rhythms,score\n1,"Sinus rhythm\nextra",7.1\n1,Sinus rhythm,7.2\n')
    with pytest.raises(UserError) as e:
        read_labels_csv(str(p), "id", coders)
    assert e.value.where == f"{p}:4" and "appears twice" in e.value.what   # the quoted value spans lines 2-3


def test_annotation_codes_severity_order():
    c = build_coder(LabelSpec(column="beat", source="annotation",
                              categories={"V": ["V", "E"], "S": ["A"], "N": ["N", "L"]}))
    samples = np.array([10, 50, 60, 150, 260])
    symbols = np.array(["N", "A", "V", "+", "N"], dtype=object)
    # windows [0,50): N; [40,90): A and V -> V first; [120,170): only "+" (not a beat); [230,280): N
    codes = annotation_codes(c, samples, symbols, np.array([0, 40, 120, 230]), 50)
    assert codes.tolist() == [2, 0, -1, 2]
    c.missing_code = 3
    assert annotation_codes(c, samples, symbols, np.array([120]), 50).tolist() == [3]


# --- split -------------------------------------------------------------------------------------

def test_split_disjoint_deterministic_and_seeded():
    ids = [f"id{i}" for i in range(40)]
    m = split_patients(ids, SplitSpec(train=0.6, val=0.2, test=0.2, seed=1))
    sides = [set(v) for v in m.values()]
    assert sum(len(s) for s in sides) == 40 and set.union(*sides) == set(ids)
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert [len(m[s]) for s in ("train", "val", "test")] == [24, 8, 8]
    again = split_patients(list(reversed(ids)), SplitSpec(train=0.6, val=0.2, test=0.2, seed=1))
    assert manifest_sha256(again) == manifest_sha256(m)            # file order does not matter
    other = split_patients(ids, SplitSpec(train=0.6, val=0.2, test=0.2, seed=2))
    assert manifest_sha256(other) != manifest_sha256(m)


def test_split_stratified_keeps_rare_class_everywhere():
    ids = [f"p{i:03d}" for i in range(100)]
    strata = {p: int(i < 10) for i, p in enumerate(ids)}            # 10 % rare
    m = split_patients(ids, SplitSpec(seed=0), strata)
    assert [sum(strata[p] for p in m[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert [len(m[s]) for s in ("train", "val", "test")] == [80, 10, 10]


# --- scaling -----------------------------------------------------------------------------------

def test_scaling_round_trip_and_clip():
    x = np.array([[40.0, 50, 130, 210, 300], [0, 25, 50, 100, 120]])
    lo, hi = [50, 0], [210, 100]
    s = to_scaled(x, lo, hi)
    assert s.tolist() == [[-1, -1, 0, 1, 1], [-1, -0.5, 0, 1, 1]]
    assert np.allclose(to_physical(s, lo, hi), np.clip(x, [[50], [0]], [[210], [100]]))
    q = quantize_int16(s)
    assert q.dtype == np.int16 and q.max() == 32767 and q.min() == -32767
    assert np.abs(dequantize_int16(q) - s).max() <= 0.5 / 32767 + 1e-7
    batch = np.stack([s, s])                                          # (N, C, L) broadcasts too
    assert np.allclose(to_physical(batch, lo, hi)[1], to_physical(s, lo, hi))


def test_auto_range_from_training_values_only():
    auto = ChannelSpec(name="z", range="auto")
    x1 = np.array([[1.0, 5.0, 99.0]])
    m1 = np.array([[False, False, True]])     # 99 was interpolated: not a measured value
    x2 = np.array([[-2.0, 3.0, 4.0]])
    assert fit_ranges([auto], [(x1, m1), (x2, np.zeros_like(m1))]) == [(-2.0, 5.0)]
    assert fit_ranges([auto], [(np.full((1, 3), 7.0), np.zeros((1, 3), bool))]) == [(6.0, 8.0)]
    with pytest.raises(UserError, match="range: auto"):
        fit_ranges([auto], [])
