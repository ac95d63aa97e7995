"""SIGTERM or SIGINT while a command is still planning: the run's cancel token stops it.

The source answers every manifest request late, so planning its 80 tags takes far longer than
the test's timeout; only the signal reaching the planner can end the process in time (the
pytest timeout is the hang detector, nothing here measures time). Real process, real
registries, real signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.regplan_cli import sync_config, sync_step
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, FaultProxy
from tests.watch.bigimage import small_image
from tests.watch.test_watch_integration import head
from tests.watch.test_watch_robustness import retag

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TAGS = 80


def _interrupted(
    args: list[str], cwd: Path, env: dict[str, str], signum: int, under_way: Callable[[], bool]
) -> tuple[int, str, str]:
    """Run `regplan ARGS`, send `signum` once `under_way` holds (the pytest timeout bounds
    the wait), and return its exit code, stdout and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "regplan.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not under_way():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate()  # the pytest timeout catches a hang
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stdout, stderr


def _config(
    tmp_path: Path,
    registries: list[RegistryServer | FaultProxy],
    source: str,
    target: str,
    type_: str,
) -> Path:
    return sync_config(
        tmp_path, registries, sync_step(source, target, type_), defaults={"skipDockerConfig": True}
    )


def _env(home: Path) -> dict[str, str]:
    """The environment of a regplan process that sees no docker or regplan settings of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    env["HOME"] = str(home)
    return env


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"]
)
def test_a_signal_while_once_plans_stops_it_with_one_line_and_writes_nothing(
    registry_factory: Callable[..., RegistryServer],
    tmp_path: Path,
    signum: signal.Signals,
    code: int,
) -> None:
    source, target = registry_factory(), registry_factory()
    image = small_image(source.url, "many", "t000", "many")
    retag(source.url, "many", image.digest, [f"t{i:03d}" for i in range(1, TAGS)])
    with FaultProxy(source.host) as proxy:
        slow = proxy.add(Fault("delay", r"/v2/many/manifests/t", delay=2.0, times=-1))
        cfg = _config(
            tmp_path,
            [source, target, proxy],
            f"{proxy.host}/many",
            f"{target.host}/many",
            "repository",
        )
        returncode, stdout, stderr = _interrupted(
            ["once", "-c", str(cfg)],
            tmp_path,
            _env(tmp_path),
            signum,
            lambda: slow.applied >= 4,  # planning under way
        )
        asked = slow.applied
    lines = stderr.strip().splitlines()
    assert returncode == code, (returncode, stderr)
    assert lines[-1] == "regplan: interrupted", stderr
    assert "Traceback" not in stderr
    assert "Apply" not in stdout, stdout  # no apply started from a half plan
    assert asked < TAGS, asked  # planning stopped at the signal, not after every tag
    assert head(target, "many", "t000") is None  # nothing written at the target


def test_sigterm_while_applying_a_saved_plan_pushes_no_tag_and_still_writes_the_report(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> None:
    source, target = registry_factory(), registry_factory()
    small_image(source.url, "app", "v1", "applying")
    with FaultProxy(source.host) as proxy:
        cfg = _config(
            tmp_path,
            [source, target, proxy],
            f"{proxy.host}/app:v1",
            f"{target.host}/app:v1",
            "image",
        )
        env = _env(tmp_path)
        planned = subprocess.run(
            [sys.executable, "-m", "regplan.cli", "plan", "-c", str(cfg), "-o", "plan.json"],
            cwd=tmp_path,
            env=env,
        )
        assert planned.returncode == 0
        # every blob read from the source is slow: the copy is under way when the signal comes
        slow = proxy.add(
            Fault("delay", r"/v2/app/blobs/sha256:", method="GET", delay=2.0, times=-1)
        )
        returncode, stdout, stderr = _interrupted(
            ["apply", "plan.json", "--report", "report.json"],
            tmp_path,
            env,
            signal.SIGTERM,
            lambda: slow.applied >= 1,
        )
    assert returncode == 143, (returncode, stderr)
    assert stderr.strip().splitlines()[-1] == "regplan: interrupted", stderr
    assert "Apply FAILED" in stdout  # the apply line still says what landed
    assert head(target, "app", "v1") is None  # the tag comes last: never on a partial image
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is False
    tag = next(a for a in report["actions"] if a["kind"] == "tag")
    assert tag["status"] == "not-run", report
