"""Per-host HTTP transport: one `httpx.Client` per registry host, and everything between a
request and the wire that does not depend on what is asked.

- TLS: an `ssl.SSLContext` per host (system CAs + `regcert`, `clientCert`/`clientKey` mTLS,
  `insecure` skips verification, `disabled` speaks plain http).
- Limits: `reqConcurrent` requests in flight per host (a thread already holding a slot does not
  take a second, so a same-host GET→PUT copy cannot deadlock), `reqPerSec` pacing.
- Retries: 408/429/5xx and connection failures back off exponentially from `retry_delay` to
  `retry_max_delay`, honouring `Retry-After`, at most `max_retries` times. A failing host is
  "in backoff" while a retry waits: every request to it waits too, and mirror ordering puts it
  last.
  Only requests whose body can be sent again are retried here; uploads restart a session.
- Observation: every request sent (redirects and token requests included) is counted in the
  `RequestCounter` and logged at trace level with credentials redacted; registry `Warning`
  headers are logged once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import enum
import functools
import os
import random
import re
import ssl
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from regplan import logs
from regplan.cancel import CancelToken
from regplan.cancel import bound as run_token
from regplan.config.hosts import Host, TLSMode, host_limits
from regplan.durations import format_duration
from regplan.errors import (
    ManifestError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    UnauthorizedError,
)
from regplan.registry import deadline
from regplan.registry.api import RequestCounter
from regplan.registry.auth import AuthSession, RegistryAuth, Scope, TokenReply
from regplan.registry.credentials import CredentialStore
from regplan.registry.wire import WireTransport

log = logs.get(__name__)

KIND_EXTENSION = "regplan.kind"  # request extension naming what a request is for (counting)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
MAX_WARNINGS_LOGGED = 100
CANCEL_POLL = 0.05  # seconds between looks at the cancel token during a wait
MAX_ERROR_BODY = 64 * 1024  # bytes of an error response read for its message
MAX_REPLY_BODY = 64 * 1024 * 1024  # a tag list or catalog page larger than this is refused
TIMEOUT = httpx.Timeout(connect=30.0, read=120.0, write=120.0, pool=300.0)
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:[^=&#]*(?:token|signature|credential|password|secret|sig|key)[^=&#]*)=)[^&#]*"
)
_WARNING_TEXT = re.compile(r'^\s*299\s+\S+\s+"((?:[^"\\]|\\.)*)"')


def _tracing() -> bool:
    return log.enabled("trace")


def redact_url(url: str | httpx.URL) -> str:
    """A URL safe to log: query values that look like secrets (tokens, presigned-URL
    signatures and credentials) replaced, user info dropped."""
    text = str(url)
    if "@" in text.split("?", 1)[0]:
        text = re.sub(r"//[^/@]*@", "//", text, count=1)
    return _SECRET_QUERY.sub(r"\1[redacted]", text)


def safe_headers(headers: httpx.Headers) -> dict[str, str]:
    out = logs.redact_headers(dict(headers.multi_items()))
    if "location" in {k.lower() for k in out}:
        out = {k: (redact_url(v) if k.lower() == "location" else v) for k, v in out.items()}
    return out


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    delay: float = 0.1
    max_delay: float = 30.0
    max_retries: int = 5

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based): exponential, jittered ±20%."""
        base = min(self.delay * (2 ** (attempt - 1)), self.max_delay)
        return min(base * random.uniform(0.8, 1.2), self.max_delay)


OK = frozenset(range(200, 300))
ANY = frozenset(range(100, 600))


class Answer(enum.Enum):
    """What is done with a response body."""

    NONE = "none"  # nothing is read: a HEAD's Content-Length is the resource's size
    MEMORY = "memory"  # read whole into memory, bounded by `Request.limit`
    STREAM = "stream"  # left open for the caller (blobs), bounded by blobStallTimeout


