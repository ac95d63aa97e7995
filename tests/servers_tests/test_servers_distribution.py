"""The distribution registries work: skopeo pushes to and pulls from every variant."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.servers import skopeo
from tests.servers.distribution import RegistryServer, parse_access_log
from tests.servers.tokenserver import TokenServer, parse_scope

V1_DIGEST = "sha256:7ceb9b6bcc274697d0c38be6214b50cec79d601bc61708747d3f6cb772f6c6fa"


def push_v1(server: RegistryServer, testdata: Path, repo: str = "push/test") -> None:
    skopeo.copy(
        f"oci:{testdata / 'testrepo'}:v1",
        f"docker://{server.ref(repo, 'v1')}",
        preserve_digests=True,
        dest_server=server,
    )


@pytest.mark.parametrize("fixture", ["registry", "tls_registry", "auth_registry", "token_registry"])
def test_skopeo_push_and_pull(
    fixture: str, request: pytest.FixtureRequest, regclient_testdata: Path, tmp_path: Path
) -> None:
    server: RegistryServer = request.getfixturevalue(fixture)
    push_v1(server, regclient_testdata)
    ref = f"docker://{server.ref('push/test', 'v1')}"
    assert skopeo.inspect_digest(ref, server=server) == V1_DIGEST
    assert skopeo.list_tags(f"docker://{server.host}/push/test", server=server) == ["v1"]
    skopeo.copy(ref, f"oci:{tmp_path / 'pulled'}:v1", src_server=server, preserve_digests=True)
    assert skopeo.inspect_digest(f"oci:{tmp_path / 'pulled'}:v1") == V1_DIGEST
    manifest_puts = [e for e in server.requests() if e.method == "PUT" and e.kind == "manifest"]
    assert {e.status for e in manifest_puts} == {201}
    assert manifest_puts[-1].reference == "v1"  # children by digest first, the tag last


def test_tls_registry_is_refused_without_the_ca(tls_registry: RegistryServer) -> None:
    ref = f"docker://{tls_registry.ref('any', 'v1')}"
    with pytest.raises(skopeo.SkopeoError, match="certificate"):
        skopeo.inspect_raw(ref)
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.ca_pem is not None and "BEGIN CERTIFICATE" in tls_registry.ca_pem
    # The certificate is valid for the name `localhost` as well as for the IP address.
    context = tls_registry.ssl_context()
    assert context is not None
    with httpx.Client(verify=context) as client:
        assert client.get(f"https://localhost:{tls_registry.port}/v2/").status_code == 200


def test_auth_registry_refuses_anonymous_and_wrong_passwords(
    auth_registry: RegistryServer, regclient_testdata: Path
) -> None:
    push_v1(auth_registry, regclient_testdata)
    ref = f"docker://{auth_registry.ref('push/test', 'v1')}"
    with pytest.raises(skopeo.SkopeoError):
        skopeo.inspect_raw(ref, server=_Anonymous(auth_registry))
    with pytest.raises(skopeo.SkopeoError):
        skopeo.run(
            ["inspect", "--raw", "--tls-verify=false", f"--creds={auth_registry.user}:x", ref]
        )
    assert any(e.status == 401 for e in auth_registry.requests())
    ping = httpx.get(f"{auth_registry.url}/v2/")
    assert ping.status_code == 401
    assert ping.headers["WWW-Authenticate"].startswith("Basic ")


def test_token_registry_accepts_issued_tokens_and_records_token_requests(
    token_registry: RegistryServer, token_server: TokenServer, regclient_testdata: Path
) -> None:
    assert token_registry.token_server is token_server
    push_v1(token_registry, regclient_testdata, repo="tok/app")
    fetched = token_server.requests()
    assert fetched and all(r.account == token_server.user for r in fetched)
    assert "repository:tok/app:pull,push" in {s for r in fetched for s in r.scopes}

    ping = httpx.get(f"{token_registry.url}/v2/")
    assert ping.status_code == 401
    challenge = ping.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and token_server.realm in challenge

    # Anonymous callers get a token without access: the registry still refuses them.
    with pytest.raises(skopeo.SkopeoError):
        skopeo.inspect_raw(
            f"docker://{token_registry.ref('tok/app', 'v1')}", server=_Anonymous(token_registry)
        )


def test_token_server_password_and_refresh_token_grants(
    token_registry: RegistryServer, token_server: TokenServer, regclient_testdata: Path
) -> None:
    push_v1(token_registry, regclient_testdata, repo="tok/app")
    token_server.clear_requests()
    form = {
        "grant_type": "password",
        "username": token_server.user,
        "password": token_server.password,
        "service": token_server.service,
        "scope": "repository:tok/app:pull",
        "access_type": "offline",
        "client_id": "regplan-tests",
    }
    with httpx.Client() as client:
        issued = client.post(token_server.realm, data=form).json()
        refreshed = client.post(
            token_server.realm,
            data={
                "grant_type": "refresh_token",
                "refresh_token": issued["refresh_token"],
                "service": token_server.service,
                "scope": "repository:tok/app:pull",
            },
        ).json()
        bad = client.post(token_server.realm, data={**form, "password": "wrong"})
        for token in (issued["access_token"], refreshed["access_token"]):
            head = client.head(
                f"{token_registry.url}/v2/tok/app/manifests/v1",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/vnd.oci.image.index.v1+json",
                },
            )
            assert head.status_code == 200
            assert head.headers["Docker-Content-Digest"] == V1_DIGEST
        # A pull token does not allow pushing.
        push = client.post(
            f"{token_registry.url}/v2/tok/app/blobs/uploads/",
            headers={"Authorization": f"Bearer {issued['access_token']}"},
        )
        assert push.status_code == 401
    assert bad.status_code == 401
    assert [(r.method, r.grant_type, r.status) for r in token_server.requests()] == [
        ("POST", "password", 200),
        ("POST", "refresh_token", 200),
        ("POST", "password", 401),
    ]


def test_token_server_get_with_basic_credentials(token_server: TokenServer) -> None:
    basic = base64.b64encode(f"{token_server.user}:{token_server.password}".encode()).decode()
    response = httpx.get(
        token_server.realm,
        params=[
            ("service", token_server.service),
            ("scope", "repository:a:pull"),
            ("scope", "registry:catalog:*"),
        ],
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200
    _header, claims, _ = response.json()["token"].split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=="))
    assert decoded["access"] == [
        {"type": "repository", "name": "a", "actions": ["pull"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    assert decoded["aud"] == token_server.service and decoded["sub"] == token_server.user
    assert token_server.requests()[-1].scopes == ("repository:a:pull", "registry:catalog:*")
    scope = parse_scope("repository:127.0.0.1:5000/x:pull,push")
    assert scope is not None and (scope.name, scope.actions) == (
        "127.0.0.1:5000/x",
        ("pull", "push"),
    )
    assert parse_scope("nonsense") is None


def test_readonly_registry_serves_reads_and_refuses_writes(
    readonly_registry: RegistryServer, regclient_testdata: Path
) -> None:
    ref = f"docker://{readonly_registry.ref('testrepo', 'v1')}"
    assert skopeo.inspect_digest(ref, server=readonly_registry) == V1_DIGEST
    with pytest.raises(skopeo.SkopeoError):
        push_v1(readonly_registry, regclient_testdata, repo="new/repo")
    upload = httpx.post(f"{readonly_registry.url}/v2/new/repo/blobs/uploads/")
    assert upload.status_code == 405
    delete = httpx.delete(f"{readonly_registry.url}/v2/testrepo/manifests/{V1_DIGEST}")
    assert delete.status_code == 405


def test_restart_keeps_port_and_storage(registry: RegistryServer, regclient_testdata: Path) -> None:
    push_v1(registry, regclient_testdata)
    host = registry.host
    registry.stop()
    assert not registry.running
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", registry.port, timeout=2).request("GET", "/v2/")
    registry.start()
    assert registry.host == host
    ref = f"docker://{registry.ref('push/test', 'v1')}"
    assert skopeo.inspect_digest(ref, server=registry) == V1_DIGEST
    registry.restart()
    assert skopeo.inspect_digest(ref, server=registry) == V1_DIGEST


def test_upload_session_survives_a_restart(registry: RegistryServer) -> None:
    data = b"resumable"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=registry.url) as client:
        location = client.post("/v2/up/blobs/uploads/").headers["Location"]
        registry.stop(kill=True)  # a crash, not a clean shutdown
        registry.start()
        done = client.put(f"{location}&digest={digest}", content=data)
        assert done.status_code == 201, done.text
        assert client.get(f"/v2/up/blobs/{digest}").content == data


def test_requests_lists_each_request_once_and_can_be_cleared(registry: RegistryServer) -> None:
    assert registry.requests() == []  # readiness probes are not counted
    with httpx.Client(base_url=registry.url) as client:
        for _ in range(3):
            client.get("/v2/")
        client.head("/v2/some/repo/manifests/v1")
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


class _Anonymous:
    """The same server, addressed without credentials."""

    def __init__(self, server: RegistryServer) -> None:
        self.server = server
        self.url, self.host = server.url, server.host

    def skopeo_args(self, prefix: str = "") -> list[str]:
        return [*self.server.skopeo_tls_args(prefix), f"--{prefix}no-creds"]


def test_registry_factory_combines_tls_and_basic_auth(
    registry_factory: Callable[..., RegistryServer], regclient_testdata: Path
) -> None:
    server = registry_factory(tls=True, htpasswd=True)
    other = registry_factory()
    assert server.url.startswith("https://") and server.user and server.port != other.port
    push_v1(server, regclient_testdata)
    skopeo.copy(
        f"docker://{server.ref('push/test', 'v1')}",
        f"docker://{other.ref('copied', 'v1')}",
        preserve_digests=True,
        src_server=server,
        dest_server=other,
    )
    assert skopeo.inspect_digest(f"docker://{other.ref('copied', 'v1')}", server=other) == V1_DIGEST


def test_token_server_keeps_its_port_across_restarts(
    token_registry: RegistryServer, token_server: TokenServer, regclient_testdata: Path
) -> None:
    realm = token_server.realm
    token_server.stop()
    token_server.start()
    assert token_server.realm == realm
    push_v1(token_registry, regclient_testdata)
