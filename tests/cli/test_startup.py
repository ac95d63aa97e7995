"""Start-up: a command imports only what it uses (small no-op runs in CI loops are
start-up-bound). The modules are read from `python -X importtime`, not timed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import EXAMPLE
from tests.regplan_cli import REPO_ROOT

_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", re.MULTILINE)


def _imported(args: list[str], cwd: Path) -> set[str]:
    """Top-level packages a run of `regplan ARGS` imported."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "regplan.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert run.returncode in (0, 2), run.stderr[-2000:]
    return {name.split(".")[0] for name in _IMPORTED.findall(run.stderr)}


def test_check_of_an_up_to_date_image_imports_no_pydantic_graph_or_terminal_ui(
    example: Path,
) -> None:
    apply = subprocess.run(
        [sys.executable, "-m", "regplan.cli", "once", "-c", EXAMPLE],
        cwd=example,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert apply.returncode == 0, apply.stderr
    imported = _imported(["check", "-c", EXAMPLE], example)
    assert "regplan" in imported and "yaml" in imported  # it did load the config
    # typer's pydantic coercion, the plan graph, rich, signing, strictyaml's pure-Python parser
    # (libyaml composes an ordinary config): none is needed here
    assert imported.isdisjoint({"pydantic", "networkx", "rich", "cryptography", "strictyaml"}), (
        imported
    )


@pytest.mark.parametrize("args", [["--help"], ["plan", "--help"], ["version"]])
def test_help_imports_no_config_or_registry_code(tmp_path: Path, args: list[str]) -> None:
    imported = _imported(args, tmp_path)
    assert imported.isdisjoint({"pydantic", "strictyaml", "httpx", "networkx", "rich"}), imported
