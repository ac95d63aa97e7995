"""-h, --version, readable help, and shell completion scripts that a shell accepts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regplan import __version__
from tests.regplan_cli import regplan

COMMANDS = ["plan", "show", "apply", "once", "check", "copy", "watch", "version", "completion"]


def test_version_flag() -> None:
    result = regplan("--version")
    assert result.code == 0 and result.stdout == f"regplan {__version__}\n"


def test_short_help_matches_long_help() -> None:
    assert regplan("-h").stdout == regplan("--help").stdout
    assert regplan("apply", "-h").stdout == regplan("apply", "--help").stdout
    assert "Validate or print" in regplan("config", "-h").stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_readable_metavars(command: str) -> None:
    result = regplan(command, "--help")
    assert result.code == 0, str(result)
    # typer's defaults: `{PLAN}` and `[[PLAN]]` in usage, `<str>`/`<path>`/`<int>` for values
    assert not re.search(r"\{[A-Z]+\}|\[\[|<(str|path|int|text)>", result.stdout), result.stdout


def test_apply_help_names_values() -> None:
    text = regplan("apply", "--help").stdout
    assert "Usage: regplan apply [OPTIONS] [PLAN]" in text
    for shown in ("--max-age DURATION", "--report FILE", "--parallel N", "--step STEP"):
        assert shown in text


def _bash_script(tmp_path: Path) -> Path:
    result = regplan("completion", "bash")
    assert result.code == 0, str(result)
    script = tmp_path / "regplan.bash"
    script.write_text(result.stdout)
    return script


def test_bash_completion_is_valid_bash(tmp_path: Path) -> None:
    script = _bash_script(tmp_path)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def _complete(tmp_path: Path, words: str, cword: int) -> list[str]:
    """Source the script in bash and ask its function to complete `words`, as <TAB> does."""
    script = _bash_script(tmp_path)
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "regplan").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m regplan.cli "$@"\n')
    (shim / "regplan").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
    program = f"""
source {script}
COMP_WORDS=({words})
COMP_CWORD={cword}
_regplan_completion regplan
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    run = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, env=env, cwd=Path.cwd()
    )
    assert run.returncode == 0, run.stderr
    return [line.split(":::")[0] for line in run.stdout.split() if line]


def test_bash_completes_a_command(tmp_path: Path) -> None:
    assert _complete(tmp_path, "regplan pl", 1) == ["plan"]
    assert "completion" in _complete(tmp_path, "regplan co", 1)


def test_bash_completes_option_values(tmp_path: Path) -> None:
    assert _complete(tmp_path, "regplan plan --format ma", 3) == ["markdown"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_get_a_script(shell: str) -> None:
    result = regplan("completion", shell)
    assert result.code == 0 and "_REGPLAN_COMPLETE=complete_" + shell in result.stdout
    if shutil.which(shell):  # checked by the shell itself where it is installed
        flag = ["-n"] if shell == "zsh" else ["--no-execute"]
        proc = subprocess.run([shell, *flag], input=result.stdout, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_unknown_shell_is_a_usage_error() -> None:
    result = regplan("completion", "tcsh")
    assert result.code == 2
    assert result.stderr.strip() == "regplan: error: invalid shell 'tcsh': choose bash, zsh or fish"
