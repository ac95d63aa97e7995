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
import email.utils
import functools
import os
import random
import re
import ssl
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from regplan import logs
from regplan.durations import format_duration
from regplan.errors import ManifestError, RegistryError
from regplan.registry import deadline
from regplan.registry.api import RequestCounter
from regplan.registry.auth import AuthSession, RegistryAuth, Scope, TokenReply
from regplan.registry.credentials import CredentialStore
from regplan.registry.hosts import Host, TLSMode
from regplan.registry.limits import host_limits

log = logs.get(__name__)

KIND_EXTENSION = "regplan.kind"  # request extension naming what a request is for (counting)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
MAX_WARNINGS_LOGGED = 100
MAX_ERROR_BODY = 64 * 1024  # bytes of an error response read for its message
MAX_REPLY_BODY = 64 * 1024 * 1024  # a tag list or catalog page larger than this is refused
TIMEOUT = httpx.Timeout(connect=30.0, read=120.0, write=120.0, pool=300.0)
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:[^=&#]*(?:token|signature|credential|password|secret|sig|key)[^=&#]*)=)[^&#]*"
)
_WARNING_TEXT = re.compile(r'^\s*299\s+\S+\s+"((?:[^"\\]|\\.)*)"')


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


@dataclass(frozen=True)
class Reply:
    """A whole (small) response: status, headers, body and the URL that answered."""

    status: int
    headers: httpx.Headers
    body: bytes = field(repr=False)
    url: httpx.URL