@dataclass(frozen=True)
class Request:
    """One request to a registry, as regclient's `reghttp.Req`: everything `send` needs to
    route, authorise, retry, bound and check it.

    The URL is `url`, or `/v2/<repository>/<path>` on whichever host answers (with that
    host's path prefix), so a read may go to a mirror. `scope` authorises it; without one,
    `actions` on `repository` do, in the answering host's spelling."""

    method: str
    registry: str = ""  # the host to send to (the upstream, when mirrors are used)
    url: str | httpx.URL = ""
    repository: str = ""
    path: str = ""
    namespace: str = ""  # `ns=` for a mirror: the upstream the repository belongs to
    kind: str = "other"  # what the request is for, as counted
    scope: Scope | None = None
    actions: tuple[str, ...] = ()
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    body: bytes | None = field(default=None, repr=False)  # kept, so the request can be resent
    upload: Iterable[bytes] | None = field(default=None, repr=False)  # one-shot: sent once
    stream: bool = False  # leave a 2xx answer's body open for the caller
    limit: int = 0  # bytes a 2xx body read into memory may have (0: MAX_REPLY_BODY)
    expect: frozenset[int] = OK  # statuses that are answers; any other raises
    what: str = ""  # what is being done, for error messages
    where: str = ""  # the reference errors name
    retries: bool = True
    mirrors: bool = False  # may be answered by one of the registry's mirrors
    follow_redirects: bool = False
    timeout: httpx.Timeout | None = None

    @property
    def answer(self) -> Answer:
        if self.method == "HEAD":
            return Answer.NONE
        return Answer.STREAM if self.stream else Answer.MEMORY

    @property
    def replayable(self) -> bool:
        return self.upload is None


@dataclass(frozen=True)
class Reply:
    """An answer: status, headers, the body read into memory (empty for HEAD and streamed
    answers), the URL that answered; the request, the host that answered it, the URL and
    scope that host was asked with. A streamed answer keeps `response` open (and its
    concurrency slot) until `close`."""

    status: int
    headers: httpx.Headers
    body: bytes = field(repr=False)
    url: httpx.URL
    request: Request | None = None
    host: str = ""
    sent: str = ""
    scope: Scope | None = None
    response: httpx.Response | None = field(default=None, repr=False)
    closer: contextlib.ExitStack = field(
        default_factory=contextlib.ExitStack, repr=False, compare=False
    )

    def close(self) -> None:
        self.closer.close()

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TransportFailure(RegistryError):
    """The host could not be reached or the connection broke (status 0), after retries."""


class BodyLimitError(Exception):
    """A body read into memory is over its limit; `send` says which request it was."""

    def __init__(self, message: str, limit_error: type[RegistryError]) -> None:
        super().__init__(message)
        self.message = message
        self.limit_error = limit_error


def status_error(reply: Reply, what: str, where: str) -> RegistryError:
    """The error an unexpected status means, with the registry's own error text."""
    detail = decode_error(reply.body)
    suffix = f": {detail}" if detail else ""
    status = reply.status
    if status in (401, 403):
        return UnauthorizedError(f"{what}: unauthorized{suffix}", ref=where, status=status)
    if status == 404:
        return NotFoundError(f"{what}: not found{suffix}", ref=where, status=status)
    if status == 429:
        return RateLimitedError(f"{what}: rate limited{suffix}", ref=where, status=status)
    reason = httpx.codes.get_reason_phrase(status) or "unexpected status"
    return RegistryError(f"{what}: http status: {reason}{suffix}", ref=where, status=status)


def repo_path(host: Host, repository: str) -> str:
    prefix = host.path_prefix.strip("/")
    return f"{prefix}/{repository}" if prefix else repository


def with_query(url: str | httpx.URL, key: str, value: str) -> str:
    """Append `key=value` to a URL, keeping its query (upload locations carry `_state`)."""
    text = str(url)
    text = text.partition("#")[0]
    sep = "&" if "?" in text else "?"
    return f"{text}{sep}{quote(key, safe='')}={quote(value, safe='')}"


def retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (`Retry-After`: seconds or an HTTP date)."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        yield cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__


