"""Run the real `regplan` command line in a subprocess, as users and CI do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def regplan(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    stdin: str | None = None,
) -> Result:
    """`python -m regplan.cli ARGS` with a clean HOME (no docker credentials leak in)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    full_env.setdefault("HOME", str(cwd or REPO_ROOT))
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "regplan.cli", *args],
        cwd=cwd or REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_config(directory: Path, text: str, name: str = "regplan.yml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


class _Hosted(Protocol):
    @property
    def host(self) -> str: ...


def plain_creds(*registries: str | _Hosted, extra: str = "") -> str:
    """A `creds:` block speaking plain HTTP to each test registry (a host, or a server with
    `.host`); `extra` is added under every entry (e.g. `"    blobMax: 1048576\\n"`)."""
    hosts = [r if isinstance(r, str) else r.host for r in registries]
    return "creds:\n" + "".join(f"  - registry: {h}\n    tls: disabled\n{extra}" for h in hosts)


def sync_step(source: str, target: str, type_: str = "image", **options: object) -> str:
    """One entry of a config's `sync:` list; option values are written as JSON, which YAML
    reads as the same values."""
    lines = [f"  - source: {source}", f"    target: {target}", f"    type: {type_}"]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def sync_config(
    directory: Path,
    registries: Sequence[str | _Hosted],
    *steps: str,
    defaults: Mapping[str, object] | None = None,
    name: str = "regplan.yml",
    version: int | None = None,
) -> Path:
    """Write a config: `version:` if given, plain-HTTP creds for `registries`, optional
    `defaults:`, then the steps (each from `sync_step` or written out)."""
    text = ("" if version is None else f"version: {version}\n") + plain_creds(*registries)
    if defaults:
        text += "defaults:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in defaults.items())
    return write_config(directory, text + "sync:\n" + "".join(steps), name=name)


def write_plan(config: Path, cwd: Path, *args: str, name: str | Path = "plan.json") -> Path:
    """`regplan plan -c CONFIG -o NAME [ARGS]` run in `cwd` (NAME relative to it, or absolute),
    which must succeed; the plan file."""
    plan_file = cwd / name
    result = regplan("plan", "-c", str(config), "-o", str(plan_file), *args, cwd=cwd)
    assert result.code == 0, str(result)
    return plan_file
