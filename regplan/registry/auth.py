"""Registry authentication as an `httpx.Auth` flow: anonymous, Basic, and Bearer tokens.

Nothing is sent up front: the first 401 of a host says which scheme it wants
(`WWW-Authenticate`). After that the host's scheme is known, so later requests carry Basic
credentials or a token for their scope straight away — no `/v2/` ping, no extra 401 per image.

Bearer tokens are fetched from the challenge's realm: `GET ?service=&scope=` (Basic
credentials and `account=` when a login is known), or `POST grant_type=refresh_token` when an
identity token is known. A token is reused for every request its scopes cover until shortly
before it expires. Without `repoAuth` a host shares one growing scope set (as regclient does,
bounded here so URLs stay short); with `repoAuth` every repository gets its own token.

Credentials go only to the configured registry's origin (and to the token realm it names):
requests to any other origin — upload locations elsewhere, redirect targets — get none.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import orjson

from regplan import logs
from regplan.config.hosts import Host, TLSMode
from regplan.errors import RegistryError, UnauthorizedError
from regplan.registry.credentials import Credential

log = logs.get(__name__)

MAX_SHARED_REPOSITORIES = 16  # scopes one shared token may grow to before a fresh one starts
TOKEN_CACHE_SIZE = 64  # tokens kept per host
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, the distribution token spec's default
EXPIRY_MARGIN_MAX = 30.0  # refresh a token this long before it expires (at most)


# -- challenges -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: tuple[tuple[str, str], ...] = ()

    def param(self, key: str) -> str:
        return dict(self.params).get(key, "")

    @property
    def realm(self) -> str:
        return self.param("realm")

    @property
    def service(self) -> str:
        return self.param("service")

    @property
    def error(self) -> str:
        return self.param("error")


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _read_token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] not in ' \t,="':
        i += 1
    return text[start:i], i


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    # text[i] is the opening quote
    out = []
    i += 1
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out), i + 1


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Parse `WWW-Authenticate` values (RFC 7235), several challenges per header allowed:
    `Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"`."""
    found: list[Challenge] = []
    for text in values:
        i = 0
        scheme = ""
        params: list[tuple[str, str]] = []
        while i < len(text):
            i = _skip_space(text, i)
            if i < len(text) and text[i] == ",":
                i += 1
                continue
            name, i = _read_token(text, i)
            if not name:
                i += 1  # stray character: skip it rather than loop forever
                continue
            j = _skip_space(text, i)
            if j < len(text) and text[j] == "=" and scheme:
                j = _skip_space(text, j + 1)
                if j < len(text) and text[j] == '"':
                    value, i = _read_quoted(text, j)
                else:
                    value, i = _read_token(text, j)
                params.append((name.lower(), value))
                continue
            if scheme:
                found.append(Challenge(scheme, tuple(params)))
            scheme, params, i = name.lower(), [], j
        if scheme:
            found.append(Challenge(scheme, tuple(params)))
    return found


# -- scopes ---------------------------------------------------------------------------------

Grant = tuple[str, str, str]  # (resource type, name, action)


@dataclass(frozen=True)
class Scope:
    """What a request needs: e.g. pull on one repository, push on another, catalog access."""

    grants: frozenset[Grant] = frozenset()

    @classmethod
    def repository(cls, name: str, *actions: str) -> Scope:
        return cls(frozenset(("repository", name, a) for a in actions))

    @classmethod
    def catalog(cls) -> Scope:
        return cls(frozenset({("registry", "catalog", "*")}))

    @classmethod
    def parse(cls, text: str) -> Scope:
        """`repository:name:pull,push` (space-separated, several allowed)."""
        grants: set[Grant] = set()
        for item in text.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                grants.update((kind, name, a) for a in actions.split(",") if a)
        return cls(frozenset(grants))

    def __or__(self, other: Scope) -> Scope:
        return Scope(self.grants | other.grants)

    def covers(self, other: Scope) -> bool:
        return other.grants <= self.grants

    @property
    def resources(self) -> frozenset[tuple[str, str]]:
        return frozenset((kind, name) for kind, name, _ in self.grants)

    def strings(self) -> list[str]:
        """One `type:name:actions` string per resource, sorted (stable token requests)."""
        by_resource: dict[tuple[str, str], list[str]] = {}
        for kind, name, action in sorted(self.grants):
            by_resource.setdefault((kind, name), []).append(action)
        order = {"pull": 0, "push": 1}
        return [
            f"{kind}:{name}:{','.join(sorted(acts, key=lambda a: (order.get(a, 2), a)))}"
            for (kind, name), acts in sorted(by_resource.items())
        ]


