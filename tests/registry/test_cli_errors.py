"""Registry errors as a user meets them on the command line: one line, saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.regplan_cli import Result, plain_creds, regplan, sync_step, write_config
from tests.servers.distribution import RegistryServer

pytestmark = pytest.mark.integration


def copy_app(tmp_path: Path, host: str, creds: str = "") -> Path:
    """A config copying `host`/app:v1 to `host`/copy:v1; `creds` is its creds block, if any."""
    return write_config(
        tmp_path,
        "version: 1\n"
        + creds
        + "defaults:\n  skipDockerConfig: true\n"
        + "sync:\n"
        + sync_step(f"{host}/app:v1", f"{host}/copy:v1"),
    )


def failed_plan(config: Path, cwd: Path) -> Result:
    """`regplan plan`, which must fail, with lines wide enough not to wrap a message."""
    result = regplan("plan", "-c", str(config), cwd=cwd, env={"COLUMNS": "400"})
    assert result.code == 1, str(result)
    return result


def test_plain_http_registry_spoken_to_in_tls_is_not_retried_and_says_what_to_set(
    registry: RegistryServer, tmp_path: Path
) -> None:
    host = registry.host  # plain http; the config forgets `tls: disabled`
    result = failed_plan(copy_app(tmp_path, host), tmp_path)
    assert f"set tls: disabled for {host} in creds" in result.stdout, str(result)
    assert "Sleeping for backoff" not in result.stderr, "a TLS mismatch was retried"
    assert "WRONG_VERSION_NUMBER" not in result.stdout + result.stderr
    # the failing image's reference is named once after the step, not once per layer
    error_line = next(line for line in result.stdout.splitlines() if "ERROR" in line)
    assert error_line.count(f"{host}/app:v1: ") == 1, error_line
    assert f"{host}/app:v1: manifest head: HEAD to {host} failed" in error_line


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("requestTimeout", "5x", "must be a positive duration such as 5m or 30s, not '5x'"),
        ("blobStallTimeout", "0s", "must be a positive duration such as 5m or 30s, not '0s'"),
        ("maxListEntries", "-3", "must be a positive number, not '-3'"),
    ],
)
def test_bad_deadline_or_cap_in_api_opts_is_a_config_error_at_its_line(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    config = write_config(
        tmp_path,
        f"""
        version: 1
        creds:
          - registry: 127.0.0.1:5000
            tls: disabled
            apiOpts:
              {option}: "{value}"
        sync:
          - source: 127.0.0.1:5000/app:v1
            target: 127.0.0.1:5000/copy:v1
            type: image
        """,
    )
    result = regplan("config", "validate", "-c", str(config), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert result.stderr.strip().splitlines() == [
        f"regplan: error: {config}:6:7: creds[0].apiOpts.{option}: {message}"
    ]


@pytest.mark.integration
def test_tls_registry_spoken_to_in_plain_http_says_what_to_change(
    tls_registry: RegistryServer, tmp_path: Path
) -> None:
    host = tls_registry.host
    result = failed_plan(copy_app(tmp_path, host, plain_creds(host)), tmp_path)
    text = " ".join(result.stdout.split())
    assert f"it answers in TLS, not plain HTTP (remove tls: disabled for {host} from creds)" in text
