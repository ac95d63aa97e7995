"""A token server for distribution's `auth: token`, in the stdlib.

The registry answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`; the
client asks this server for a token (GET with basic credentials, or the OAuth2 form POST with
`grant_type=password|refresh_token`) and retries with `Authorization: Bearer <jwt>`.

Tokens are RS256 JWTs whose header carries the signing certificate (`x5c`); distribution
accepts them when that certificate chains to its `rootcertbundle` (our test CA). RSA
PKCS#1 v1.5 signing is a modular exponentiation, so no crypto package is needed.

Every request is recorded (`requests()`), so tests can assert that a client caches tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.servers.certs import IssuedCert
from tests.servers.distribution import TokenAuthSettings
from tests.servers.net import LOOPBACK, BackgroundHTTPServer

DEFAULT_USER = "regplan"
DEFAULT_PASSWORD = "token-secret"


@dataclass(frozen=True)
class TokenRequest:
    """One request to the token endpoint, as the server understood it."""

    method: str  # GET or POST
    grant_type: str  # "" for GET, else "password" / "refresh_token"
    account: str  # the authenticated user, "" when anonymous or refused
    service: str
    scopes: tuple[str, ...]  # e.g. ("repository:app:pull,push",)
    status: int


# -- RS256 with the stdlib --------------------------------------------------------------------


def _der_items(data: bytes) -> list[tuple[int, bytes]]:
    """Split DER bytes into (tag, content) items: just enough ASN.1 to read an RSA key."""
    items, i = [], 0
    while i < len(data):
        tag, length = data[i], data[i + 1]
        i += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(data[i : i + n], "big")
            i += n
        items.append((tag, data[i : i + length]))
        i += length
    return items


def _pem_body(pem: str) -> bytes:
    lines = [line for line in pem.strip().splitlines() if not line.startswith("-----")]
    return base64.b64decode("".join(lines))


@dataclass(frozen=True)
class RSAKey:
    n: int
    e: int
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    @classmethod
    def from_pem(cls, pem: str) -> RSAKey:
        """Reads PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`)."""
        [(_, body)] = _der_items(_pem_body(pem))
        fields = _der_items(body)
        if fields[1][0] == 0x30:  # PKCS#8: version, AlgorithmIdentifier, OCTET STRING(PKCS#1)
            [(_, body)] = _der_items(fields[2][1])
            fields = _der_items(body)
        ints = [int.from_bytes(content, "big") for _, content in fields]
        return cls(*ints[1:9])  # n, e, d, p, q, dp, dq, qinv (ints[0] is the version)

    def sign_rs256(self, message: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2)."""
        digest_info = bytes.fromhex("3031300d060960864801650304020105000420")
        digest_info += hashlib.sha256(message).digest()
        k = (self.n.bit_length() + 7) // 8
        encoded = b"\x00\x01" + b"\xff" * (k - len(digest_info) - 3) + b"\x00" + digest_info
        m = int.from_bytes(encoded, "big")
        # m^d mod n via the Chinese remainder theorem: ~4x faster than pow(m, d, n).
        s1, s2 = pow(m, self.dp, self.p), pow(m, self.dq, self.q)
        signature = s2 + self.q * ((self.qinv * (s1 - s2)) % self.p)
        assert pow(signature, self.e, self.n) == m, "RSA key parsed wrongly"
        return signature.to_bytes(k, "big")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Scope:
    """One requested scope, e.g. `repository:team/app:pull,push` or `registry:catalog:*`."""

    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self, granted: list[str]) -> dict[str, object]:
        """The JWT `access` entry granting `granted` of the actions."""
        return {"type": self.type, "name": self.name, "actions": granted}


def parse_scope(scope: str) -> Scope | None:
    """None if malformed. A name may hold ':' (a registry host with a port): the type is before
    the first ':' and the actions after the last."""
    resource_type, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not resource_type or not name:
        return None
    return Scope(resource_type, name, tuple(a for a in actions.split(",") if a))


# -- the server -------------------------------------------------------------------------------


class TokenServer(BackgroundHTTPServer):
    """Issues registry tokens to `users` (name → password) on 127.0.0.1."""

    def __init__(
        self,
        signing_cert: IssuedCert,
        *,
        users: dict[str, str] | None = None,
        service: str = "regplan-test-registry",
        issuer: str = "regplan-test-token-issuer",
        ttl: int = 300,
        anonymous_pull: bool = False,
    ) -> None:
        self.signing_cert = signing_cert
        self.users = dict(users) if users is not None else {DEFAULT_USER: DEFAULT_PASSWORD}
        self.service = service
        self.issuer = issuer
        self.ttl = ttl
        self.anonymous_pull = anonymous_pull
        self._key = RSAKey.from_pem(signing_cert.key_file.read_text())
        self._x5c = [base64.b64encode(_pem_body(signing_cert.cert_pem)).decode()]
        self._refresh_tokens: dict[str, str] = {}  # refresh token → account
        self._requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._port = 0  # kept across stop/start: the registry's config names the realm URL

    @property
    def user(self) -> str:
        return next(iter(self.users), "")

    @property
    def password(self) -> str:
        return self.users.get(self.user, "")

    @property
    def port(self) -> int:
        assert self._port, "TokenServer not started"
        return self._port

    @property
    def realm(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/token"

    @property
    def root_cert_bundle(self) -> Path:
        return self.signing_cert.ca.cert_file

    def settings(self) -> TokenAuthSettings:
        return TokenAuthSettings(self.realm, self.service, self.issuer, self.root_cert_bundle)

    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def start(self) -> TokenServer:
        if self._httpd is None:
            self._listen(_handler_for(self), name="token-server", port=self._port)
            self._port = self.bound_port
        return self

    # -- tokens -------------------------------------------------------------------------------
    def issue(self, account: str, scopes: list[str], *, service: str | None = None) -> str:
        """A signed JWT granting `account` what `scopes` ask for (see `granted_actions`)."""
        now = int(time.time())
        access = []
        for text in scopes:
            scope = parse_scope(text)
            if scope is not None:
                access.append(scope.claim(self.granted_actions(account, scope.actions)))
        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        claims = {
            "iss": self.issuer,
            "sub": account,
            "aud": service or self.service,
            "exp": now + self.ttl,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        return signing_input + "." + _b64url(self._key.sign_rs256(signing_input.encode()))

    def granted_actions(self, account: str, requested: tuple[str, ...]) -> list[str]:
        """Known users get everything they ask for; anonymous callers get `pull` at most, and
        only with `anonymous_pull`."""
        if account:
            return list(requested)
        return [a for a in requested if a == "pull"] if self.anonymous_pull else []

    def _check_basic(self, header: str) -> str | None:
        """The user named by a valid `Authorization: Basic` header, "" if absent, None if bad."""
        if not header:
            return ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return self._check_password(user, password)

    def _check_password(self, user: str, password: str) -> str | None:
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected, password):
            return None
        return user

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _new_refresh_token(self, account: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = account
        return token

    def _refresh_account(self, token: str) -> str | None:
        with self._lock:
            return self._refresh_tokens.get(token)


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # requests are recorded, not printed

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            scopes = _scopes(query.get("scope", []))
            service = _first(query, "service")
            if url.path != "/token":
                self._reply(HTTPStatus.NOT_FOUND, {"errors": [{"code": "NOT_FOUND"}]})
                return
            account = server._check_basic(self.headers.get("Authorization", ""))
            if account is None:
                self._refuse("GET", "", service, scopes)
                return
            body: dict[str, object] = self._token_body(account, scopes, service)
            if account and _first(query, "offline_token") == "true":
                body["refresh_token"] = server._new_refresh_token(account)
            self._ok("GET", "", account, service, scopes, body)

        def do_POST(self) -> None:
            """OAuth2 form POST (docker login with identity tokens, regclient refresh tokens)."""
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            grant_type = _first(form, "grant_type")
            scopes = _scopes(form.get("scope", []))
            service = _first(form, "service")
            account: str | None = None
            if grant_type == "password":
                account = server._check_password(_first(form, "username"), _first(form, "password"))
            elif grant_type == "refresh_token":
                account = server._refresh_account(_first(form, "refresh_token"))
            if not account:
                self._refuse("POST", grant_type, service, scopes)
                return
            body = self._token_body(account, scopes, service)
            if grant_type == "password" and _first(form, "access_type") == "offline":
                body["refresh_token"] = server._new_refresh_token(account)
            self._ok("POST", grant_type, account, service, scopes, body)

        def _token_body(self, account: str, scopes: list[str], service: str) -> dict[str, object]:
            token = server.issue(account, scopes, service=service or None)
            return {
                "token": token,
                "access_token": token,
                "expires_in": server.ttl,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }

        def _ok(
            self,
            method: str,
            grant_type: str,
            account: str,
            service: str,
            scopes: list[str],
            body: dict[str, object],
        ) -> None:
            server._record(
                TokenRequest(method, grant_type, account, service, tuple(scopes), HTTPStatus.OK)
            )
            self._reply(HTTPStatus.OK, body)

        def _refuse(self, method: str, grant_type: str, service: str, scopes: list[str]) -> None:
            server._record(
                TokenRequest(
                    method, grant_type, "", service, tuple(scopes), HTTPStatus.UNAUTHORIZED
                )
            )
            self._reply(
                HTTPStatus.UNAUTHORIZED,
                {"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}]},
                extra_headers={"WWW-Authenticate": 'Basic realm="regplan-test-token"'},
            )

        def _reply(
            self,
            status: HTTPStatus,
            body: dict[str, object],
            extra_headers: dict[str, str] | None = None,
        ) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra_headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _first(values: dict[str, list[str]], key: str) -> str:
    return (values.get(key) or [""])[0]


def _scopes(raw: list[str]) -> list[str]:
    """`scope` may repeat, and one value may hold several space-separated scopes."""
    return [scope for value in raw for scope in value.split(" ") if scope]
