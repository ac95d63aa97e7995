"""One function per command: load, plan, apply, render. The CLI calls these; they return an exit code."""

from __future__ import annotations

from pathlib import Path

from regplan.errors import NotImplementedCommandError


def plan_command(
    config_path: str,
    *,
    out: Path | None,
    missing: bool,
    fmt: str,
    detailed_exitcode: bool,
    explain: bool,
) -> int:
    raise NotImplementedCommandError("`plan` is not built yet")


def show_command(plan_file: Path, *, fmt: str) -> int:
    raise NotImplementedCommandError("`show` is not built yet")


def apply_command(
    plan_file: Path | None,
    *,
    config_path: str | None,
    parallel: int | None,
    keep_going: bool,
    auto_approve: bool,
    report: Path | None,
    max_age: str | None,
) -> int:
    raise NotImplementedCommandError("`apply` is not built yet")


def once_command(
    config_path: str, *, missing: bool, abort_on_error: bool, report: Path | None
) -> int:
    raise NotImplementedCommandError("`once` is not built yet")


def check_command(config_path: str, *, abort_on_error: bool) -> int:
    raise NotImplementedCommandError("`check` is not built yet")
