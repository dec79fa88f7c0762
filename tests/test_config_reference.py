"""The generated config reference in docs/config_reference.md is current, and the docs' relative links resolve."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import config_reference

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_config_reference_is_current(monkeypatch):
    """`python -m tools.config_reference --check` (default target docs/config_reference.md) passes."""
    target = ROOT / config_reference.DEFAULT_TARGET
    assert target.is_file()
    text = target.read_text()
    assert config_reference.BEGIN in text and config_reference.END in text
    monkeypatch.chdir(ROOT)
    assert config_reference.main(["--check"]) == 0


def test_config_reference_check_fails_when_stale(tmp_path):
    stale = tmp_path / "ref.md"
    stale.write_text(f"# x\n\n{config_reference.BEGIN}\n| old |\n{config_reference.END}\n")
    assert config_reference.main(["--check", str(stale)]) == 1
    assert config_reference.main(["--write", str(stale)]) == 0
    assert config_reference.main(["--check", str(stale)]) == 0
    assert stale.read_text().startswith("# x\n\n")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc):
    """Every markdown link `](target)` that is not a URL or an anchor names an existing file of the repository
    (or of the shared data folder beside it, which the configs read)."""
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    allowed = (ROOT, ROOT.parent / "shared" / "data")
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://|mailto:|#", target):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or not any(path.is_relative_to(a) for a in allowed):
            bad.append(target)
    assert not bad, f"{doc.name}: links to missing files or outside the repository: {bad}"


def test_readme_points_to_the_docs():
    """The short README keeps its results markers and links every page of docs/."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count("<!-- results:begin -->") == 1 and readme.count("<!-- results:end -->") == 1
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, page.name
