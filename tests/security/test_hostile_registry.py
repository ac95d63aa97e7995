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
from tests.servers.distribution import RegistryServer
from tests.servers.hostile import REPO, TAG, HostileRegistry, Mode

MEMORY_LIMIT = 1024 * 1024 * 1024


def flat(text: str) -> str:
    """Output with line wrapping undone (text plans wrap long lines)."""
    return " ".join(text.split())


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


def config_of(tmp_path: Path, creds: dict[str, tuple[str, ...]], *steps: str) -> Path:
    """A config: each registry in `creds` on plain http with its extra creds lines, and
    `steps` (YAML, indented under `sync:`)."""
    hosts = "".join(
        f"  - registry: {host}\n    tls: disabled\n" + "".join(f"    {x}\n" for x in extra)
        for host, extra in creds.items()
    )
    return write_config(
        tmp_path,
        f"version: 1\ncreds:\n{hosts}defaults:\n  skipDockerConfig: true\nsync:\n"
        + "\n".join(steps)
        + "\n",
    )


def image_step(source: str, target: str) -> str:
    return f"  - source: {source}/{REPO}:{TAG}\n    target: {target}/copy:{TAG}\n    type: image"


def image_config(tmp_path: Path, host: str, *extra: str) -> Path:
    return config_of(tmp_path, {host: extra}, image_step(host, host))


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


def step_config(tmp_path: Path, host: str, step: str, *extra: str) -> Path:
    """A config with one `step` (YAML, indented under `sync:`) and `extra` creds lines."""
    return config_of(tmp_path, {host: extra}, step)


def repository_step(host: str) -> str:
    return f"  - source: {host}/{REPO}\n    target: {host}/copy\n    type: repository"


