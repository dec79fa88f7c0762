"""The web app in a real browser (slow): headless Chromium, driven by selenium, fills the form on the page of
a real `python -m serve`, waits for the preview, downloads the EDF file and the test opens it.

Needs Debian's chromium and chromium-driver (`make browser-deps`); skips, saying so, where they are absent.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.tiny_run import make_tiny_project, run_train, tiny_config

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM.is_file() and DRIVER.exists()),
    reason=f"needs {CHROMIUM} and {DRIVER} (Debian packages chromium, chromium-driver: make browser-deps)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A real `python -m serve` on a tiny trained model, on a free loopback port; its base URL."""
    cfg = make_tiny_project(tmp_path / "project")
    run_train(tiny_config(cfg, "train.max_steps=4"))
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "serve", "--models", str(cfg.parent / "run"), "--port", str(port),
                             "--workers", "1", "--work_dir", str(tmp_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/api/models", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode() if proc.stdout else "server exited")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _browser(downloads: Path, profile: Path):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    return webdriver.Chrome(options=opts, service=Service(str(DRIVER)))


def test_the_page_generates_previews_and_downloads_a_recording(server: str, tmp_path: Path) -> None:
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = _browser(downloads, tmp_path / "profile")
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(server + "/")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".label-select")) == 2)
        for select in driver.find_elements(By.CSS_SELECTOR, ".label-select"):
            Select(select).select_by_index(1)  # grp b, score high
        length = driver.find_element(By.ID, "length")
        length.clear()
        length.send_keys("0:25")
        seed = driver.find_element(By.ID, "seed")
        seed.clear()
        seed.send_keys("5")
        Select(driver.find_element(By.ID, "preset")).select_by_value("draft")
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: d.execute_script(
            "const i = document.getElementById('preview'); return !i.hidden && i.complete && i.naturalWidth > 0"))
        assert driver.find_element(By.ID, "error").text == ""
        driver.find_element(By.CSS_SELECTOR, "#downloads a[data-format='edf']").click()
        wait.until(lambda d: [p for p in downloads.iterdir() if p.suffix == ".zip"])
    finally:
        driver.quit()
    import edfio

    (path,) = [p for p in downloads.iterdir() if p.suffix == ".zip"]
    zipfile.ZipFile(path).extractall(tmp_path / "edf")
    edf = edfio.read_edf(tmp_path / "edf" / "syn_000000.edf")
    assert [s.label for s in edf.signals] == ["A", "B"] and all(len(s.data) == 25 for s in edf.signals)
    texts = " ".join(a.text for a in edf.annotations)
    assert "synthetic" in texts and "seed 5" in texts
