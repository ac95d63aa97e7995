"""The map lives in the repo: docs/regsync-behaviour.md keeps the section titles code cites,
every citation of it names a section that exists, the tests its tables name exist, and every
relative link in the user docs reaches a file and heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.regplan_cli import REPO_ROOT

BEHAVIOUR = REPO_ROOT / "docs" / "regsync-behaviour.md"
CITED_AS = "docs/regsync-behaviour.md,"

# Code cites these by title ("docs/regsync-behaviour.md, Deciding whether an image needs
# syncing"): renaming one silently breaks every comment that cites it.
SECTIONS = (
    "0. Files that define regsync",
    "1. cmd/regsync",
    "1.1 CLI surface",
    "1.2 Config file schema",
    "1.3 Load sequence and default merging",
    "1.4 Client construction",
    "1.5 Processing a step",
    "1.6 Deciding whether an image needs syncing",
    "1.7 Tag and repo filters",
    "1.8 Backup",
    "1.9 Platform matching",
    "1.10 Modes",
    "1.11 Sentinel error texts",
    "2. Templates",
    "3. Reference parsing",
    "4. Image copy",
    "5. Credentials and registry settings",
    "5.1 Docker config import",
    "5.2 Credential helper protocol",
    "5.3 Host fields",
    "6. Logging",
    "7. regsync's own test suite",
    "8. What users ask for / complain about",
)

USER_DOCS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "CONTRIBUTING.md",
    *(REPO_ROOT / "docs").glob("*.md"),
]


def headings(path: Path) -> list[str]:
    """Markdown headings outside fenced blocks, without their `#`s."""
    out, fenced = [], False
    for line in path.read_text().splitlines():
        if re.match(r"\s*(```|~~~)", line):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*?)\s*$", line)):
            out.append(m.group(1))
    return out


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _titles() -> list[str]:
    """Each section as it may be cited: with its number, and without it."""
    names = [h for h in headings(BEHAVIOUR) if re.match(r"\d", h)]
    return names + [re.sub(r"^[\d.]+\s+", "", h) for h in names]


def bad_citations(text: str, titles: list[str]) -> list[str]:
    """Citations of the behaviour doc in `text` that do not start with a section title. Line
    breaks, comment markers and indentation inside a citation count as one space."""
    flat = re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)
    bad = []
    for m in re.finditer(re.escape(CITED_AS), flat):
        rest = flat[m.end() :].lstrip(' "“')
        if not any(rest.lower().startswith(t.lower()) for t in titles):
            bad.append(flat[m.start() : m.end() + 60])
    return bad


def test_sections_keep_the_titles_code_cites() -> None:
    numbered = [h for h in headings(BEHAVIOUR) if re.match(r"\d", h)]
    assert tuple(numbered) == SECTIONS


def test_every_citation_names_a_section() -> None:
    titles = _titles()
    found = [
        f"{path.relative_to(REPO_ROOT)}: {citation}"
        for top in ("regplan", "tests", "bench")
        for path in sorted((REPO_ROOT / top).rglob("*.py"))
        if path != Path(__file__).resolve()  # this checker's own examples
        for citation in bad_citations(path.read_text(), titles)
    ]
    assert not found, "\n".join(found)


# Citations of text outside the repository (the original notes these pages were written from).
OUTSIDE = re.compile(r"spec/regsync-behaviour|spec §|§\s*\d")


def test_code_cites_nothing_outside_the_repository() -> None:
    checkers = REPO_ROOT / "tests" / "docs"
    citing = {
        str(path.relative_to(REPO_ROOT))
        for top in ("regplan", "tests", "bench")
        for path in (REPO_ROOT / top).rglob("*.py")
        if checkers not in path.parents
        and any(
            OUTSIDE.search(line) and "RFC" not in line for line in path.read_text().splitlines()
        )
    }
    assert not sorted(citing), "cite docs/regsync-behaviour.md by section title instead"


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("# see docs/regsync-behaviour.md, Deciding whether an image needs syncing", False),
        ('"""As regsync does (docs/regsync-behaviour.md, 1.10 Modes)."""', False),
        ("# rules in docs/regsync-behaviour.md,\n# Tag and repo\n# filters.", False),
        ("# see docs/regsync-behaviour.md, Deciding whether to sync", True),
        ("# see docs/regsync-behaviour.md, §1.6", True),
    ],
)
def test_citation_check_catches_what_it_is_for(text: str, bad: bool) -> None:
    assert bool(bad_citations(text, _titles())) is bad


def test_the_tests_the_tables_name_exist() -> None:
    text = BEHAVIOUR.read_text()
    defined = {
        name
        for path in (REPO_ROOT / "tests").rglob("test_*.py")
        for name in re.findall(r"^def (test_\w+)", path.read_text(), re.M)
    }
    named = set(re.findall(r"`(?:[\w/]+\.py::)?(test_\w+)", text))
    assert named, "the test list names no test"
    assert not sorted(named - defined)
    paths = set(re.findall(r"`(tests/[\w/]+\.py)", text))
    assert not sorted(p for p in paths if not (REPO_ROOT / p).is_file())


@pytest.mark.parametrize("doc", USER_DOCS, ids=[str(p.relative_to(REPO_ROOT)) for p in USER_DOCS])
def test_relative_links_reach_a_file_and_heading(doc: Path) -> None:
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", link):
            continue  # another site: not checked here
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in map(slug, headings(target)):
            broken.append(f"{link}: no such heading")
    assert not broken, f"{doc.relative_to(REPO_ROOT)}: " + ", ".join(broken)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("7. regsync's own test suite", "7-regsyncs-own-test-suite"),
        (
            "1.6 Deciding whether an image needs syncing",
            "16-deciding-whether-an-image-needs-syncing",
        ),
        ("Anchors, merges and `x-` keys", "anchors-merges-and-x--keys"),
    ],
)
def test_slug_is_githubs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
