"""The test servers themselves work: skopeo can push to and pull from every variant."""

from __future__ import annotations

import hashlib
import http.client
import subprocess

import pytest

from tests.servers.distribution import RegistryServer, parse_access_log
from tests.servers.paths import regclient_testdata

SHARED_TESTREPO = regclient_testdata() / "testrepo"


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=120, check=False
    )


def _push_v1(server: RegistryServer, repo: str = "push/test") -> None:
    result = _skopeo(
        "copy", "--all", *server.skopeo_args("dest-"),
        f"oci:{SHARED_TESTREPO}:v1", f"docker://{server.ref(repo, 'v1')}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _digest(server: RegistryServer, ref: str) -> str:
    result = _skopeo("inspect", "--raw", *server.skopeo_args(), f"docker://{ref}")
    assert result.returncode == 0, result.stderr
    return "sha256:" + hashlib.sha256(result.stdout.encode()).hexdigest()


V1_DIGEST = "sha256:7ceb9b6bcc274697d0c38be6214b50cec79d601bc61708747d3f6cb772f6c6fa"


@pytest.mark.parametrize("fixture", ["registry", "tls_registry", "auth_registry"])
def test_skopeo_round_trip(fixture: str, request: pytest.FixtureRequest) -> None:
    server: RegistryServer = request.getfixturevalue(fixture)
    _push_v1(server)
    assert _digest(server, server.ref("push/test", "v1")) == V1_DIGEST
    manifest_puts = [e for e in server.requests() if e.method == "PUT" and e.kind == "manifest"]
    assert [e.status for e in manifest_puts] == [201] * len(manifest_puts)
    assert manifest_puts[-1].reference == "v1"


def test_tls_registry_refuses_clients_without_the_ca(tls_registry: RegistryServer) -> None:
    result = _skopeo("inspect", "--raw", f"docker://{tls_registry.ref('any', 'v1')}")
    assert result.returncode != 0
    assert "certificate" in result.stderr
    assert tls_registry.ca_pem and "BEGIN CERTIFICATE" in tls_registry.ca_pem


def test_auth_registry_refuses_anonymous_and_wrong_password(auth_registry: RegistryServer) -> None:
    _push_v1(auth_registry)
    anonymous = _skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{auth_registry.ref('push/test', 'v1')}"
    )
    assert anonymous.returncode != 0
    wrong = _skopeo(
        "inspect", "--raw", "--tls-verify=false", f"--creds={auth_registry.user}:wrong",
        f"docker://{auth_registry.ref('push/test', 'v1')}",
    )  # fmt: skip
    assert wrong.returncode != 0
    assert any(e.status == 401 for e in auth_registry.requests())


def test_restart_keeps_port_and_storage(registry: RegistryServer) -> None:
    _push_v1(registry)
    host = registry.host
    registry.stop()
    assert not registry.running
    with pytest.raises(OSError):
        conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=2)
        conn.request("GET", "/v2/")
    registry.start()
    assert registry.host == host
    assert _digest(registry, registry.ref("push/test", "v1")) == V1_DIGEST
    registry.restart()
    assert _digest(registry, registry.ref("push/test", "v1")) == V1_DIGEST


def test_requests_lists_each_request_once_and_can_be_cleared(registry: RegistryServer) -> None:
    assert registry.requests() == []  # the readiness probes are not counted
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/v2/")
        conn.getresponse().read()
    conn.request("HEAD", "/v2/some/repo/manifests/v1")
    conn.getresponse().read()
    conn.close()
    log = registry.requests()
    assert [(e.method, e.kind, e.status) for e in log] == [("GET", "ping", 200)] * 3 + [
        ("HEAD", "manifest", 404)
    ]
    assert log[-1].repo == "some/repo" and log[-1].reference == "v1"
    registry.clear_requests()
    assert registry.requests() == []


def test_parse_access_log_skips_application_lines() -> None:
    text = (
        'time="2026-11-27T09:37:37Z" level=info msg="listening on 127.0.0.1:5999"\n'
        '127.0.0.1 - - [27/Nov/2026:09:37:37 +0000] "GET /v2/x/tags/list?n=2&last=a HTTP/1.1" 200 30 "" "ua/1"\n'
    )
    [entry] = parse_access_log(text)
    assert (entry.method, entry.path, entry.query, entry.kind, entry.repo) == (
        "GET", "/v2/x/tags/list", "n=2&last=a", "tags", "x",
    )  # fmt: skip
