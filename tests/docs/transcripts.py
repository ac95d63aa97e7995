"""Console transcripts in Markdown: find them, and compare a run's output with what they show.

A ```console block holds `$ command` lines (continued on `> ` lines, as the shell prompts for a
here-document, or after a trailing backslash), each followed by the output it shows and, when
the command exits non-zero, a last line `[N]` with the exit code. In expected output a line that
is only `...` stands for any number of lines, and `...` inside a line for any text. A block
whose first line is `# not run here: <reason>` is an illustration and is not run. Pure: the
running is in test_console_examples.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ILLUSTRATION = "# not run here:"
WILDCARD = "..."
_FENCE = re.compile(r"^( *)(`{3,}|~{3,})\s*([\w+-]*)")
_EXIT = re.compile(r"^\[(\d+)\]$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its info string (language), body lines, and where it starts."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    lines: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


@dataclass(frozen=True)
class Command:
    line: int  # 1-based line in the Markdown file
    text: str
    expected: tuple[str, ...]
    exit_code: int


def fenced_blocks(path: Path, text: str) -> list[Block]:
    """Every fenced block, outermost only: a ```` fence may show ``` fences inside it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence, language = match.group(1), match.group(2), match.group(3)
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            line = lines[end]
            stripped = line.lstrip(" ")
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                break
            # a fenced block inside a list item is indented like its fence
            body.append(line[len(indent) :] if line.startswith(indent) else line)
            end += 1
        blocks.append(Block(path, index + 1, language, tuple(body)))
        index = end + 1
    return blocks


def illustration_reason(block: Block) -> str | None:
    """The reason given for not running the block, or None when it is to be run."""
    if block.lines and block.lines[0].startswith(ILLUSTRATION):
        return block.lines[0][len(ILLUSTRATION) :].strip()
    return None


def commands(block: Block) -> list[Command]:
    """The block's commands with their expected output; raises ValueError on a malformed block."""
    found: list[Command] = []
    current: tuple[int, str] | None = None
    expected: list[str] = []

    def close() -> None:
        if current is None:
            return
        code = 0
        if expected and (exit_line := _EXIT.match(expected[-1])):
            code = int(exit_line.group(1))
            expected.pop()
        found.append(Command(current[0], current[1], tuple(expected), code))

    continuing = False
    skip = 1 if illustration_reason(block) is not None else 0
    for offset, line in enumerate(block.lines[skip:], start=block.line + 1 + skip):
        if continuing and current is not None:
            current = (current[0], f"{current[1]}\n{line}")
        elif current is not None and not expected and (line.startswith("> ") or line == ">"):
            # the shell's continuation prompt: here-documents and multi-line commands
            current = (current[0], f"{current[1]}\n{line[2:]}")
        elif line.startswith("$ "):
            close()
            current, expected = (offset, line[2:]), []
        elif current is None:
            raise ValueError(f"{block.path.name}:{offset}: output before the first `$ ` command")
        else:
            expected.append(line)
        continuing = current is not None and current[1].endswith("\\")
    close()
    if not found:
        raise ValueError(f"{block.where}: a console block with no `$ ` command")
    return found


def _line_matches(pattern: str, line: str) -> bool:
    if WILDCARD not in pattern:
        return pattern.rstrip() == line.rstrip()
    regex = ".*".join(re.escape(part) for part in pattern.rstrip().split(WILDCARD))
    return re.fullmatch(regex, line.rstrip()) is not None


def output_matches(expected: tuple[str, ...], actual: list[str]) -> bool:
    """Whether `actual` lines fit the `expected` pattern lines (see the module docstring)."""
    memo: dict[tuple[int, int], bool] = {}

    def fits(e: int, a: int) -> bool:
        key = (e, a)
        if key not in memo:
            if e == len(expected):
                result = a == len(actual)
            elif expected[e].strip() == WILDCARD:
                result = any(fits(e + 1, later) for later in range(a, len(actual) + 1))
            else:
                result = (
                    a < len(actual) and _line_matches(expected[e], actual[a]) and fits(e + 1, a + 1)
                )
            memo[key] = result
        return memo[key]

    return fits(0, 0)
