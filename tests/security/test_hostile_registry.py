"""A malicious source registry (tests/servers/hostile.py) cannot exhaust regplan's memory or
time: each attack fails that image or step with one clear line, under a 1 GiB address-space
limit where memory is the point."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.regplan_cli import REPO_ROOT, Result, write_config
from tests.servers.hostile import REPO, TAG, HostileRegistry, Mode

MEMORY_LIMIT = 1024 * 1024 * 1024


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def regplan_limited(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """The CLI in a subprocess whose address space is capped at MEMORY_LIMIT."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    full_env.update({"HOME": str(cwd), "COLUMNS": "400", "MALLOC_ARENA_MAX": "2", **(env or {})})
    proc = subprocess.run(
        [sys.executable, "-m", "regplan.cli", *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[HostileRegistry]:
    mode: Mode = request.param
    with HostileRegistry(mode, drip=0.5) as server:
        yield server


def image_config(tmp_path: Path, host: str, *extra: str) -> Path:
    creds = "\n".join(f"    {line}" for line in extra)
    return write_config(
        tmp_path,
        f"""
version: 1
creds:
  - registry: {host}
    tls: disabled
{creds}
defaults:
  skipDockerConfig: true
sync:
  - source: {host}/{REPO}:{TAG}
    target: {host}/copy:{TAG}
    type: image
""",
    )


@pytest.mark.parametrize("hostile", [Mode.HONEST], indirect=True)
def test_an_honest_source_plans_under_the_memory_limit(
    hostile: HostileRegistry, tmp_path: Path
) -> None:
    result = regplan_limited("plan", "-c", str(image_config(tmp_path, hostile.host)), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "1 to create" in result.stdout


@pytest.mark.parametrize("hostile", [Mode.GZIP_BOMB], indirect=True)
def test_gzip_bomb_manifest_fails_that_image_within_the_limit(
    hostile: HostileRegistry, tmp_path: Path
) -> None:
    result = regplan_limited("plan", "-c", str(image_config(tmp_path, hostile.host)), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert "MemoryError" not in result.stderr and "internal error" not in result.stderr
    assert "manifest get: response is over the 4194304 byte limit" in result.stdout, str(result)
    gets = [s for s in hostile.requests("/manifests/") if s.method == "GET"]
    assert gets and all(s.headers.get("Accept-Encoding") == "identity" for s in gets)
