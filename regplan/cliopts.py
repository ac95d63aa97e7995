"""Command-line values checked before any work starts: option text, output paths.

Each check raises UsageError (exit 2) with one line naming the option, so a typo never costs a
full plan against every registry first.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from regplan.errors import UsageError

E = TypeVar("E", bound=StrEnum)


def choice(option: str, value: str, enum: type[E]) -> E:
    """`value` as a member of `enum`, or a usage error listing the choices."""
    try:
        return enum(value)
    except ValueError:
        names = [m.value for m in enum]
        listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
        raise UsageError(f"invalid {option} {value!r}: choose {listed}") from None


def duration(option: str, text: str) -> float:
    """Seconds in Go duration text (`2h`, `30m`), or a usage error with a hint."""
    from regplan.durations import DurationError, parse_duration

    try:
        seconds = parse_duration(text.strip())
    except DurationError:
        bare = text.strip()
        if bare.isdigit():
            hint = f"a number needs a unit, e.g. {bare}h or {bare}m"
        elif bare[:-1].isdigit() and bare[-1:] in ("d", "w", "y"):
            hint = f"the largest unit is h, e.g. {int(bare[:-1]) * 24}h for {bare}"
        else:
            hint = "use a duration like 2h, 30m or 1h30m"
        raise UsageError(f"invalid {option} {text!r}: {hint}") from None
    if seconds < 0:
        raise UsageError(f"invalid {option} {text!r}: must not be negative")
    return seconds


def writable_file(option: str, path: Path) -> None:
    """Refuse an output path that cannot be written: checked before planning or applying, so
    a typo in `-o` or `--report` does not surface only after the work is done (and lost)."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, not a file")
    parent = path.absolute().parent
    if not parent.exists():
        raise UsageError(f"{option} {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: file is not writable")
