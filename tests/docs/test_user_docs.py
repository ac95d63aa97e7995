"""User docs speak to users: no pointers into the project's tracker or internal notes, and the
commands they promise are the ones the project runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.transcripts import commands, fenced_blocks
from tests.regplan_cli import REPO_ROOT

USER_DOCS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "CONTRIBUTING.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
    *sorted(p for p in (REPO_ROOT / "docs" / "examples").rglob("*") if p.is_file()),
]
INTERNALS = re.compile(
    r"issue #\d|issues? \d|spec §|§\s*\d|\.\./shared|shared/(spec|seed|testdata)", re.I
)


@pytest.mark.parametrize("doc", USER_DOCS, ids=[str(p.relative_to(REPO_ROOT)) for p in USER_DOCS])
def test_no_references_to_internals(doc: Path) -> None:
    found = [
        f"{doc.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for number, line in enumerate(doc.read_text().splitlines(), 1)
        if INTERNALS.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        "## Targets (issue #7)",
        "regsync sorts the other way — see spec §5.3",
        "under `../shared/testdata`",
    ],
)
def test_internals_pattern_catches_what_it_is_for(line: str) -> None:
    assert INTERNALS.search(line)


def test_ci_runs_the_readme_test_command() -> None:
    readme = REPO_ROOT / "README.md"
    text = readme.read_text()
    section = text[text.index("## Tests") :]
    block = next(b for b in fenced_blocks(readme, section) if b.language == "console")
    [command] = commands(block)
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert command.text in ci, f".ci/run does not run the README's test command:\n{command.text}"
