"""tools.export --format edf: EDF+ read back with edfio within the digital resolution, with the rate, units,
channel names and annotations (labels, synthetic origin, a label schedule) of the generated file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataloader.synthetic import SyntheticWriter
from tools.export import export

# not CTG: three channels of other kinds, one with a non-ASCII unit and a name longer than EDF's 16 characters
CHANNELS = [{"name": "Resp", "unit": "l/min", "range": [-5, 5]},
            {"name": "skin temperature sensor", "unit": "°C", "range": [30, 40]},
            {"name": "EMG", "unit": "µV", "range": [-500, 500]}]
SPEC = [{"name": "state", "classes": ["rest", "exercise"]}, {"name": "group", "classes": ["a", "b", "c"]}]


def _write(path: Path, length: int, fs: float, extra: dict | None = None) -> np.ndarray:
    rng = np.random.default_rng(2)
    n = 2
    x = np.stack([2 * rng.standard_normal((n, length)), 35 + rng.standard_normal((n, length)),
                  200 * rng.standard_normal((n, length))], axis=1).astype(np.float32)
    x[0, 0, 3] = 7.5   # outside the declared range: the physical range widens, nothing clips
    attrs = dict(fs=fs, channels=CHANNELS, label_spec=SPEC, config="data: {}\n", sampler="ddim", steps=10,
                 guidance_scale=1.0, seed=5, model_sha256="ab" * 32, package_version="0.1.0", **(extra or {}))
    w = SyntheticWriter(path, attrs=attrs, run_key="k", labels=np.array([[0, 2], [1, 0]]), n_channels=3,
                        length=length)
    w.append(x)
    w.finish()
    return x


def _resolution(sig) -> float:  # type: ignore[no-untyped-def]
    lo, hi = sig.physical_range
    return (hi - lo) / 65535


def test_edf_round_trip(tmp_path: Path) -> None:
    import edfio

    x = _write(tmp_path / "syn.h5", length=250, fs=25.0)
    files = export(tmp_path / "syn.h5", "edf", tmp_path / "edf")
    assert sorted(f.name for f in files) == ["index.csv", "syn_000000.edf", "syn_000001.edf"]
    for i in range(2):
        edf = edfio.read_edf(tmp_path / "edf" / f"syn_{i:06d}.edf")
        assert [s.label for s in edf.signals] == ["Resp", "skin temperature", "EMG"]   # EDF's 16 characters
        assert [s.physical_dimension for s in edf.signals] == ["l/min", "?C", "uV"]
        assert all(s.sampling_frequency == 25.0 for s in edf.signals)
        for c, sig in enumerate(edf.signals):
            assert len(sig.data) == 250
            assert np.abs(sig.data - x[i, c]).max() <= _resolution(sig) + 1e-4
            lo, hi = CHANNELS[c]["range"]
            assert sig.physical_range[0] <= lo and sig.physical_range[1] >= hi
        texts = [a.text for a in edf.annotations]
        assert all(a.onset == 0 for a in edf.annotations)
        assert any("synthetic" in t and "not a real patient" in t for t in texts)
        assert any("seed 5" in t and "ab" * 32 in t for t in texts)
        assert any(t == "channel skin temperature: skin temperature sensor [°C]" for t in texts)
        assert ("label state: rest" in texts) == (i == 0) and ("label group: c" in texts) == (i == 0)
        assert ("label state: exercise" in texts) == (i == 1)
    assert edfio.read_edf(tmp_path / "edf" / "syn_000000.edf").signals[0].physical_range[1] >= 7.5
    assert not list((tmp_path / "edf").glob(".tmp*"))


def test_edf_schedule_and_padding(tmp_path: Path) -> None:
    """A --duration file with a label schedule: the changes are annotations at their times; a length that is
    not a whole number of data records (1 s at 4 Hz) is padded and its end annotated."""
    import edfio

    sched = {"columns": [0], "starts": [0.0, 30.0], "codes": [[0], [1]]}
    x = _write(tmp_path / "long.h5", length=241, fs=4.0,
               extra={"continuation": json.dumps({"schedule": sched}), "duration_s": 60.25})
    export(tmp_path / "long.h5", "edf", tmp_path / "edf")
    edf = edfio.read_edf(tmp_path / "edf" / "syn_000001.edf")
    notes = [(a.onset, a.text) for a in edf.annotations]
    assert (0.0, "label state: rest") in notes and (30.0, "label state: exercise") in notes
    assert (0.0, "label group: a") in notes
    assert not any(t == "label state: exercise" and o == 0 for o, t in notes)   # the schedule's value, not the row's
    assert any(o == pytest.approx(60.25) and "end of the generated samples" in t for o, t in notes)
    sig = edf.signals[0]
    assert len(sig.data) == 244 and np.abs(sig.data[:241] - x[1, 0]).max() <= _resolution(sig) + 1e-4
    assert np.allclose(sig.data[241:], sig.data[240])
