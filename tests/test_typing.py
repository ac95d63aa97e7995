"""regplan ships py.typed: its own annotations must hold (`mypy`, configured in pyproject.toml),
so CI fails on a type error as `just lint` does."""

from __future__ import annotations

import subprocess
import sys

from tests.regplan_cli import REPO_ROOT


def test_mypy_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", "/dev/null"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