# what OpenSSL says when the bytes that came back are no TLS record (a plain-HTTP answer)
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
)


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a transport error is a failed certificate verification: permanent (the
    certificate will not change between retries), so it is not retried."""
    return any(isinstance(c, ssl.SSLCertVerificationError) for c in _causes(exc))


def _plain_http_answer(exc: BaseException) -> bool:
    """Whether a TLS handshake failed because the server speaks plain HTTP: permanent too."""
    return any(
        isinstance(c, ssl.SSLError) and str(getattr(c, "reason", "")) in _NOT_TLS_REASONS
        for c in _causes(exc)
    )


def _tls_port(response: httpx.Response) -> bool:
    """Whether a plain-HTTP request reached a TLS port: Go's servers (distribution, most
    registries) answer a bare `HTTP/1.0 400` with no headers and say so in the body."""
    return (
        response.status_code == 400
        and response.http_version == "HTTP/1.0"
        and not response.headers.get("content-type")
        and not response.headers.get("docker-distribution-api-version")
    )


def _permanent(exc: BaseException) -> bool:
    return _certificate_refused(exc) or _plain_http_answer(exc)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return redact_url(text)[:300]


def failure_text(method: str, host: Host, exc: httpx.TransportError) -> str:
    """One line for a request that could not be sent, saying what to do when we know."""
    if _plain_http_answer(exc):
        try:
            origin = exc.request.url
            where = f"{origin.host}:{origin.port}" if origin.port else origin.host
        except RuntimeError:  # no request attached
            where = host.connect_hostname
        if where == host.connect_hostname:
            return (
                f"{method} to {host.name} failed: it answers in plain HTTP, not TLS "
                f"(set tls: disabled for {host.name} in creds)"
            )
        return f"{method} to {host.name} failed: {where} answers in plain HTTP, not TLS"
    return f"{method} to {host.name} failed: {_describe(exc)}"


def environment_proxies() -> dict[str, str | None]:
    """`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` read as httpx reads them: URL
    pattern → proxy URL, or None where a request goes direct. Empty without them."""
    from httpx._utils import get_environment_proxies  # httpx's rules, NO_PROXY's forms included

    return get_environment_proxies()


# -- TLS --------------------------------------------------------------------------------------


def _default_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not context.cert_store_stats().get("x509_ca"):
        # no system CA store (minimal images): use certifi's, which httpx depends on
        import certifi

        context.load_verify_locations(certifi.where())
    return context


@functools.cache
def _shared_default_context() -> ssl.SSLContext:
    """One verifying context for every host that needs nothing of its own. Building one loads
    the CA store (25-40 ms); plain-HTTP hosts need one too, for redirects to https storage."""
    return _default_context()


def _load_client_cert(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """`load_cert_chain` reads files only: write the PEMs to a private temporary file that
    is removed as soon as they are loaded."""
    fd, path = tempfile.mkstemp(prefix="regplan-client-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(cert_pem.strip() + "\n" + key_pem.strip() + "\n")
        context.load_cert_chain(path)
    finally:
        os.unlink(path)


def ssl_context(host: Host) -> ssl.SSLContext:
    if (
        host.tls == TLSMode.ENABLED
        and not host.regcert.strip()
        and not (host.client_cert or host.client_key)
    ):
        return _shared_default_context()
    if host.tls == TLSMode.INSECURE:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = _default_context()
        if host.regcert.strip():
            try:
                context.load_verify_locations(cadata=host.regcert)
            except (ssl.SSLError, ValueError) as e:
                raise RegistryError(f"{host.name}: invalid regcert: {e}") from None
    if host.client_cert or host.client_key:
        if not (host.client_cert and host.client_key):
            raise RegistryError(f"{host.name}: clientCert and clientKey must both be set")
        try:
            _load_client_cert(context, host.client_cert, host.client_key)
        except (ssl.SSLError, OSError) as e:
            raise RegistryError(f"{host.name}: invalid clientCert/clientKey: {e}") from None
    return context


# -- limits -----------------------------------------------------------------------------------


class _ConcurrencySlots:
    """At most `n` requests in flight; re-entrant per thread (see module docstring).

    `hold()` is its own context manager rather than a generator-based one: it is entered
    once per request, and a generator context costs several times more."""

    def __init__(self, n: int) -> None:
        self._semaphore = threading.BoundedSemaphore(n)
        self._held = threading.local()

    def hold(self) -> _ConcurrencySlots:
        return self

    def __enter__(self) -> None:
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            self._semaphore.acquire()
        self._held.depth = depth + 1

    def __exit__(self, *exc: object) -> None:
        self._held.depth -= 1
        if self._held.depth == 0:
            self._semaphore.release()


class _Pacer:
    """Spaces requests `1/reqPerSec` apart (0 → no limit)."""

    def __init__(self, per_second: float, wait: Callable[[float], object]) -> None:
        self._wait = wait
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self._interval
        if at > now:
            self._wait(at - now)


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, consulted only for answers that set a cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            super().extract_cookies(response)


# -- the per-host transport -------------------------------------------------------------------


class HostTransport:
    """Everything needed to talk to one registry host. Thread-safe."""

    def __init__(
        self,
        host: Host,
        *,
        user_agent: str,
        policy: RetryPolicy,
        counter: RequestCounter | None,
        credentials: CredentialStore,
        transport: httpx.BaseTransport | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.host = host
        self.name = host.name
        scheme = "http" if host.tls == TLSMode.DISABLED else "https"
        self.base_url = f"{scheme}://{host.connect_hostname}"
        self.policy = policy
        self.limits = host_limits(host)
        self._counter = counter
        self._closed = threading.Event()  # ends waits at once when the transport closes
        self._cancel = cancel
        self._slots = _ConcurrencySlots(host.concurrency)
        self._pacer = _Pacer(host.req_per_sec, self.pause)
        # a streamed body's single read may wait no longer than a blob may stall
        self._stream_timeout = httpx.Timeout(
            connect=30.0,
            read=min(TIMEOUT.read or 120.0, self.limits.blob_stall_timeout),
            write=120.0,
            pool=300.0,
        )
        self._state_lock = threading.Lock()
        self._backoff_until = 0.0
        self._warnings: set[str] = set()
        if host.tls == TLSMode.INSECURE:
            log.warn("TLS certificate verification disabled", registry=host.name)
        # same-thread GET+PUT, token realm and redirect targets share the pool: leave room
        connections = host.concurrency * 2 + 4
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=30.0,
        )
        proxies = environment_proxies() if transport is None else {}
        # a plain-HTTP host needs a verifying context only for a redirect to https storage, or
        # for a proxy from the environment: built when one of them needs it
        tls: ssl.SSLContext | None = ssl_context(host) if scheme == "https" else None
        if tls is None and any(proxies.values()):
            tls = _shared_default_context()
        if transport is None:
            transport = WireTransport(
                tls or _shared_default_context, max_idle=connections, keepalive_expiry=30.0
            )
        self.client = httpx.Client(
            transport=transport,
            # HTTPS_PROXY / NO_PROXY, as docker and regclient honour them: httpx mounts the
            # environment's proxies only beside a transport it builds itself, so here they are
            # mounted beside ours (a URL NO_PROXY matches maps to None: ours, direct)
            mounts={
                pattern: None
                if proxy is None
                else httpx.HTTPTransport(verify=tls or True, limits=limits, proxy=proxy)
                for pattern, proxy in proxies.items()
            },
            timeout=TIMEOUT,
            # bodies are decoded here, bounded (see _read_limited); httpx's decoders are not
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            follow_redirects=False,
            trust_env=True,
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )
        # httpx reads every answer's Set-Cookie through urllib's adapters, a tenth of a
        # request's CPU; registry answers set none, so look only when one does
        self.client._cookies = _Cookies()
        deadline.bound(self.client)  # the proxies' pools; our own transport bounds itself
        self.auth = AuthSession(
            host,
            origin=self.base_url,
            credentials=lambda: credentials.get(host),
            fetch=self._fetch_token,
            user_agent=user_agent,
        )

    def __repr__(self) -> str:
        return f"<HostTransport {self.name} {self.base_url}>"

    def close(self) -> None:
        self._closed.set()
        self.client.close()

    def pause(self, seconds: float) -> None:
        """Every wait of this host (backoff, Retry-After, pacing): returns early when the
        transport is closed, raises `Cancelled` soon after the run's token is cancelled (the
        client's, or the one the calling thread's run bound)."""
        tokens = self._tokens()
        if not tokens:
            self._closed.wait(seconds)
            return
        end = time.monotonic() + seconds
        while not self._closed.is_set():
            for token in tokens:
                token.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            # several events cannot be waited on at once: wake often enough to see any
            self._closed.wait(min(left, CANCEL_POLL))
        for token in tokens:
            token.check()

    def check_cancelled(self) -> None:
        for token in self._tokens():
            token.check()

    def _tokens(self) -> tuple[CancelToken, ...]:
        run = run_token()
        if run is None or run is self._cancel:
            return () if self._cancel is None else (self._cancel,)
        return (run,) if self._cancel is None else (self._cancel, run)

    # -- observation ------------------------------------------------------------------------
    def _on_request(self, request: httpx.Request) -> None:
        kind = str(request.extensions.get(KIND_EXTENSION, "other"))
        if self._counter is not None:
            self._counter.add(self.name, request.method, kind)
        if not _tracing():  # redacting every header costs more than the request's own work
            return
        log.trace(
            "reg http request",
            registry=self.name,
            method=request.method,
            url=redact_url(request.url),
            headers=safe_headers(request.headers),
        )

    def _on_response(self, response: httpx.Response) -> None:
        if _tracing():
            self._trace_response(response)
        if "warning" in response.headers:
            self._note_warnings(response)

    def _trace_response(self, response: httpx.Response) -> None:
        log.trace(
            "reg http response",
            registry=self.name,
            method=response.request.method,
            url=redact_url(response.request.url),
            status=response.status_code,
            headers=safe_headers(response.headers),
        )

    def _note_warnings(self, response: httpx.Response) -> None:
        for value in response.headers.get_list("warning"):
            m = _WARNING_TEXT.match(value)
            text = m.group(1) if m else value
            with self._state_lock:
                if text in self._warnings or len(self._warnings) >= MAX_WARNINGS_LOGGED:
                    continue
                self._warnings.add(text)
            log.warn("Registry warning", registry=self.name, warning=text)

    # -- backoff state ----------------------------------------------------------------------
    @property
    def backoff_until(self) -> float:
        # read on every request: one float read is atomic, so no lock (writers keep theirs)
        until = self._backoff_until
        return until if until > time.monotonic() else 0.0

    def _note_failure(self, delay: float) -> None:
        """Put the host in backoff for `delay`, the wait the failing request itself announced:
        every request to the host then waits with it. The window is not lengthened by the
        host's failure count: that count survives requests that gave up, so every retry of
        every later request waited the 30 s maximum, whatever the log said — a persistently
        failing registry turned one request's ~3 s of retries into minutes."""
        with self._state_lock:
            self._backoff_until = max(self._backoff_until, time.monotonic() + delay)

    def _wait_turn(self) -> None:
        self.check_cancelled()
        wait = self.backoff_until - time.monotonic()
        if wait > 0:
            self.pause(wait)
        self._pacer.wait()

    def _delay_for(self, attempt: int, headers: httpx.Headers | None) -> float | None:
        """How long to wait before retry `attempt`, None when the server asks for longer
        than we are willing to wait."""
        asked = retry_after(headers) if headers is not None else None
        if asked is not None:
            return asked if asked <= self.policy.max_delay else None
        return self.policy.backoff(attempt)

    # -- the one request path ---------------------------------------------------------------
    def url_for(self, request: Request) -> str:
        """The absolute URL `request` names on this host: its own, or `/v2/<name>/<path>` with
        the host's path prefix (and `ns=` naming the upstream when this host is a mirror)."""
        if request.url:
            return str(request.url)
        url = f"{self.base_url}/v2/{repo_path(self.host, request.repository)}/{request.path}"
        return with_query(url, "ns", request.namespace) if request.namespace else url

    def scope_for(self, request: Request) -> Scope | None:
        if request.scope is not None or not request.actions:
            return request.scope
        return _repository_scope(repo_path(self.host, request.repository), request.actions)

    def send(self, request: Request) -> Reply:
        """Send `request`, retrying what may be retried, and check its answer: a status
        outside `request.expect` raises the error it means, a network failure raises
        `TransportFailure`, both prefixed with `request.what`."""
        try:
            reply = self._exchange(request)
        except TransportFailure as e:
            if not request.what:
                raise
            raise TransportFailure(f"{request.what}: {e.message}", ref=request.where) from None
        except BodyLimitError as e:
            raise e.limit_error(
                f"{request.what}: {e.message}" if request.what else e.message, ref=request.where
            ) from None
        if reply.status not in request.expect:
            reply.close()
            raise status_error(reply, request.what, request.where)
        return reply

    def _exchange(self, request: Request) -> Reply:
        url = self.url_for(request)
        scope = self.scope_for(request)
        answer = request.answer
        # a one-shot body cannot be sent twice
        max_retries = self.policy.max_retries if request.retries and request.replayable else 0
        # one deadline for the request, its retries and its token fetches; a streamed body (up
        # or down) is bounded by blobStallTimeout instead, so the deadline ends at its headers
        at = time.monotonic() + self.limits.request_timeout
        bounded = request.replayable
        timeout = request.timeout or (self._stream_timeout if answer is Answer.STREAM else TIMEOUT)
        slot = contextlib.ExitStack()
        slot.enter_context(self._slots.hold())  # held by a streamed answer until it is closed
        try:
            attempt = 0
            reason: int | str
            while True:
                self._wait_turn()
                try:
                    with deadline.until(at) if bounded else contextlib.nullcontext():
                        outcome = self._attempt(
                            request, url, scope, timeout, attempt, retry=attempt < max_retries
                        )
                    if isinstance(outcome, Reply):
                        if outcome.response is not None:
                            outcome.closer.push(slot.pop_all())
                            outcome.closer.callback(outcome.response.close)  # before the slot
                        return outcome
                    delay, reason = outcome
                except httpx.TransportError as e:
                    if bounded and time.monotonic() >= at:
                        raise TransportFailure(self._late(request.method)) from None
                    if attempt >= max_retries or _permanent(e):
                        self._note_failure(self.policy.backoff(1))
                        raise TransportFailure(failure_text(request.method, self.host, e)) from None
                    delay, reason = self.policy.backoff(attempt + 1), _describe(e)
                attempt += 1
                self._back_off(request.method, reason, delay, attempt)
        finally:
            slot.close()

    def _attempt(
        self,
        request: Request,
        url: str,
        scope: Scope | None,
        timeout: httpx.Timeout,
        attempt: int,
        *,
        retry: bool,
    ) -> Reply | tuple[float, int | str]:
        """One exchange: the answer, or how long to wait before retrying (and why)."""
        sent = self.client.build_request(
            request.method,
            url,
            headers=request.headers,
            content=request.body if request.replayable else request.upload,
            timeout=timeout,
            extensions={KIND_EXTENSION: request.kind},
        )
        response = self._send(sent, scope, follow_redirects=request.follow_redirects)
        keep = False
        try:
            status = response.status_code
            if retry and is_retryable(status):
                delay = self._delay_for(attempt + 1, response.headers)
                if delay is not None:
                    return delay, status
            if self.host.tls == TLSMode.DISABLED and _tls_port(response):
                raise TransportFailure(
                    f"{request.method} to {self.name} failed: it answers in TLS, not plain "
                    f"HTTP (remove tls: disabled for {self.name} from creds)"
                )
            ok = 200 <= status < 300
            asked = (request, self.name, url, scope)
            if request.answer is Answer.NONE:
                # no body: its Content-Length is the resource's size (a blob HEAD says 200
                # MiB), nothing is read into memory, so no limit applies. Reaching the
                # (empty) end of the message lets the connection be reused: closed before
                # it, every HEAD paid a new TCP (and TLS) connection.
                _drain_empty(response)
                return Reply(status, response.headers, b"", response.url, *asked)
            if request.answer is Answer.STREAM and ok:
                keep = True
                return Reply(status, response.headers, b"", response.url, *asked, response)
            if ok:
                limit_error = ManifestError if request.limit else RegistryError
                body = _read_limited(
                    response, request.limit or MAX_REPLY_BODY, truncate=False, error=limit_error
                )
            else:
                body = _read_limited(response, MAX_ERROR_BODY, truncate=True)
            return Reply(status, response.headers, body, response.url, *asked)
        finally:
            if not keep:
                response.close()

    def _send(
        self, request: httpx.Request, scope: Scope | None, *, follow_redirects: bool
    ) -> httpx.Response:
        auth: httpx.Auth | None = RegistryAuth(self.auth, scope) if scope is not None else None
        try:
            return self.client.send(
                request, auth=auth, follow_redirects=follow_redirects, stream=True
            )
        except httpx.StreamConsumed:
            raise RegistryError(
                f"{self.name}: the request was refused and its streamed body cannot be resent",
                status=401,
            ) from None

    def _late(self, method: str) -> str:
        return (
            f"{method} to {self.name} failed: no complete answer within "
            f"{format_duration(self.limits.request_timeout)} (apiOpts requestTimeout)"
        )

    def _back_off(self, method: str, reason: int | str, delay: float, attempt: int) -> None:
        log.warn(
            "Sleeping for backoff",
            registry=self.name,
            method=method,
            reason=reason,
            seconds=round(delay, 3),
            attempt=attempt,
        )
        self._note_failure(delay)

    def _fetch_token(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> TokenReply:
        reply = self.send(
            Request(
                method,
                url=url,
                kind="token",
                headers=headers,
                body=body,
                expect=ANY,
                # a redirect would carry the login (a 307 re-POSTs a refresh token) to an origin
                # the registry did not name, past the plain-http realm check: never follow one
                follow_redirects=False,
            )
        )
        return TokenReply(reply.status, reply.body)


@functools.lru_cache(maxsize=4096)
def _repository_scope(repository: str, actions: tuple[str, ...]) -> Scope:
    """The scope of `actions` on `repository`: the same few per repository for a whole run,
    and asked for on every request, so built once each (bounded)."""
    return Scope.repository(repository, *actions)


class Transports:
    """The `HostTransport` of every host in use, and the one place a request is routed:
    to its registry, or through the registry's mirrors. Thread-safe."""

    def __init__(
        self,
        hosts: Iterable[Host],
        *,
        user_agent: str,
        policy: RetryPolicy,
        counter: RequestCounter | None,
        credentials: CredentialStore,
        transport: httpx.BaseTransport | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self._hosts = {h.name: h for h in hosts}
        self.policy = policy
        # every host's transport is made with the same settings
        self._new = functools.partial(
            HostTransport,
            user_agent=user_agent,
            policy=policy,
            counter=counter,
            credentials=credentials,
            transport=transport,
            cancel=cancel,
        )
        self._lock = threading.Lock()
        self._transports: dict[str, HostTransport] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._hosts)

    def host(self, name: str) -> Host:
        return self._hosts.get(name) or Host(name=name)

    def get(self, name: str) -> HostTransport:
        found = self._transports.get(name)  # every request asks: no lock once it exists
        if found is not None:
            return found
        with self._lock:
            found = self._transports.get(name)
            if found is None:
                found = self._new(self.host(name))
                self._transports[name] = found
            return found

    def close_all(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for ht in transports:
            ht.close()

    def send(self, request: Request) -> Reply:
        """Send `request` to its registry; a read that may use mirrors tries them first (see
        `candidates`): a mirror that fails or lacks the content hands over to the next host,
        and the last host's answer stands (only its failures are retried)."""
        if not request.mirrors or not self._mirrored(request):
            return self.get(request.registry).send(request)
        candidates = self.candidates(request.registry)
        for ht, namespace in candidates[:-1]:
            trial = dataclasses.replace(request, namespace=namespace, expect=ANY, retries=False)
            try:
                reply = ht.send(trial)
            except RegistryError as e:  # e.g. the mirror's token realm refused or failed
                log.debug("Mirror failed", mirror=ht.name, registry=request.registry, error=str(e))
                continue
            if reply.status in request.expect and 200 <= reply.status < 300:
                return reply
            reply.close()
            log.debug(
                "Mirror skipped", mirror=ht.name, registry=request.registry, status=reply.status
            )
        ht, namespace = candidates[-1]
        if namespace != request.namespace:
            request = dataclasses.replace(request, namespace=namespace)
        return ht.send(request)

    def _mirrored(self, request: Request) -> bool:
        """Whether `request` has mirrors to try (most hosts have none: then it goes straight
        to its registry, as `candidates` would send it, without ordering a list of one)."""
        upstream = self.host(request.registry)
        return bool(request.namespace) or any(m != upstream.name for m in upstream.mirrors)

    def candidates(self, registry: str) -> list[tuple[HostTransport, str]]:
        """Mirrors then the upstream, each with the `ns` it is asked with: highest `priority`
        first, the upstream after mirrors of equal priority, hosts in backoff last
        (soonest-recovering first)."""
        upstream = self.host(registry)
        entries: list[tuple[tuple[Any, ...], HostTransport, str]] = []
        for position, name in enumerate(
            dict.fromkeys(m for m in upstream.mirrors if m != upstream.name)
        ):
            ht = self.get(name)
            until = ht.backoff_until
            entries.append(((until > 0, until, -ht.host.priority, 0, position), ht, registry))
        ht = self.get(registry)
        until = ht.backoff_until
        entries.append(((until > 0, until, -upstream.priority, 1, 0), ht, ""))
        return [(t, ns) for _, t, ns in sorted(entries, key=lambda e: e[0])]


_DECODERS = {"gzip": 31, "x-gzip": 31, "deflate": 15}  # zlib wbits per Content-Encoding
_DECODE_STEP = 64 * 1024  # bytes a decoder may produce per call


def content_codings(headers: httpx.Headers) -> list[str]:
    """The Content-Encoding layers in the order they must be undone (last applied first)."""
    codings = [
        c.strip().lower()
        for value in headers.get_list("content-encoding")
        for c in value.split(",")
    ]
    return [c for c in reversed(codings) if c and c != "identity"]


def _inflate(chunks: Iterable[bytes], wbits: int, limit: int) -> Iterator[bytes]:
    """Undo one gzip/deflate layer producing at most `_DECODE_STEP` bytes per call, so a
    bomb is stopped after `limit` decoded bytes instead of after it filled memory."""
    decoder = zlib.decompressobj(wbits)
    produced = 0
    for chunk in chunks:
        data = chunk
        while data:
            try:
                out = decoder.decompress(data, _DECODE_STEP)
            except zlib.error as e:
                raise RegistryError(f"response body does not decode: {e}") from None
            data = decoder.unconsumed_tail
            produced += len(out)
            if produced > limit:
                raise _OverLimit()
            if out:
                yield out
            if decoder.eof:
                return


class _OverLimit(Exception):
    """A decoding layer produced more than the body limit allows."""


def _decoded(response: httpx.Response, limit: int) -> Iterator[bytes]:
    """The body's bytes with every Content-Encoding undone, bounded at each layer."""
    if response.is_stream_consumed:  # read already (in-memory responses): decoded by httpx
        return iter((response.content,))
    chunks: Iterable[bytes] = response.iter_raw()
    for coding in content_codings(response.headers):
        wbits = _DECODERS.get(coding)
        if wbits is None:  # we asked for identity; br/zstd would need their own bounds
            raise RegistryError(f"response uses Content-Encoding {coding!r}, not identity")
        # an intermediate layer is a compressed form of the body: allow it some slack
        chunks = _inflate(chunks, wbits, limit + limit // 8 + _DECODE_STEP)
    return iter(chunks)


def _drain_empty(response: httpx.Response) -> None:
    """Read to the end of a message that has no body (a HEAD answer): the transport knows it
    has none whatever its Content-Length says, so this reads nothing; anything else is not
    drained."""
    if response.request.method != "HEAD" or response.is_stream_consumed:
        return
    # the stream itself, not `iter_raw`: its chunker and bookkeeping cost a HEAD more than
    # reading the end of the message does, and the caller closes the response anyway
    for _ in response.stream:  # type: ignore[union-attr]
        return  # a body after all (a broken server): leave it, the connection is closed


def _read_limited(
    response: httpx.Response,
    limit: int,
    *,
    truncate: bool,
    error: type[RegistryError] = ManifestError,
) -> bytes:
    """Read a body of at most `limit` bytes, counted after content decoding as the bytes are
    produced (a gzipped manifest is hashed as its plain bytes, and a gzip bomb stops at the
    limit). Over the limit: truncate (error bodies) or raise `error`."""
    length = response.headers.get("content-length", "")
    if not truncate and length.isdigit() and int(length) > limit:
        raise BodyLimitError(
            f"response of {int(length)} bytes is over the {limit} byte limit", error
        )
    parts: list[bytes] = []
    total = 0
    try:
        for chunk in _decoded(response, limit):
            if deadline.passed():  # also where the pool is not ours (see deadline.bound)
                raise httpx.ReadTimeout("the request's deadline passed")
            total += len(chunk)
            if total > limit:
                if truncate:
                    parts.append(chunk[: limit - (total - len(chunk))])
                    break
                raise BodyLimitError(f"response is over the {limit} byte limit", error)
            parts.append(chunk)
    except _OverLimit:
        if not truncate:
            raise BodyLimitError(
                f"response is over the {limit} byte limit (decoded)", error
            ) from None
    return b"".join(parts)


def decode_error(body: bytes) -> str:
    """The registry's own error text (`{"errors":[{"code","message"}]}`), "" if none."""
    import orjson

    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return ""
    texts = []
    for item in errors[:3]:
        if isinstance(item, dict):
            code, message = str(item.get("code") or ""), str(item.get("message") or "")
            texts.append(": ".join(t for t in (code, message) if t)[:200])
    return "; ".join(t for t in texts if t)