@pytest.mark.parametrize("hostile", [Mode.TAG_FLOOD], indirect=True)
def test_endless_tag_pages_stop_at_the_cap_naming_the_repository(
    hostile: HostileRegistry, tmp_path: Path
) -> None:
    config = step_config(tmp_path, hostile.host, repository_step(hostile.host))
    result = regplan_limited("plan", "-c", str(config), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert "MemoryError" not in result.stderr and "internal error" not in result.stderr
    out = flat(result.stdout)
    assert f"{hostile.host}/{REPO}: tag list: more than 100000 entries" in out, str(result)
    assert f"apiOpts maxListEntries for {hostile.host} in creds" in out
    # 20,000 new tags a page: the sixth page crosses the cap and nothing more is asked
    assert len(hostile.requests("/tags/list")) == 6


@pytest.mark.parametrize("hostile", [Mode.TAG_FLOOD], indirect=True)
def test_the_tag_cap_is_configurable_per_registry(hostile: HostileRegistry, tmp_path: Path) -> None:
    config = step_config(
        tmp_path,
        hostile.host,
        repository_step(hostile.host),
        "apiOpts:",
        '  maxListEntries: "30000"',
    )
    result = regplan_limited("plan", "-c", str(config), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert "tag list: more than 30000 entries" in flat(result.stdout), str(result)
    assert len(hostile.requests("/tags/list")) == 2


@pytest.mark.parametrize("hostile", [Mode.TAG_LOOP], indirect=True)
def test_tag_pages_that_loop_are_an_error(hostile: HostileRegistry, tmp_path: Path) -> None:
    config = step_config(tmp_path, hostile.host, repository_step(hostile.host))
    result = regplan_limited("plan", "-c", str(config), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert "tag list: pagination loops back to a page already read" in flat(result.stdout)
    assert len(hostile.requests("/tags/list")) == 2


@pytest.mark.parametrize("hostile", [Mode.CATALOG_FLOOD, Mode.CATALOG_LOOP], indirect=True)
def test_catalog_pages_are_bounded(hostile: HostileRegistry, tmp_path: Path) -> None:
    step = f"  - source: {hostile.host}\n    target: {hostile.host}/mirror\n    type: registry"
    result = regplan_limited(
        "plan", "-c", str(step_config(tmp_path, hostile.host, step)), cwd=tmp_path
    )
    assert result.code == 1, str(result)
    expected = (
        "catalog: more than 100000 entries"
        if hostile.mode == Mode.CATALOG_FLOOD
        else "catalog: pagination loops back"
    )
    assert expected in flat(result.stdout), str(result)
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("hostile", [Mode.REFERRERS_FLOOD, Mode.REFERRERS_LOOP], indirect=True)
def test_referrers_pages_are_bounded(hostile: HostileRegistry, tmp_path: Path) -> None:
    step = (
        f"  - source: {hostile.host}/{REPO}:{TAG}\n    target: {hostile.host}/copy:{TAG}\n"
        "    type: image\n    referrers: true"
    )
    result = regplan_limited(
        "plan", "-c", str(step_config(tmp_path, hostile.host, step)), cwd=tmp_path
    )
    # the image is planned; that its referrers could not be listed is a warning of the plan
    assert result.code == 0, str(result)
    expected = (
        "referrers: more than 100000 entries"
        if hostile.mode == Mode.REFERRERS_FLOOD
        else "referrers: pagination loops back"
    )
    assert f"warning: referrers of {hostile.host}/{REPO}@" in result.stdout
    assert expected in flat(result.stdout), str(result)
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("hostile", [Mode.TOKEN_SELF_REDIRECT], indirect=True)
def test_token_realm_redirecting_to_itself_is_one_clear_error(
    hostile: HostileRegistry, tmp_path: Path
) -> None:
    result = regplan_limited("plan", "-c", str(image_config(tmp_path, hostile.host)), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert "internal error" not in result.stderr and "TooManyRedirects" not in result.stderr
    out = flat(result.stdout)
    assert f"token request to http://{hostile.host} answered with a redirect" in out, str(result)
    assert "[http 302]" in result.stderr  # the log line (text output may style brackets)
    assert len(hostile.requests("/token")) <= 2  # no redirect chain followed


@pytest.mark.parametrize(
    "login", [("token: refresh-secret",), ("user: alice", "pass: alice-secret")]
)
def test_token_realm_redirect_to_another_origin_gets_no_credentials(
    tmp_path: Path, login: tuple[str, ...]
) -> None:
    with (
        HostileRegistry() as elsewhere,
        HostileRegistry(Mode.TOKEN_REDIRECT_AWAY, redirect_to=elsewhere.url) as registry,
    ):
        config = image_config(tmp_path, registry.host, *login)
        result = regplan_limited("plan", "-c", str(config), cwd=tmp_path)
        assert result.code == 1, str(result)
        assert "answered with a redirect" in flat(result.stdout), str(result)
        assert "[http 307]" in result.stderr
        assert registry.requests("/token"), "the realm was never asked"
        assert elsewhere.requests() == [], "a token request followed the redirect"


@pytest.mark.parametrize("hostile", [Mode.DRIP_BODY, Mode.DRIP_HEADERS], indirect=True)
def test_a_dripping_source_fails_that_image_at_its_deadline(
    hostile: HostileRegistry, tmp_path: Path
) -> None:
    with HostileRegistry() as honest:
        config = config_of(
            tmp_path,
            {hostile.host: ("apiOpts:", "  requestTimeout: 2s"), honest.host: ()},
            image_step(hostile.host, honest.host),
            image_step(honest.host, honest.host),
        )
        result = regplan_limited("plan", "-c", str(config), cwd=tmp_path)
        other = honest.host
    assert result.code == 1, str(result)
    out = flat(result.stdout)
    assert f"to {hostile.host} failed: no complete answer within 2s (apiOpts requestTimeout)" in out
    # the other step is planned as usual: the deadline failed one image, not the run
    assert (
        f"sync[1] {other}/{REPO}:{TAG} -> {other}/copy:{TAG} (image: 1 image(s): 1 to sync, 0 up to date)"
        in out
    )
    assert "Sleeping for backoff" not in result.stderr, "a passed deadline was retried"


@pytest.mark.integration
@pytest.mark.parametrize("hostile", [Mode.DRIP_BLOB], indirect=True)
def test_a_blob_that_stalls_fails_the_copy(
    hostile: HostileRegistry, registry: RegistryServer, tmp_path: Path
) -> None:
    config = config_of(
        tmp_path,
        {hostile.host: ("apiOpts:", "  blobStallTimeout: 2s"), registry.host: ()},
        image_step(hostile.host, registry.host),
    )
    plan = tmp_path / "plan.json"
    made = regplan_limited("plan", "-c", str(config), "-o", str(plan), cwd=tmp_path)
    assert made.code == 0, str(made)
    result = regplan_limited("apply", str(plan), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert "sent less than 64 KiB in 2s (apiOpts blobStallTimeout)" in flat(result.stderr), str(
        result
    )
    assert "internal error" not in result.stderr
