"""pyproject.toml: setuptools reads it without any deprecation warning; dependency list as documented."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_has_no_deprecated_fields() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert isinstance(project["license"], str)  # SPDX expression; a table is deprecated (setuptools>=77)
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))
    deps = project["dependencies"]
    assert "torch>=2.1" in deps
    assert not any(d.lower().replace("_", "-").startswith("k-diffusion") for d in deps)  # installed --no-deps


def test_setuptools_reads_pyproject_without_warnings(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_configuration(Distribution(), ROOT / "pyproject.toml")
    msgs = [f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught
            if "deprecat" in str(w.message).lower() or "Deprecation" in w.category.__name__]
    assert not msgs, msgs
