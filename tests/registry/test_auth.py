"""The auth flow: challenge parsing, scopes, Basic and Bearer, token reuse, origins."""

from __future__ import annotations

import base64
import threading
from urllib.parse import parse_qs

import httpx
import pytest

from regplan.config.hosts import Host
from regplan.errors import UnauthorizedError
from regplan.refs import ImageRef
from regplan.registry.api import RequestCounter
from regplan.registry.auth import Challenge, Scope, parse_challenges

from .mock import REG, backend

REALM = "https://auth.test/token"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/alpine:pull"',
            [
                Challenge(
                    "bearer",
                    (
                        ("realm", "https://auth.docker.io/token"),
                        ("service", "registry.docker.io"),
                        ("scope", "repository:library/alpine:pull"),
                    ),
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [Challenge("basic", (("realm", "Registry Realm"),))]),
        (
            'Basic realm="a", Bearer realm="https://x/t", service=reg',
            [
                Challenge("basic", (("realm", "a"),)),
                Challenge("bearer", (("realm", "https://x/t"), ("service", "reg"))),
            ],
        ),
        (
            'Bearer realm="q\\"uote",error="insufficient_scope"',
            [Challenge("bearer", (("realm", 'q"uote'), ("error", "insufficient_scope")))],
        ),
        ("Negotiate", [Challenge("negotiate")]),
        ("", []),
        ('=,,"', []),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges([header]) == expected


def test_scope_strings_group_actions_pull_first() -> None:
    scope = Scope.repository("b", "push", "pull") | Scope.repository("a", "pull") | Scope.catalog()
    assert scope.strings() == ["registry:catalog:*", "repository:a:pull", "repository:b:pull,push"]
    assert Scope.parse("repository:a/b:pull,push registry:catalog:*") == (
        Scope.repository("a/b", "pull", "push") | Scope.catalog()
    )
    assert scope.covers(Scope.repository("b", "pull"))
    assert not Scope.repository("b", "pull").covers(Scope.repository("b", "push"))


class TokenRegistry:
    """A registry that wants Bearer tokens from REALM and a token server that counts."""

    def __init__(self, *, expires_in: int = 300, user: str = "", password: str = "") -> None:
        self.expires_in = expires_in
        self.user, self.password = user, password
        self.token_requests: list[httpx.Request] = []
        self.issued = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return self.token(request)
        auth = request.headers.get("authorization", "")
        repo = request.url.path.split("/manifests/")[0].removeprefix("/v2/")
        if not auth.startswith("Bearer ") or f"repository:{repo}:" not in auth:
            challenge = f'Bearer realm="{REALM}",service="reg",scope="repository:{repo}:pull"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(
            200,
            headers={
                "Docker-Content-Digest": "sha256:" + "a" * 64,
                "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                "Content-Length": "2",
            },
        )

    def token(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self.lock:
            self.token_requests.append(request)
            self.issued += 1
            n = self.issued
        if self.user:
            expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return httpx.Response(401)
        params = parse_qs(request.url.query.decode())
        if request.method == "POST":
            params = parse_qs(request.content.decode())
        scopes = " ".join(" ".join(params.get("scope", [])).split())
        # the token names its scopes so the fake registry can check them
        return httpx.Response(200, json={"token": f"t{n} {scopes}", "expires_in": self.expires_in})


def test_one_token_for_many_heads_across_threads() -> None:
    server = TokenRegistry()
    counter = RequestCounter()
    be = backend(server, counter=counter)
    ref = ImageRef.parse(f"{REG}/team/app:v1")
    assert be.manifest_head(ref) is not None  # 401 → token → retry

    def heads() -> None:
        for _ in range(10):
            assert be.manifest_head(ref) is not None

    threads = [threading.Thread(target=heads) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(server.token_requests) == 1
    # the first HEAD costs one 401 and one retry; every later HEAD exactly one request
    assert counter.total(kind="manifest") == 2 + 40
    assert counter.total(kind="token") == 1
    query = parse_qs(server.token_requests[0].url.query.decode())
    assert query["service"] == ["reg"]
    assert query["scope"] == ["repository:team/app:pull"]
    assert "account" not in query  # anonymous


def test_new_repository_gets_token_without_a_401_and_scopes_accumulate() -> None:
    server = TokenRegistry()
    counter = RequestCounter()
    be = backend(server, counter=counter)
    be.manifest_head(ImageRef.parse(f"{REG}/a:v1"))
    be.manifest_head(ImageRef.parse(f"{REG}/b:v1"))
    be.manifest_head(ImageRef.parse(f"{REG}/a:v1"))
    scopes = [parse_qs(r.url.query.decode())["scope"] for r in server.token_requests]
    assert scopes == [["repository:a:pull"], ["repository:a:pull", "repository:b:pull"]]
    # a:1 401 + retry, b: token fetched up front (the realm is known) + 1, a again: 1
    assert counter.total(kind="manifest") == 4


def test_repo_auth_keeps_one_token_per_repository() -> None:
    server = TokenRegistry()
    be = backend(server, Host(name=REG, repo_auth=True))
    for repo in ("a", "b", "a", "b", "c"):
        be.manifest_head(ImageRef.parse(f"{REG}/{repo}:v1"))
    scopes = [parse_qs(r.url.query.decode())["scope"] for r in server.token_requests]
    assert scopes == [["repository:a:pull"], ["repository:b:pull"], ["repository:c:pull"]]


def test_token_refetched_shortly_before_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("regplan.registry.auth.time.monotonic", lambda: now[0])
    server = TokenRegistry(expires_in=60)
    be = backend(server)
    ref = ImageRef.parse(f"{REG}/a:v1")
    be.manifest_head(ref)
    now[0] += 45  # within the lifetime minus the margin (60/5 = 12 s)
    be.manifest_head(ref)
    assert len(server.token_requests) == 1
    now[0] += 5  # 50 s: inside the refresh margin
    be.manifest_head(ref)
    assert len(server.token_requests) == 2


def test_basic_credentials_on_token_request_with_account() -> None:
    server = TokenRegistry(user="alice", password="s3cret")
    be = backend(server, Host(name=REG, user="alice", password="s3cret"))
    assert be.manifest_head(ImageRef.parse(f"{REG}/a:v1")) is not None
    query = parse_qs(server.token_requests[0].url.query.decode())
    assert query["account"] == ["alice"]


def test_wrong_password_is_unauthorized_without_the_secret() -> None:
    server = TokenRegistry(user="alice", password="right")
    be = backend(server, Host(name=REG, user="alice", password="wrong-pass"))
    with pytest.raises(UnauthorizedError) as info:
        be.manifest_head(ImageRef.parse(f"{REG}/a:v1"))
    assert "wrong-pass" not in str(info.value) and "wrong-pass" not in repr(info.value)
    assert "auth.test" in str(info.value)


def test_identity_token_uses_refresh_grant() -> None:
    server = TokenRegistry()
    be = backend(server, Host(name=REG, token="identity-xyz"))
    assert be.manifest_head(ImageRef.parse(f"{REG}/a:v1")) is not None
    (request,) = server.token_requests
    assert request.method == "POST"
    form = parse_qs(request.content.decode())
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["identity-xyz"]
    assert form["scope"] == ["repository:a:pull"]
    assert form["service"] == ["reg"]


def test_basic_challenge_then_sent_up_front() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        if request.headers.get("authorization") != "Basic " + base64.b64encode(b"u:p").decode():
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(200, json={"name": "a", "tags": ["x"]})

    be = backend(handler, Host(name=REG, user="u", password="p"))
    ref = ImageRef.parse(f"{REG}/a:v1")
    assert be.tag_list(ref) == ["x"]
    assert be.tag_list(ref) == ["x"]
    assert [bool(s) for s in seen] == [False, True, True]


def test_basic_challenge_without_credentials_is_unauthorized() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    be = backend(handler)
    with pytest.raises(UnauthorizedError, match="unauthorized"):
        be.tag_list(ImageRef.parse(f"{REG}/a:v1"))


def test_credentials_never_sent_to_another_origin() -> None:
    """An upload Location on another host gets no Authorization header."""
    auth_headers: dict[str, str] = {}
    basic = "Basic " + base64.b64encode(b"u:p").decode()

    def handler(request: httpx.Request) -> httpx.Response:
        auth_headers[f"{request.method} {request.url.host}"] = request.headers.get(
            "authorization", ""
        )
        if request.url.host == REG and request.headers.get("authorization") != basic:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "https://storage.test/upload/1?x=1"})
        return httpx.Response(201)

    be = backend(handler, Host(name=REG, user="u", password="p"))
    from .mock import blob_desc

    be.blob_put(ImageRef.parse(f"{REG}/a:v1"), blob_desc(b"hello"), [b"hello"])
    assert auth_headers["POST reg.test"] == basic
    assert auth_headers["PUT storage.test"] == ""


def test_plain_http_realm_gets_no_credentials() -> None:
    server = TokenRegistry()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            assert "authorization" not in request.headers
            return httpx.Response(200, json={"token": "anon repository:a:pull"})
        if not request.headers.get("authorization"):
            return httpx.Response(
                401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.test/token"'}
            )
        return server(request)

    be = backend(handler, Host(name=REG, user="u", password="p"))
    assert be.manifest_head(ImageRef.parse(f"{REG}/a:v1")) is not None


def test_rejected_token_is_not_retried_forever() -> None:
    counter = RequestCounter()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(200, json={"token": "useless"})
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}",error="insufficient_scope"'},
        )

    be = backend(handler, counter=counter)
    with pytest.raises(UnauthorizedError):
        be.manifest_head(ImageRef.parse(f"{REG}/a:v1"))
    assert counter.total(kind="manifest") == 2
    assert counter.total(kind="token") == 1
