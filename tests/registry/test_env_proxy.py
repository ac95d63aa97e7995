"""A proxy named by the environment (HTTP_PROXY, as docker and regclient honour it) on real
sockets: requests go through it, its connection pool is under the request deadline, and a
plain-HTTP registry behind it still builds the verifying context its proxy transport needs.
A tiny recording server on 127.0.0.1 plays the proxy (a plain-HTTP proxy is sent the whole
URL in the request line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regplan.config.hosts import Host, TLSMode
from regplan.refs import ImageRef
from regplan.registry.deadline_pools import _Backend
from regplan.registry.http import HTTPBackend
from tests.regplan_cli import regplan, write_config
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import fault_proxy

from .mock import blob_desc
from .test_redirects import BLOB, Recording, read_blob, servers  # noqa: F401  (the fixture)


def _proxy_env(monkeypatch: pytest.MonkeyPatch, proxy: Recording, no_proxy: str = "") -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.address}")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.delenv("no_proxy", raising=False)


def test_requests_go_through_the_environments_proxy_under_the_deadline(
    servers: tuple[Recording, Recording],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, proxy = servers
    _proxy_env(monkeypatch, proxy)
    be = HTTPBackend(
        [Host(name=registry.address, tls=TLSMode.DISABLED, user="user", password="pw")],
        retry_delay=0.001,
    )
    try:
        ref = ImageRef.parse(f"{registry.address}/repo:v1")
        with be.blob_get(ref, blob_desc(BLOB)) as stream:
            assert b"".join(stream) == BLOB
        client = be.net.get(registry.address).client
        pools = [getattr(t, "_pool", None) for t in client._mounts.values() if t is not None]
        assert pools and all(isinstance(p._network_backend, _Backend) for p in pools)
    finally:
        be.close_all()
    assert registry.seen == []  # nothing went to the registry directly
    assert [path for path, _ in proxy.seen] == [
        f"http://{registry.address}/v2/repo/blobs/{blob_desc(BLOB).digest}"
    ]


def test_no_proxy_sends_straight_to_the_registry(
    servers: tuple[Recording, Recording],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, proxy = servers
    _proxy_env(monkeypatch, proxy, no_proxy="127.0.0.1")
    assert read_blob(registry) == BLOB
    assert proxy.seen == [] and registry.seen  # direct, and authenticated as usual


def test_regplan_check_through_a_proxy_named_by_the_environment(
    seeded_registry: RegistryServer, tmp_path: Path
) -> None:
    # the fault proxy, faultless, forwards what it is sent to the registry: a plain-HTTP
    # proxy is sent the whole URL, of which it keeps the path
    host = seeded_registry.host
    config = write_config(
        tmp_path,
        f"version: 1\ncreds:\n  - registry: {host}\n    tls: disabled\nsync:\n"
        f"  - source: {host}/testrepo:v1\n    target: {host}/mirror/testrepo:v1\n"
        "    type: image\n",
    )
    with fault_proxy(host) as proxy:
        proxied = {"HTTP_PROXY": f"http://{proxy.host}", "NO_PROXY": ""}
        result = regplan("check", "-c", str(config), cwd=tmp_path, env=proxied)
    assert result.code == 0 and "1 of 1 image(s) need syncing" in result.stdout, str(result)
    assert [s.path for s in proxy.requests("HEAD")] == [
        "/v2/testrepo/manifests/v1",
        "/v2/mirror/testrepo/manifests/v1",
    ]
