"""Every console example in README.md and docs/*.md runs, and prints what it shows.

Each document's blocks run in order in one fresh directory holding a copy of fixtures/, as a
reader following the page from the repository root would run them, with the regplan under
test first on PATH. `localhost:5000` in a block is a registry the suite starts on 127.0.0.1.
The conventions are in CONTRIBUTING.md; the parsing and matching in transcripts.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.transcripts import (
    Block,
    Command,
    commands,
    fenced_blocks,
    illustration_reason,
    output_matches,
)
from tests.regplan_cli import REPO_ROOT

DOCS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "CONTRIBUTING.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
]
REGISTRY_PLACEHOLDER = "localhost:5000"
SHELL_LANGUAGES = {"sh", "shell", "bash", "zsh", "shell-session"}
BIN = Path(sys.executable).parent


def console_blocks(path: Path) -> list[Block]:
    return [b for b in fenced_blocks(path, path.read_text()) if b.language == "console"]


def run_command(command: Command, cwd: Path, registry: str | None) -> tuple[int, list[str]]:
    text = (
        command.text if registry is None else command.text.replace(REGISTRY_PLACEHOLDER, registry)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    env.update(HOME=str(cwd), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1")
    # stderr joins stdout, as on a terminal: what a reader sees is what the block shows.
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", text],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout.splitlines()


@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(REPO_ROOT)) for p in DOCS])
def test_console_examples_run(doc: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    blocks = [b for b in console_blocks(doc) if illustration_reason(b) is None]
    if not blocks:
        return  # nothing to run; test_every_console_block_runs_or_says_why covers the rest
    shutil.copytree(
        REPO_ROOT / "fixtures", tmp_path / "fixtures", ignore=shutil.ignore_patterns("*.py")
    )
    text = "\n".join("\n".join(b.lines) for b in blocks)
    registry = request.getfixturevalue("registry").host if REGISTRY_PLACEHOLDER in text else None
    for block in blocks:
        for command in commands(block):
            code, actual = run_command(command, tmp_path, registry)
            expected = command.expected
            if registry is not None:
                expected = tuple(line.replace(REGISTRY_PLACEHOLDER, registry) for line in expected)
            shown = "\n".join(actual)
            where = f"{doc.name}:{command.line}: $ {command.text}"
            assert code == command.exit_code, (
                f"{where}\nexit {code}, not {command.exit_code}:\n{shown}"
            )
            assert output_matches(expected, actual), (
                f"{where}\n--- the doc shows\n" + "\n".join(expected) + f"\n--- it printed\n{shown}"
            )


def test_every_console_block_runs_or_says_why() -> None:
    problems: list[str] = []
    for doc in DOCS:
        for block in fenced_blocks(doc, doc.read_text()):
            if block.language in SHELL_LANGUAGES:
                problems.append(f"{block.where}: ```{block.language}: write commands as ```console")
            elif block.language == "console":
                reason = illustration_reason(block)
                if reason == "":
                    problems.append(f"{block.where}: `# not run here:` needs a reason")
                try:
                    commands(block)
                except ValueError as err:
                    problems.append(str(err))
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if line.startswith("    $ "):
                problems.append(f"{doc.name}:{number}: an indented command: use a ```console block")
    assert not problems, "\n".join(problems)


# -- the runner's own rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual", "fits"),
    [
        ((), [], True),
        (("a",), ["a"], True),
        (("a",), ["a", "b"], False),
        (("a",), ["b"], False),
        (("...",), [], True),
        (("...",), ["x", "y"], True),
        (("...", "b", "..."), ["a", "b", "c"], True),
        (("...", "b", "..."), ["a", "c"], False),
        (("Plan: 3 to create, ...",), ["Plan: 3 to create, 0 to update"], True),
        (("Plan: 3 to create, ...",), ["Plan: 4 to create, 0 to update"], False),
        (("...demo-target/app:1.0...",), ["+ create   ocidir://demo-target/app:1.0   x"], True),
        (("a.c",), ["abc"], False),  # only `...` is a wildcard
        (("a  ",), ["a"], True),  # trailing spaces do not count
    ],
)
def test_output_matching(expected: tuple[str, ...], actual: list[str], fits: bool) -> None:
    assert output_matches(expected, actual) is fits


def test_commands_and_exit_codes(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "text\n```console\n$ one \\\n  --flag\nout\n...\n$ two\n[2]\n"
        "$ cat > f <<'EOF'\n> a: 1\n>\n> EOF\n> x\n```\n"
        "````markdown\n```console\n$ not a block of its own\n```\n````\n"
        "```console\n# not run here: needs a cluster\n$ kubectl get pods\n```\n"
        "- a list item:\n\n  ```console\n  $ three\n  ```\n"
    )
    first, shown, illustration, in_list = fenced_blocks(doc, doc.read_text())
    assert commands(in_list) == [Command(27, "three", (), 0)]
    assert (first.language, first.line, shown.language) == ("console", 2, "markdown")
    assert commands(first) == [
        Command(3, "one \\\n  --flag", ("out", "..."), 0),
        Command(7, "two", (), 2),
        Command(9, "cat > f <<'EOF'\na: 1\n\nEOF\nx", (), 0),
    ]
    assert illustration_reason(first) is None
    assert illustration_reason(illustration) == "needs a cluster"
