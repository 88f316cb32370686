"""The docs site builds: `mkdocs build --strict` (what `make docs` and CI run) passes, offline.

--strict makes every warning fail the build: a broken link or anchor, a page left out of the
nav, an API name mkdocstrings cannot find. The site includes the repository's LICENSE,
CHANGELOG.md, CONTRIBUTING.md and CITATION.cff (pymdownx.snippets), so each must exist.
MkDocs comes with the `docs` extra (`make test` installs it): missing, the test is skipped,
but fails under CI=true.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
INCLUDED = ("LICENSE", "CHANGELOG.md", "CONTRIBUTING.md", "CITATION.cff")


def require_mkdocs() -> None:
    missing = [name for name in ("mkdocs", "material", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(name.split(".")[0]) is None]
    if missing:
        message = f"{', '.join(missing)} not installed: pip install -e '.[docs]' (make docs does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def test_the_site_builds_strictly_and_offline(tmp_path: Path) -> None:
    require_mkdocs()
    assert [name for name in INCLUDED if not (ROOT / name).is_file()] == []
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(site)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    pages = list(site.rglob("*.html"))
    assert (site / "reference" / "api" / "index.html").is_file()
    assert "ParallelConfig" in (site / "reference" / "api" / "index.html").read_text()
    # Nothing is fetched when a page is read: no web fonts, scripts or styles from elsewhere
    remote = re.compile(r'<(?:link|script)[^>]+(?:href|src)="(?:https?:)?//', re.I)
    assert [str(page) for page in pages if remote.search(page.read_text())] == []


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert [page for page in pages if f": {page}\n" not in nav] == []