# -- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    scope: Scope
    expires_at: float  # on the session's clock
    refresh_margin: float

    def usable(self, now: float) -> bool:
        return now < self.expires_at - self.refresh_margin


@dataclass(frozen=True)
class TokenReply:
    """What a token endpoint answered (fetched by the transport: counted, retried, traced)."""

    status: int
    body: bytes = field(repr=False)


# method, url, headers, form body → reply. Provided by the transport.
TokenFetch = Callable[[str, str, dict[str, str], bytes | None], TokenReply]


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host, port)


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class AuthSession:
    """Authentication state of one registry host, shared by all threads using it."""

    def __init__(
        self,
        host: Host,
        *,
        origin: str,
        credentials: Callable[[], Credential],
        fetch: TokenFetch,
        user_agent: str,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.host = host
        self._origin = _origin(httpx.URL(origin))
        self._credentials = credentials
        self._fetch = fetch
        self._user_agent = user_agent
        self._clock = clock or (lambda: time.monotonic())
        self._lock = threading.Lock()  # guards the fields below
        self._fetch_lock = threading.Lock()  # one token request per host at a time
        self._scheme = ""  # "", "basic" or "bearer": learnt from the first challenge
        self._realm = ""
        self._service = ""
        self._tokens: OrderedDict[Scope, Token] = OrderedDict()
        self._refresh_token = ""  # issued by the realm, replaces the identity token
        self._warned: set[str] = set()
        # Until one exchange has shown what the host wants, requests go one at a time: N
        # threads starting at once would otherwise collect N 401s.
        self._settled = threading.Event()
        self._first = threading.Lock()

    def __repr__(self) -> str:
        return f"<AuthSession {self.host.name} scheme={self._scheme or 'none'}>"

    @contextlib.contextmanager
    def first_exchange(self) -> Iterator[None]:
        if self._settled.is_set():
            yield
            return
        with self._first:
            if self._settled.is_set():
                yield
                return
            yield
            self._settled.set()  # not reached when the request failed before an answer

    def applies_to(self, url: httpx.URL) -> bool:
        return _origin(url) == self._origin

    # -- called by the flow ----------------------------------------------------------------
    def header_for(self, scope: Scope) -> str:
        """The Authorization value to send up front ("" when none is known yet)."""
        with self._lock:
            scheme = self._scheme
        if scheme == "basic":
            credential = self._credentials()
            return (
                basic_header(credential.user, credential.password)
                if credential.has_password
                else ""
            )
        if scheme == "bearer":
            return self._bearer(scope, rejected="")
        return ""

    def answer(self, challenges: list[Challenge], scope: Scope, rejected: str) -> str:
        """The Authorization value to retry a 401 with, "" to give up (the 401 stands)."""
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        if bearer is not None:
            with self._lock:
                self._scheme, self._realm, self._service = "bearer", bearer.realm, bearer.service
            scope = scope | Scope.parse(bearer.param("scope"))
            header = self._bearer(scope, rejected=rejected)
            return header if header != rejected else ""
        if any(c.scheme == "basic" for c in challenges):
            credential = self._credentials()
            if not credential.has_password:
                return ""
            with self._lock:
                self._scheme = "basic"
            header = basic_header(credential.user, credential.password)
            return header if header != rejected else ""
        return ""

    # -- bearer tokens ---------------------------------------------------------------------
    def _cached(self, scope: Scope, now: float) -> Token | None:
        for key, token in reversed(self._tokens.items()):
            if token.usable(now) and key.covers(scope):
                self._tokens.move_to_end(key)
                return token
        return None

    def _bearer(self, scope: Scope, *, rejected: str) -> str:
        with self._lock:
            if rejected:  # the registry refused it: never offer that token again
                for key, held in list(self._tokens.items()):
                    if "Bearer " + held.value == rejected:
                        del self._tokens[key]
            token = self._cached(scope, self._clock())
        if token is not None:
            return "Bearer " + token.value
        with self._fetch_lock:
            with self._lock:  # another thread may have fetched it meanwhile
                token = self._cached(scope, self._clock())
                request_scope = self._request_scope(scope)
                realm, service = self._realm, self._service
            if token is None:
                token = self._fetch_token(realm, service, request_scope)
                with self._lock:
                    self._tokens[token.scope] = token
                    while len(self._tokens) > TOKEN_CACHE_SIZE:
                        self._tokens.popitem(last=False)
        return "Bearer " + token.value

    def _request_scope(self, scope: Scope) -> Scope:
        """Without repoAuth the newest token's scopes are carried along, so one token serves
        a run that touches a handful of repositories; past a bound a fresh set starts."""
        if self.host.repo_auth or not self._tokens:
            return scope
        newest = next(reversed(self._tokens))
        merged = newest | scope
        return merged if len(merged.resources) <= MAX_SHARED_REPOSITORIES else scope

    def _warn_once(self, key: str, msg: str, **fields: object) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warn(msg, **fields)

    def _fetch_token(self, realm: str, service: str, scope: Scope) -> Token:
        realm_url = httpx.URL(realm)
        if realm_url.scheme not in ("http", "https") or not realm_url.host:
            raise UnauthorizedError(f"{self.host.name}: token realm is not an http(s) URL")
        credential = self._credentials()
        if (
            realm_url.scheme == "http"
            and self.host.tls != TLSMode.DISABLED
            and not credential.empty
        ):
            # a TLS registry pointing its realm at plain http would expose the login
            self._warn_once(
                "plain-realm",
                "Not sending credentials to a plain-http token realm",
                registry=self.host.name,
                realm=f"http://{realm_url.netloc.decode()}",
            )
            credential = Credential()
        scopes = scope.strings()
        refresh = self._refresh_token or credential.token
        if refresh:
            form = [("grant_type", "refresh_token"), ("refresh_token", refresh)]
            form += [("service", service), ("client_id", self._user_agent)]
            if scopes:
                form.append(("scope", " ".join(scopes)))
            reply = self._fetch(
                "POST",
                realm,
                {"Content-Type": "application/x-www-form-urlencoded"},
                urlencode(form).encode(),
            )
            if reply.status == 200 or not credential.has_password:
                return self._token_from(reply, scope, realm_url)
        query: list[tuple[str, str | int | float | bool | None]] = []
        if service:
            query.append(("service", service))
        query += [("scope", s) for s in scopes]
        headers: dict[str, str] = {}
        if credential.has_password:
            query.append(("account", credential.user))
            headers["Authorization"] = basic_header(credential.user, credential.password)
        query.append(("client_id", self._user_agent))
        url = realm_url.copy_merge_params(query) if query else realm_url
        return self._token_from(self._fetch("GET", str(url), headers, None), scope, realm_url)

    def _token_from(self, reply: TokenReply, scope: Scope, realm: httpx.URL) -> Token:
        where = f"{self.host.name}: token request to {realm.scheme}://{realm.netloc.decode()}"
        if reply.status in (401, 403):
            raise UnauthorizedError(f"{where} refused the credentials", status=reply.status)
        if 300 <= reply.status < 400:
            raise RegistryError(
                f"{where} answered with a redirect; token requests are not redirected, so"
                " credentials go only to the realm the registry names",
                status=reply.status,
            )
        if reply.status != 200:
            raise RegistryError(f"{where} failed", status=reply.status)
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise RegistryError(f"{where}: invalid JSON") from None
        if not isinstance(data, dict):
            raise RegistryError(f"{where}: invalid JSON")
        value = data.get("token") or data.get("access_token")
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{where}: no token in the answer")
        lifetime = data.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        refresh = data.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            with self._lock:
                self._refresh_token = refresh
        return Token(
            value=value,
            scope=scope,
            expires_at=self._clock() + float(lifetime),
            refresh_margin=min(EXPIRY_MARGIN_MAX, float(lifetime) / 5),
        )


class RegistryAuth(httpx.Auth):
    """The flow for one request: send what is known; on a 401, answer the challenge once."""

    def __init__(self, session: AuthSession, scope: Scope) -> None:
        self.session = session
        self.scope = scope

    def __repr__(self) -> str:
        return f"<RegistryAuth {self.session.host.name} {' '.join(self.scope.strings())}>"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self.session.applies_to(request.url):
            yield request  # another origin never sees this registry's credentials
            return
        with self.session.first_exchange():
            sent = self.session.header_for(self.scope)
            if sent:
                request.headers["Authorization"] = sent
            response = yield request
            if response.status_code != 401:
                return
            challenges = parse_challenges(response.headers.get_list("www-authenticate"))
            header = self.session.answer(challenges, self.scope, sent)
            if not header or not isinstance(request.stream, httpx.ByteStream):
                return  # nothing better to offer, or a streamed body that cannot be sent again
            request.headers["Authorization"] = header
            yield request