class TransportFailure(RegistryError):
    """The host could not be reached or the connection broke (status 0), after retries."""


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
    """At most `n` requests in flight; re-entrant per thread (see module docstring)."""

    def __init__(self, n: int) -> None:
        self._semaphore = threading.BoundedSemaphore(n)
        self._held = threading.local()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            self._semaphore.acquire()
        self._held.depth = depth + 1
        try:
            yield
        finally:
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
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.host = host
        self.name = host.name
        scheme = "http" if host.tls == TLSMode.DISABLED else "https"
        self.base_url = f"{scheme}://{host.connect_hostname}"
        self.policy = policy
        self.limits = host_limits(host)
        self._counter = counter
        self._closed = threading.Event()  # ends waits at once when the transport closes
        self._sleep = sleep or self.pause
        self._slots = _ConcurrencySlots(host.concurrency)
        self._pacer = _Pacer(host.req_per_sec, self._sleep)
        # a streamed body's single read may wait no longer than a blob may stall
        self._stream_timeout = httpx.Timeout(
            connect=30.0,
            read=min(TIMEOUT.read or 120.0, self.limits.blob_stall_timeout),
            write=120.0,
            pool=300.0,
        )
        self._state_lock = threading.Lock()
        self._failures = 0
        self._backoff_until = 0.0
        self._warnings: set[str] = set()
        if host.tls == TLSMode.INSECURE:
            log.warn("TLS certificate verification disabled", registry=host.name)
        verify = ssl_context(host) if scheme == "https" else _shared_default_context()
        # same-thread GET+PUT, token realm and redirect targets share the pool: leave room
        connections = host.concurrency * 2 + 4
        self.client = httpx.Client(
            verify=verify,
            transport=transport,
            timeout=TIMEOUT,
            limits=httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=connections,
                keepalive_expiry=30.0,
            ),
            # bodies are decoded here, bounded (see _read_limited); httpx's decoders are not
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            follow_redirects=False,
            trust_env=True,  # HTTPS_PROXY / NO_PROXY, as docker and regclient honour them
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )
        if transport is None:
            deadline.bound(self.client)
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
        """Wait before a retry; returns early when the transport is closed (cancelled)."""
        self._closed.wait(seconds)

    # -- observation ------------------------------------------------------------------------
    def _on_request(self, request: httpx.Request) -> None:
        kind = str(request.extensions.get(KIND_EXTENSION, "other"))
        if self._counter is not None:
            self._counter.add(self.name, request.method, kind)
        log.trace(
            "reg http request",
            registry=self.name,
            method=request.method,
            url=redact_url(request.url),
            headers=safe_headers(request.headers),
        )

    def _on_response(self, response: httpx.Response) -> None:
        log.trace(
            "reg http response",
            registry=self.name,
            method=response.request.method,
            url=redact_url(response.request.url),
            status=response.status_code,
            headers=safe_headers(response.headers),
        )
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
        with self._state_lock:
            return self._backoff_until if self._backoff_until > time.monotonic() else 0.0

    def _note_failure(self, delay: float) -> None:
        """Put the host in backoff for `delay`, the wait the failing request itself announced:
        every request to the host then waits with it. The window is not lengthened by the
        host's failure count: that count survives requests that gave up, so every retry of
        every later request waited the 30 s maximum, whatever the log said — a persistently
        failing registry turned one request's ~3 s of retries into minutes."""
        with self._state_lock:
            self._failures += 1
            self._backoff_until = max(self._backoff_until, time.monotonic() + delay)

    def _note_success(self) -> None:
        with self._state_lock:
            self._failures = 0

    def _wait_turn(self) -> None:
        wait = self.backoff_until - time.monotonic()
        if wait > 0:
            self._sleep(wait)
        self._pacer.wait()

    def _delay_for(self, attempt: int, headers: httpx.Headers | None) -> float | None:
        """How long to wait before retry `attempt`, None when the server asks for longer
        than we are willing to wait."""
        asked = retry_after(headers) if headers is not None else None
        if asked is not None:
            return asked if asked <= self.policy.max_delay else None
        return self.policy.backoff(attempt)

    # -- requests ---------------------------------------------------------------------------
    def build(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        kind: str,
        headers: dict[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Request:
        return self.client.build_request(
            method,
            url,
            headers=headers,
            content=content,
            timeout=timeout or TIMEOUT,
            extensions={KIND_EXTENSION: kind},
        )

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

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        kind: str,
        scope: Scope | None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
        max_body: int = 0,
        retries: bool = True,
        timeout: httpx.Timeout | None = None,
    ) -> Reply:
        """Send a request whose answer is small and read whole (manifests, listings, upload
        control), retrying transient failures. `max_body` > 0 refuses longer bodies
        (ManifestError), checking Content-Length first and counting while reading."""
        max_retries = self.policy.max_retries if retries else 0
        attempt = 0
        # one deadline for the request, its retries and its token fetches
        at = time.monotonic() + self.limits.request_timeout
        while True:
            with self._slots.hold(), deadline.until(at):
                self._wait_turn()
                request = self.build(
                    method, url, kind=kind, headers=headers, content=content, timeout=timeout
                )
                try:
                    response = self._send(request, scope, follow_redirects=follow_redirects)
                    try:
                        if is_retryable(response.status_code) and attempt < max_retries:
                            delay = self._delay_for(attempt + 1, response.headers)
                            if delay is not None:
                                status: int | str = response.status_code
                                body = b""
                            else:
                                body = _read_limited(response, MAX_ERROR_BODY, truncate=True)
                                return self._finish(response, body)
                        elif self.host.tls == TLSMode.DISABLED and _tls_port(response):
                            raise TransportFailure(
                                f"{method} to {self.name} failed: it answers in TLS, not plain "
                                f"HTTP (remove tls: disabled for {self.name} from creds)"
                            )
                        elif method == "HEAD":
                            # no body: its Content-Length is the resource's size (a blob
                            # HEAD says 200 MiB), nothing read into memory, so no limit applies
                            return self._finish(response, b"")
                        elif 200 <= response.status_code < 300:
                            body = _read_limited(
                                response,
                                max_body or MAX_REPLY_BODY,
                                truncate=False,
                                error=ManifestError if max_body else RegistryError,
                            )
                            return self._finish(response, body)
                        else:
                            body = _read_limited(response, MAX_ERROR_BODY, truncate=True)
                            return self._finish(response, body)
                    finally:
                        response.close()
                except httpx.TransportError as e:
                    if deadline.passed():
                        raise TransportFailure(self._late(method)) from None
                    if attempt >= max_retries or _permanent(e):
                        self._note_failure(self.policy.backoff(1))
                        raise TransportFailure(failure_text(method, self.host, e)) from None
                    delay, status = self.policy.backoff(attempt + 1), _describe(e)
            attempt += 1
            self._back_off(method, status, delay, attempt)

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

    def _settled(self, status: int) -> None:
        """An answer that is no server trouble ends the host's backoff window."""
        if status < 500 and status not in (408, 429):
            self._note_success()

    def _finish(self, response: httpx.Response, body: bytes) -> Reply:
        self._settled(response.status_code)
        return Reply(response.status_code, response.headers, body, response.url)

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        kind: str,
        scope: Scope | None,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = True,
        retries: bool = True,
    ) -> Iterator[httpx.Response]:
        """Open a response whose body is streamed (blobs). The concurrency slot is held until
        the body is closed. Transient failures before the body starts are retried."""
        with self._slots.hold():
            response = self.open(
                method,
                url,
                kind=kind,
                scope=scope,
                headers=headers,
                follow_redirects=follow_redirects,
                retries=retries,
            )
            try:
                yield response
            finally:
                response.close()

    def open(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        kind: str,
        scope: Scope | None,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = True,
        retries: bool = True,
    ) -> httpx.Response:
        """Like `stream` but the caller closes the response and holds any slot itself."""
        max_retries = self.policy.max_retries if retries else 0
        attempt = 0
        at = time.monotonic() + self.limits.request_timeout  # for the answer's headers
        while True:
            self._wait_turn()
            request = self.build(
                method, url, kind=kind, headers=headers, timeout=self._stream_timeout
            )
            try:
                with deadline.until(at):
                    response = self._send(request, scope, follow_redirects=follow_redirects)
            except httpx.TransportError as e:
                if time.monotonic() >= at:
                    raise TransportFailure(self._late(method)) from None
                if attempt >= max_retries or _permanent(e):
                    self._note_failure(self.policy.backoff(1))
                    raise TransportFailure(failure_text(method, self.host, e)) from None
                delay, reason = self.policy.backoff(attempt + 1), _describe(e)
            else:
                retryable = is_retryable(response.status_code) and attempt < max_retries
                maybe = self._delay_for(attempt + 1, response.headers) if retryable else None
                if maybe is None:
                    self._settled(response.status_code)
                    return response
                response.close()
                delay, reason = maybe, str(response.status_code)
            attempt += 1
            self._back_off(method, reason, delay, attempt)

    def send_body(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        kind: str,
        scope: Scope | None,
        headers: dict[str, str],
        body: Iterable[bytes],
        timeout: httpx.Timeout | None = None,
    ) -> Reply:
        """Send a streamed, one-shot body once (no retry: it cannot be replayed)."""
        with self._slots.hold():
            self._wait_turn()
            request = self.build(
                method, url, kind=kind, headers=headers, content=body, timeout=timeout
            )
            try:
                response = self._send(request, scope, follow_redirects=False)
            except httpx.TransportError as e:
                self._note_failure(self.policy.backoff(1))
                raise TransportFailure(failure_text(method, self.host, e)) from None
            try:
                return self._finish(
                    response, _read_limited(response, MAX_ERROR_BODY, truncate=True)
                )
            except httpx.TransportError as e:
                raise TransportFailure(failure_text(method, self.host, e)) from None
            finally:
                response.close()

    def _fetch_token(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> TokenReply:
        reply = self.request(
            method,
            url,
            kind="token",
            scope=None,
            headers=headers,
            content=body,
            # a redirect would carry the login (a 307 re-POSTs a refresh token) to an origin
            # the registry did not name, past the plain-http realm check: never follow one
            follow_redirects=False,
        )
        return TokenReply(reply.status, reply.body)


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
        raise error(f"response of {int(length)} bytes is over the {limit} byte limit")
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
                raise error(f"response is over the {limit} byte limit")
            parts.append(chunk)
    except _OverLimit:
        if not truncate:
            raise error(f"response is over the {limit} byte limit (decoded)") from None
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
