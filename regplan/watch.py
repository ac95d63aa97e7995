"""`regplan watch`: the scheduled server (not built yet)."""

from __future__ import annotations

from pathlib import Path

from regplan.errors import NotImplementedCommandError


def watch_command(
    config_path: str, *, listen: str, grace_period: str, plan_dir: Path | None, abort_on_error: bool
) -> int:
    raise NotImplementedCommandError("`watch` is not built yet")
