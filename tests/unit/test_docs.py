"""The documentation's links and the files it names exist, and README.rst keeps the test command."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.rst", *sorted((REPO / "docs").glob("*.*"))]


def test_every_relative_link_of_the_docs_resolves():
    broken = []
    for page in PAGES:
        for target in re.findall(r"`[^`<]+<([^>`]+)>`_", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []


def test_files_the_docs_name_exist():
    named = {m for page in PAGES
             for m in re.findall(r"\b((?:tests|benchmarks|deploy|dialplan|docs)/[\w./@-]*\w\.(?:py|rst|md|conf|cfg|ini|service))",
                                 page.read_text(encoding="utf-8"))}
    assert "tests/asterisk_pbx.py" in named
    assert sorted(n for n in named if not (REPO / n).exists()) == []


def test_the_readme_is_a_landing_page_with_the_test_command_ci_runs():
    readme = (REPO / "README.rst").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 200
    assert len(re.findall(r"^    \$ .*# tests-command$", readme, re.MULTILINE)) == 1
    assert "tests-command" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
