"""The web app (serve/) through FastAPI's test client: one test per class of bad input (each a 4xx with one
line naming the field), the whole path from a request to every download format read back by the project's
readers, the queue limit (429 + Retry-After), expiry, and the command line."""
from __future__ import annotations

import io
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from dataloader.synthetic import read_synthetic
from tests.tiny_run import make_tiny_project, run_train, tiny_config

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from serve.app import create_app  # noqa: E402
from serve.settings import Settings, formats  # noqa: E402

LABELS = {"grp": "b", "score": "high"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained model (4 steps, seconds): its run folder, served as model "run"."""
    cfg_path = make_tiny_project(tmp_path_factory.mktemp("serve"))
    old = torch.get_num_threads()
    run_train(tiny_config(cfg_path, "train.max_steps=4"))
    torch.set_num_threads(old)
    return cfg_path.parent / "run"


def _client(model_dir: Path, tmp: Path, **kw: Any) -> TestClient:
    settings = Settings(models=[model_dir], workers=kw.pop("workers", 1), work_dir=tmp, **kw)
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with _client(model_dir, tmp_path_factory.mktemp("work"), max_seconds=3600) as c:
        yield c


def _job(**kw: Any) -> dict[str, Any]:
    return {"model": "run", "length": "0:20", "labels": dict(LABELS), **kw}


def _wait(client: TestClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    end = time.time() + timeout
    while time.time() < end:
        s = client.get(f"/api/jobs/{job_id}").json()
        if s["state"] in ("done", "failed"):
            return s
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def _refused(r: Any, status: int, field: str) -> str:
    """The response is `status` with one line that starts with the field."""
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail.startswith(f"{field}:"), detail
    assert "Traceback" not in r.text
    return detail


def test_model_cards_list_channels_labels_and_training(client: TestClient) -> None:
    cat = client.get("/api/models").json()
    (card,) = cat["models"]
    assert card["name"] == "run" and card["fs"] == 1.0 and card["window_len"] == 32
    assert [c["name"] for c in card["channels"]] == ["A", "B"] and card["channels"][0]["unit"] == "mV"
    assert card["labels"] == [{"name": "grp", "classes": ["a", "b"]}, {"name": "score", "classes": ["low", "high"]}]
    assert card["training"]["step"] == 4 and card["training"]["windows"] > 0
    assert card["max_seconds"] == 3600.0  # the app's setting: longer than a window is continued
    assert [f["name"] for f in cat["formats"]] == list(formats())
    assert cat["default_preset"] in [p["name"] for p in cat["presets"]]


def test_unknown_model_is_422(client: TestClient) -> None:
    assert "unknown model 'nope'" in _refused(client.post("/api/jobs", json=_job(model="nope")), 422, "model")


def test_unknown_class_label_or_preset_is_422(client: TestClient) -> None:
    r = client.post("/api/jobs", json=_job(labels={"grp": "c", "score": "low"}))
    assert "unknown class 'c'" in _refused(r, 422, "labels.grp")
    _refused(client.post("/api/jobs", json=_job(labels={**LABELS, "sex": "f"})), 422, "labels.sex")
    assert "missing" in _refused(client.post("/api/jobs", json=_job(labels={"grp": "a"})), 422, "labels.score")
    _refused(client.post("/api/jobs", json=_job(preset="ultra")), 422, "preset")


@pytest.mark.parametrize("length", ["0", "0:00", "0s", "-5", "abc", "1e400", "1h1s", "2h", ""])
def test_length_zero_unreadable_or_over_the_limit_is_422(client: TestClient, length: str) -> None:
    _refused(client.post("/api/jobs", json=_job(length=length)), 422, "length")


def test_length_over_max_seconds_names_the_setting(model_dir: Path, tmp_path: Path) -> None:
    with _client(model_dir, tmp_path, max_seconds=10) as c:
        assert "--max_seconds" in _refused(c.post("/api/jobs", json=_job(length="11s")), 422, "length")


@pytest.mark.parametrize("body, field", [
    (b"{not json", "body"), (b"[1, 2]", "body"), (b'"text"', "body"),
    (b'{"model": "run", "length": "10", "labels": {"grp": "a", "score": "low"}, "extra": 1}', "extra"),
    (b'{"model": "run", "length": "10", "seed": "3"}', "seed"),
    (b'{"model": "run", "length": 10}', "length"),
    (b'{"model": "run", "length": "10", "seed": -1}', "seed"),
    (b'{"length": "10"}', "model"),
])
def test_malformed_body_or_extra_field_is_422(client: TestClient, body: bytes, field: str) -> None:
    _refused(client.post("/api/jobs", content=body, headers={"content-type": "application/json"}), 422, field)


def test_a_huge_body_is_413(client: TestClient) -> None:
    big = b'{"model": "run", "length": "10", "pad": "' + b"x" * 70000 + b'"}'
    _refused(client.post("/api/jobs", content=big, headers={"content-type": "application/json"}), 413, "body")


@pytest.mark.parametrize("where, value", [
    ("model", "../run"), ("model", "/etc/passwd"), ("length", "..\\10"), ("preset", "~/standard"),
    ("labels", {"grp": "../../a", "score": "low"}), ("labels", {"a/b": "a", "score": "low"}),
])
def test_a_path_in_any_field_is_422(client: TestClient, where: str, value: Any) -> None:
    detail = _refused(client.post("/api/jobs", json=_job(**{where: value})), 422, where)
    assert "path" in detail


def test_bad_format_is_422_and_unknown_job_is_404(client: TestClient) -> None:
    job = client.post("/api/jobs", json=_job()).json()
    _wait(client, job["id"])
    for fmt in ("exe", "../recording.h5", "/etc/passwd", "HDF5"):
        _refused(client.get(f"/api/jobs/{job['id']}/file", params={"format": fmt}), 422, "format")
    _refused(client.get(f"/api/jobs/{job['id']}/file"), 422, "format")
    for url in ("/api/jobs/nope", "/api/jobs/nope/file?format=hdf5", "/api/jobs/nope/preview.png",
                f"/api/jobs/{job['id'][:-1]}", "/api/jobs/..%2F..%2Fetc/preview.png", "/static/../app.py"):
        assert client.get(url).status_code == 404, url


def test_a_request_to_every_download_read_back(client: TestClient, tmp_path: Path) -> None:
    r = client.post("/api/jobs", json=_job(length="0:20", seed=7, preset="draft"))
    assert r.status_code == 202 and r.headers["location"] == f"/api/jobs/{r.json()['id']}"
    s = _wait(client, r.json()["id"])
    assert s["state"] == "done" and s["progress"] == 1.0 and s["n_samples"] == 20 and s["labels"] == LABELS
    png = client.get(s["preview"])
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(s["files"]) == set(formats())
    got = {f: client.get(url) for f, url in s["files"].items()}
    assert all(g.status_code == 200 for g in got.values())
    (tmp_path / "rec.h5").write_bytes(got["hdf5"].content)
    samples, labels, attrs = read_synthetic(tmp_path / "rec.h5")
    assert samples.shape == (1, 2, 20) and labels.tolist() == [[1, 1]] and attrs["seed"] == 7
    assert attrs["sampler"] == "dpm_solver" and attrs["steps"] == 10
    zipfile.ZipFile(io.BytesIO(got["wfdb"].content)).extractall(tmp_path / "wfdb")
    import wfdb

    rec = wfdb.rdrecord(str(tmp_path / "wfdb" / "syn_000000"))
    assert rec.sig_name == ["A", "B"] and rec.fs == 1 and rec.p_signal.shape == (20, 2)
    np.testing.assert_allclose(rec.p_signal.T, samples[0], atol=1e-3)
    with zipfile.ZipFile(io.BytesIO(got["csv"].content)) as z:
        table = np.loadtxt(io.StringIO(z.read("syn_000000.csv").decode()), delimiter=",", skiprows=1)
        assert "b,high" in z.read("index.csv").decode()
    np.testing.assert_allclose(table[:, 1:].T, samples[0], rtol=1e-5, atol=1e-5)
    import edfio

    zipfile.ZipFile(io.BytesIO(got["edf"].content)).extractall(tmp_path / "edf")
    edf = edfio.read_edf(tmp_path / "edf" / "syn_000000.edf")
    assert [x.label for x in edf.signals] == ["A", "B"] and [x.physical_dimension for x in edf.signals] == ["mV", "nd"]
    for c, sig in enumerate(edf.signals):  # within EDF's 16-bit digital resolution of the channel's range
        step = (sig.physical_range[1] - sig.physical_range[0]) / (sig.digital_range[1] - sig.digital_range[0])
        assert sig.sampling_frequency == 1.0 and np.abs(sig.data[:20] - samples[0, c]).max() <= step
    # the same request gives the same bytes, in a new job of its own
    again = _wait(client, client.post("/api/jobs", json=_job(length="0:20", seed=7, preset="draft")).json()["id"])
    assert again["id"] != s["id"]
    assert client.get(again["files"]["hdf5"]).content == got["hdf5"].content
    assert client.get(again["files"]["wfdb"]).content == got["wfdb"].content


def test_job_files_stay_in_the_apps_own_folder(client: TestClient) -> None:
    s = _wait(client, client.post("/api/jobs", json=_job()).json()["id"])
    root = client.app.state.root  # type: ignore[attr-defined]
    job = client.app.state.jobs.get(s["id"])  # type: ignore[attr-defined]
    assert job.folder.parent == root and (job.folder / "recording.h5").is_file()
    assert len(s["id"]) >= 22  # secrets.token_urlsafe(16)


def test_the_page_is_served_without_outside_resources(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "http" not in client.get("/static/app.js").text  # no CDN
    assert "/api/jobs" in client.get("/openapi.json").json()["paths"]


def _blocking(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make every job wait for the returned event before it renders."""
    import serve.jobs

    go = threading.Event()
    real = serve.jobs.render

    def slow(*a: Any, **kw: Any) -> Any:
        go.wait(30)
        return real(*a, **kw)

    monkeypatch.setattr(serve.jobs, "render", slow)
    return go


def test_a_full_queue_is_429_with_retry_after(model_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    go = _blocking(monkeypatch)
    with _client(model_dir, tmp_path, workers=1, queue=1) as c:
        ids = [c.post("/api/jobs", json=_job(seed=i)).json()["id"] for i in range(2)]  # one runs, one waits
        r = c.post("/api/jobs", json=_job(seed=2))
        _refused(r, 429, "queue")
        assert int(r.headers["retry-after"]) >= 1
        go.set()
        assert [_wait(c, i)["state"] for i in ids] == ["done", "done"]
        assert c.post("/api/jobs", json=_job(seed=2)).status_code == 202  # room again


def test_finished_files_expire(model_dir: Path, tmp_path: Path) -> None:
    with _client(model_dir, tmp_path, expire_minutes=1) as c:
        s = _wait(c, c.post("/api/jobs", json=_job()).json()["id"])
        store = c.app.state.jobs  # type: ignore[attr-defined]
        job = store.get(s["id"])
        assert 0 < s["expires_in_s"] <= 60
        assert store.sweep(now=job.finished + 59) == []
        assert store.sweep(now=job.finished + 60) == [s["id"]]
        assert not job.folder.exists()
        _refused(c.get(s["files"]["hdf5"]), 404, "job")
        _refused(c.get(f"/api/jobs/{s['id']}"), 404, "job")


def test_a_failed_job_says_why_and_a_bug_is_one_generic_line(client: TestClient,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import serve.app
    import serve.render

    import diffusion.continuation

    monkeypatch.setattr(diffusion.continuation, "decode_long", lambda *a, **kw: torch.full((2, 64), float("nan")))
    s = _wait(client, client.post("/api/jobs", json=_job(seed=99)).json()["id"])
    assert s["state"] == "failed" and s["error"].startswith("model output:") and s["files"] == {}
    _refused(client.get(f"/api/jobs/{s['id']}/file", params={"format": "hdf5"}), 409, "job")
    monkeypatch.undo()
    done = _wait(client, client.post("/api/jobs", json=_job()).json()["id"])

    def broken(*a: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(serve.app.JobStore, "file", broken)
    r = client.get(done["files"]["csv"])
    assert r.status_code == 500 and r.json() == {"detail": "internal error (logged on the server)"}


def test_a_recording_longer_than_the_window_is_continued(client: TestClient, tmp_path: Path) -> None:
    s = _wait(client, client.post("/api/jobs", json=_job(length="1:30", seed=3, preset="draft")).json()["id"])
    assert s["state"] == "done" and s["n_samples"] == 90, s  # 90 samples at 1 Hz: three 32-sample windows chained
    (tmp_path / "long.h5").write_bytes(client.get(s["files"]["hdf5"]).content)
    samples, _, _ = read_synthetic(tmp_path / "long.h5")
    assert samples.shape == (1, 2, 90) and np.isfinite(samples).all()
    # its start is the model's own first window of the same seed (what a short request returns)
    short = _wait(client, client.post("/api/jobs", json=_job(length="0:20", seed=3, preset="draft")).json()["id"])
    (tmp_path / "short.h5").write_bytes(client.get(short["files"]["hdf5"]).content)
    np.testing.assert_allclose(read_synthetic(tmp_path / "short.h5")[0][0, :, :16], samples[0, :, :16], atol=1e-5)


def test_command_line_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dataloader.cli import run_main
    from serve.__main__ import main

    for argv, where in ((["--models", str(tmp_path / "none")], "--models"), (["--models", str(tmp_path)], "--models"),
                        (["--models", str(tmp_path), "--workers", "0"], "--workers"),
                        (["--models", str(tmp_path), "--max_seconds", "0"], "--max_seconds")):
        with pytest.raises(SystemExit) as e:
            run_main(main, argv)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and err.startswith(f"error: {where}") and "\n" not in err, err
