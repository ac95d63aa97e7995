"""The text plan as people and CI logs read it: whole lines off a terminal, changes not buried
under up-to-date steps, honest byte counts, overwritten backups warned about, colour only on
a terminal."""

from __future__ import annotations

import re
from pathlib import Path

from tests.regplan_cli import regplan, write_config
from tests.render.terminal import run_on_terminal, screen_of

APP = "ocidir://fixtures/example/source/app"


def _steps(pairs: list[tuple[str, str]]) -> str:
    lines = ["version: 1", "sync:"]
    for source, target in pairs:
        lines += [f"  - source: {source}", f"    target: {target}", "    type: image"]
    return "\n".join(lines) + "\n"


def test_rows_are_whole_lines_off_a_terminal(example: Path) -> None:
    deep = "ocidir://demo-target/" + "/".join(["a-rather-long-directory-name"] * 5) + "/app:1.0"
    write_config(example, _steps([(f"{APP}:1.0", deep)]))
    result = regplan("plan", cwd=example)
    assert result.code == 0, str(result)
    rows = [line for line in result.stdout.splitlines() if "+ create" in line]
    assert len(rows) == 1 and len(rows[0]) > 200
    assert deep in rows[0] and f"{APP}:1.0" in rows[0] and rows[0].endswith("1.7 kB")


def test_up_to_date_steps_are_one_line_unless_debug(example: Path) -> None:
    pairs = [(f"{APP}:1.0", f"ocidir://demo-target/app{i}:1.0") for i in range(12)]
    write_config(example, _steps(pairs))
    assert regplan("once", cwd=example).code == 0
    write_config(example, _steps([*pairs, (f"{APP}:1.1", "ocidir://demo-target/new:1.1")]))
    result = regplan("plan", cwd=example)
    assert result.code == 0, str(result)
    lines = result.stdout.splitlines()
    assert "12 step(s) up to date (12 image(s)); -v debug lists every step." in lines
    assert "0 to sync" not in result.stdout and len(lines) == 5, lines
    assert lines[0].startswith("sync[12] ") and "ocidir://demo-target/new:1.1" in lines[2]
    missing = regplan("plan", "--missing", cwd=example).stdout.splitlines()
    assert (
        "12 step(s) with nothing missing (12 tag(s) already on the target); "
        "-v debug lists every step."
    ) in missing, missing
    every = regplan("plan", "-v", "debug", cwd=example)
    assert every.stdout.count("1 image(s): 0 to sync, 1 up to date") == 12, every.stdout
    markdown = regplan("plan", "--format", "markdown", cwd=example)
    assert markdown.stdout.count("#### ") == 1 and "12 step(s) up to date" in markdown.stdout


def test_a_tag_whose_blobs_another_row_counts_is_marked_shared(example: Path) -> None:
    pairs = [(f"{APP}:1.0", "ocidir://demo-target/app:1.0")]
    pairs.append((f"{APP}:1.0", "ocidir://demo-target/app:stable"))
    write_config(example, _steps(pairs))
    rows = [line for line in regplan("plan", cwd=example).stdout.splitlines() if "+ create" in line]
    assert rows[0].endswith("1.7 kB") and rows[1].endswith("(shared)"), rows


def test_a_backup_overwriting_the_previous_backup_is_a_warning(example: Path) -> None:
    write_config(
        example,
        _steps(
            [
                (f"{APP}:dev", "ocidir://demo-target/app:previous"),
                (f"{APP}:1.0", "ocidir://demo-target/app:latest"),
            ]
        ),
        name="setup.yml",
    )
    assert regplan("once", "-c", "setup.yml", cwd=example).code == 0
    write_config(
        example,
        _steps([(f"{APP}:1.1", "ocidir://demo-target/app:latest")]) + "    backup: previous\n",
    )
    text = regplan("plan", cwd=example)
    # rows sorted by target, though the backup must run before the overwrite it protects
    rows = [line.split()[2] for line in text.stdout.splitlines() if line.lstrip().startswith("~ ")]
    assert rows == ["ocidir://demo-target/app:latest", "ocidir://demo-target/app:previous"], rows
    assert re.search(
        r"^warning: backup ocidir://demo-target/app:previous overwrites the previous backup sha256:",
        text.stdout,
        re.M,
    ), text.stdout
    markdown = regplan("plan", "--format", "markdown", cwd=example).stdout
    warning = markdown.split("> [!WARNING]", 1)[1].split("\n\n", 1)[0]
    assert "> 2 tag(s) will be **overwritten**:" in warning
    assert "(backup: `ocidir://demo-target/app:previous`)" in warning
    assert re.search(
        r"^> - `ocidir://demo-target/app:previous`: .* \(the previous backup\)$", warning, re.M
    )
    assert not markdown.startswith("### regplan plan: Plan:")  # said once


def test_colour_on_a_terminal_only(example: Path) -> None:
    config = "fixtures/example/regplan.yml"
    code, output = run_on_terminal("plan", "-c", config, cwd=example)
    assert code == 0
    assert b"\x1b[32m" in output  # creates in green
    assert any(line.startswith("Plan: 3 to create") for line in screen_of(output))
    _, plain = run_on_terminal("plan", "-c", config, cwd=example, env={"NO_COLOR": "1"})
    assert b"\x1b[32m" not in plain and b"\x1b[1m" not in plain
    piped = regplan("plan", "-c", config, cwd=example)
    assert "\x1b" not in piped.stdout
