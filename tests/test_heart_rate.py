"""Heart-rate measurement (dataloader/heart_rate.py), derived heart-rate labels in preparation, and the
fallback of generate.py's heart-rate control (diffusion/rate_control.py) on signals with a known rate."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataloader.config import load_config
from dataloader.errors import UserError
from dataloader.heart_rate import fhr_baseline, measure, rpeak_rate
from dataloader.labels import build_coder, rate_codes
from tests.heart_rate_data import BLOCK_BPM, EDGES, FS, fhr_trace, make_ecg_project, pulse_ecg


@pytest.mark.parametrize("bpm", [60.0, 120.0, 170.0])
@pytest.mark.parametrize("fs", [250.0, 360.0])
def test_rpeak_rate_of_a_pulse_train(bpm: float, fs: float) -> None:
    assert abs(rpeak_rate(pulse_ecg(bpm, fs, 10.0), fs) - bpm) < 0.5


def test_rpeak_rate_not_measurable() -> None:
    assert np.isnan(rpeak_rate(np.zeros(2500), 250.0))                 # flat: no R-peak
    assert np.isnan(rpeak_rate(pulse_ecg(60.0, 250.0, 2.0), 250.0))    # 2 s at 60 bpm: 2 beats, no rhythm


@pytest.mark.parametrize("base", [120.0, 140.0, 155.0])
def test_fhr_baseline_known(base: float) -> None:
    from evaluation.metrics.physio_ctg import ctg_window_features

    x = fhr_trace(base, 4.0)
    b = fhr_baseline(x, 4.0)
    assert abs(b - base) < 1.0                                         # accelerations and dropout left out
    assert b == ctg_window_features(x, None, 4.0)["baseline_bpm"]      # evaluation's number is this one
    assert np.isnan(fhr_baseline(np.zeros(4800), 4.0))                 # all signal loss


def test_measure_unknown_method() -> None:
    with pytest.raises(UserError, match="unknown method"):
        measure("pulse", np.zeros(10), 1.0)


def _spec(**kw: object) -> object:
    from dataloader.config.data_schema import LabelSpec

    d = dict(column="hr", source="heart_rate", kind="bins", edges=[60, 100], channel="ecg", method="rpeaks")
    d.update(kw)
    return LabelSpec(**d)  # type: ignore[arg-type]


def test_rate_codes_bins_and_missing() -> None:
    spec = _spec()
    spec.check("x")
    coder = build_coder(spec)
    assert coder.to_dict()["method"] == "rpeaks" and coder.to_dict()["channel"] == "ecg"
    assert rate_codes(coder, np.array([50.0, 60.0, 99.9, 100.0, np.nan])).tolist() == [0, 1, 1, 2, -1]
    coder = build_coder(_spec(on_missing="class"))
    assert rate_codes(coder, np.array([np.nan, 70.0])).tolist() == [3, 1]


@pytest.mark.parametrize("kw, field", [({"kind": "categorical", "categories": ["a"]}, "kind"),
                                       ({"channel": None}, "channel"), ({"method": None}, "method"),
                                       ({"source": "csv"}, "channel")])
def test_heart_rate_spec_errors(kw: dict, field: str) -> None:
    with pytest.raises(UserError) as e:
        _spec(**kw).check("data.label_columns.0")
    assert e.value.where == f"data.label_columns.0.{field}"


def test_heart_rate_channel_must_exist(tmp_path: Path) -> None:
    cfg = make_ecg_project(tmp_path)
    with pytest.raises(UserError, match="heart-rate channel 'ii'"):
        load_config(cfg, ["data.label_columns.0.channel=ii"])


@pytest.fixture(scope="module")
def ecg_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ecg_project(tmp_path_factory.mktemp("ecg"))


def test_prepare_derived_labels(ecg_project: Path) -> None:
    from dataloader.dataset import WindowDataset

    coder = build_coder(load_config(ecg_project).data.label_columns[0])
    want = sorted(coder.bin_code(b) for b in BLOCK_BPM)
    for split in ("train", "val", "test"):
        ds = WindowDataset(str(ecg_project.parent / "prepared.h5"), split)
        codes = sorted(int(ds[i][1][0]) for i in range(len(ds)))
        assert codes == sorted(want * (len(ds) // len(BLOCK_BPM))), split   # one window per block, each binned
    report = (ecg_project.parent / "prepared.report.csv").read_text()
    assert "q99" in report and "measurable rate" in report                 # the flat patient is dropped


def test_prepare_missing_rate_as_class(ecg_project: Path, tmp_path: Path) -> None:
    from dataloader.prepare import prepare
    from dataloader.prepared import PreparedFile

    cfg = load_config(ecg_project, ["data.label_columns.0.on_missing=class", f"data.prepared={tmp_path}/p.h5"])
    prepare(cfg, workers=1)
    f = PreparedFile(str(tmp_path / "p.h5"))
    assert f.class_names[0][-1] == "missing" and len(f.class_names[0]) == len(EDGES) + 2


@pytest.mark.parametrize("src, dst", [(60.0, 90.0), (120.0, 72.0), (72.0, 170.0), (170.0, 60.0)])
def test_fallback_resample_reaches_target(src: float, dst: float) -> None:
    from diffusion.rate_control import RateTarget, correct_batch

    fs = 250.0
    x = np.stack([pulse_ecg(src, fs, 10.0, seed=1), pulse_ecg(src, fs, 10.0, seed=2)])[:, None, :]  # (2, 1, L)
    y, unmeasured = correct_batch(x, fs, 0, RateTarget("--bpm", "rpeaks", dst), ([-3.0], [3.0]))
    assert y.shape == x.shape and unmeasured == 0
    for w in y:
        assert abs(rpeak_rate(w[0], fs) - dst) <= 3.0


def test_fallback_offset_baseline_and_unmeasurable() -> None:
    from diffusion.rate_control import RateTarget, correct_batch

    x = np.stack([fhr_trace(125.0, 4.0, 10.0), np.zeros(2400)])[:, None, :]
    y, unmeasured = correct_batch(x, 4.0, 0, RateTarget("--baseline_bpm", "baseline", 145.0), ([0.0], [240.0]))
    assert abs(fhr_baseline(y[0, 0], 4.0) - 145.0) < 0.5
    assert unmeasured == 1 and (y[1] == 0).all()                            # left as it was


def test_rate_measured_at_window_rate() -> None:
    """The tiny project's windows (100 Hz, 512 samples) are measurable at every block rate."""
    for bpm in BLOCK_BPM:
        x = pulse_ecg(bpm, FS, 5.12)
        assert abs(rpeak_rate(x, FS) - bpm) < 1.0
