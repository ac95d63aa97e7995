"""Many writers on one registry target: real `regplan` processes racing on the same tags.

Registries have no conditional PUT, so regplan reads each tag once more right before it
backs it up or moves it: a writer that moved the tag since the plan wins, and the slower
writer's image fails as stale instead of overwriting it unseen.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.regplan_cli import Result, regplan, write_config
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, FaultProxy
from tests.watch.bigimage import small_image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def head(server: RegistryServer, repo: str, ref: str) -> str | None:
    r = httpx.head(
        f"{server.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}, timeout=10
    )
    return r.headers["Docker-Content-Digest"] if r.status_code == 200 else None


def mirror_config(
    directory: Path, name: str, source: str, target: str, step: str, hosts: list[str]
) -> Path:
    creds = "".join(f"  - registry: {h}\n    tls: disabled\n" for h in hosts)
    text = (
        f"version: 1\ncreds:\n{creds}defaults:\n  parallel: 2\n  skipDockerConfig: true\n"
        f"sync:\n  - source: {source}\n    target: {target}\n    type: repository\n"
        + textwrap.indent(textwrap.dedent(step), "    ")
    )
    return write_config(directory, text, name)


def test_slower_apply_of_a_plan_from_the_same_state_fails_stale_and_keeps_the_winner(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> None:
    source, target = registry_factory(), registry_factory()
    old = small_image(target.url, "app", "v1", "old")
    a = small_image(source.url, "a", "v1", "writer-a")
    b = small_image(source.url, "b", "v1", "writer-b")
    with FaultProxy(target.host) as proxy:
        hosts = [source.host, target.host, proxy.host]
        cfg_a = mirror_config(
            tmp_path, "a.yml", f"{source.host}/a", f"{target.host}/app",
            'tags: {allow: ["v1"]}\nbackup: "bak-a-{{ .Ref.Tag }}"\n', hosts,
        )  # fmt: skip
        cfg_b = mirror_config(
            tmp_path, "b.yml", f"{source.host}/b", f"{proxy.host}/app",
            'tags: {allow: ["v1"]}\nbackup: "bak-b-{{ .Ref.Tag }}"\n', hosts,
        )  # fmt: skip
        for cfg, out in ((cfg_a, "a.plan"), (cfg_b, "b.plan")):
            made = regplan("-c", str(cfg), "plan", "-o", str(tmp_path / out), cwd=tmp_path)
            assert made.code == 0, str(made)
        applied_a: list[Result] = []

        def apply_a() -> None:  # the faster writer lands while B copies its first blob
            applied_a.append(regplan("apply", str(tmp_path / "a.plan"), cwd=tmp_path))

        proxy.add(Fault("hook", r"/blobs/uploads/$", "POST", hook=apply_a))
        result_b = regplan("apply", str(tmp_path / "b.plan"), cwd=tmp_path)

    assert len(applied_a) == 1 and applied_a[0].code == 0, str(applied_a[0])
    assert result_b.code == 1, str(result_b)
    assert "moved since the plan" in result_b.stderr, str(result_b)
    assert a.digest[:19] in result_b.stderr, str(result_b)  # the message names the winner
    assert "Traceback" not in result_b.stderr
    assert head(target, "app", "v1") == a.digest  # the faster writer's tag stands
    assert head(target, "app", "bak-a-v1") == old.digest  # and it saved what it overwrote
    assert head(target, "app", "bak-b-v1") in (None, old.digest)  # B never saved A's as "old"
    assert b.digest != a.digest
