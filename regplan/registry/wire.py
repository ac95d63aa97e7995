"""HTTP/1.1 on plain sockets: the transport under every registry host's `httpx.Client`.

httpx's own transport sends a request through httpcore's connection pool and h11's state
machine; for a registry's small answers that machinery costs more CPU than the request
itself, and a mirror run sends a hundred thousand of them. This transport keeps httpx's
client (auth flows, redirects, `Response`) and replaces only what is under it: one socket per
request in flight, kept alive per origin, the request written in one `sendall`, the answer's
head and body framed here (RFC 9112: no body for HEAD/1xx/204/304, chunked, Content-Length,
or to the end of the connection) with bounded lines and head size.

Every socket operation is bounded by the request's own timeouts and by the deadline of the
request the calling thread is sending (`deadline`), so a server that trickles bytes cannot
hold a request past its deadline. Failures are httpx's exceptions, with the socket or TLS
error as their cause, so callers see the same errors whichever transport sent a request.
Proxies (HTTPS_PROXY) stay on httpx's own transports, mounted by the client.
"""

from __future__ import annotations

import io
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

from regplan.registry import deadline

MAX_LINE = 64 * 1024  # a status, header or chunk-size line longer than this is refused
MAX_HEAD = 100 * 1024  # status line and headers together (h11 under httpcore allows as much)
READ_SIZE = 64 * 1024  # bytes a body chunk asks the socket for
_SMALL_BODY = 64 * 1024  # bodies up to this size go out in the same write as the head
_WRITE_SLICE = 1024 * 1024  # bytes one timed socket write may carry
_NO_BODY_STATUS = frozenset({204, 304})
_HEX = b"0123456789abcdefABCDEF"


def _timed_out(doing: str) -> str:
    return "the request's deadline passed" if deadline.passed() else f"timed out {doing}"


class _SocketReader(io.RawIOBase):
    """The socket's receiving side, each receive bounded by the read timeout and deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.timeout: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.sock.settimeout(deadline.left(self.timeout, httpx.ReadTimeout))
        try:
            return self.sock.recv_into(buffer)
        except TimeoutError:
            raise httpx.ReadTimeout(_timed_out("reading from the server")) from None
        except OSError as e:
            raise httpx.ReadError(str(e) or type(e).__name__) from e


class _Connection:
    """One kept-alive socket to an origin."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.raw = _SocketReader(sock)
        self.reader = io.BufferedReader(self.raw, READ_SIZE)
        self.idle_since = 0.0
        self.reused = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def stale(self, now: float, expiry: float) -> bool:
        """Whether an idle connection may not be used again: too old, or the server closed
        it (or sent something unasked), which shows as the socket being readable."""
        if now - self.idle_since > expiry:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        # poll, not select: select refuses descriptors above 1024, which a run with many
        # layouts and connections open reaches, and then no connection would be reused
        poller = select.poll()
        try:
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def write(self, data: bytes, timeout: float | None) -> None:
        # a sendall's timeout bounds the whole call: in slices, the write timeout bounds each
        # megabyte (as it bounds each read), not a whole upload piece on a slow link
        view = memoryview(data)
        try:
            for start in range(0, len(view), _WRITE_SLICE):
                self.sock.settimeout(deadline.left(timeout, httpx.WriteTimeout))
                self.sock.sendall(view[start : start + _WRITE_SLICE])
        except TimeoutError:
            raise httpx.WriteTimeout(_timed_out("writing to the server")) from None
        except OSError as e:
            raise httpx.WriteError(str(e) or type(e).__name__) from e

    def readline(self) -> bytes:
        line = self.reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise httpx.RemoteProtocolError("the server sent a line over 64 KiB")
        return line


class _Head:
    """A response's status line and headers, and how its body is framed."""

    __slots__ = ("chunked", "headers", "keep_alive", "length", "reason", "status", "version")

    def __init__(self) -> None:
        self.version = b"HTTP/1.1"
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None  # None: chunked or up to the end of the connection
        self.chunked = False
        self.keep_alive = True


def _read_head(conn: _Connection, method: bytes) -> _Head:
    """Read a response head, skipping interim (1xx) answers."""
    while True:
        head = _read_one_head(conn)
        if not 100 <= head.status < 200 or head.status == 101:
            break
    _frame(head, method)
    return head


def _read_one_head(conn: _Connection) -> _Head:
    try:
        line = conn.readline()
    except httpx.ReadError as e:  # a reset: on a reused connection, the server dropped it
        if conn.reused:
            raise _NoAnswer(str(e)) from e
        raise
    if not line:
        raise _NoAnswer("the server disconnected without sending a response")
    head = _Head()
    parts = line.rstrip(b"\r\n").split(b" ", 2)
    version = parts[0]
    if len(parts) < 2 or not version.startswith(b"HTTP/1.") or len(version) != 8:
        raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    status = parts[1]
    if len(status) != 3 or not status.isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP status: {status[:80]!r}")
    head.version = version
    head.status = int(status)
    head.reason = parts[2] if len(parts) > 2 else b""
    size = len(line)
    headers = head.headers
    while True:
        line = conn.readline()
        size += len(line)
        if size > MAX_HEAD:
            raise httpx.RemoteProtocolError("the server's response head is over 100 KiB")
        if not line:
            raise httpx.RemoteProtocolError("the server disconnected in the response head")
        if line in (b"\r\n", b"\n"):
            return head
        if line[0] in b" \t":  # obsolete line folding: part of the previous value
            if not headers:
                raise httpx.RemoteProtocolError("the response head starts with a folded line")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise httpx.RemoteProtocolError(f"malformed response header: {line[:80]!r}")
        headers.append((name, value.strip()))


def _frame(head: _Head, method: bytes) -> None:
    """How the body of `head` is delimited (RFC 9112 section 6.3), and whether the connection
    may carry another request afterwards."""
    connection: list[bytes] = []
    encodings: list[bytes] = []
    lengths: set[bytes] = set()
    for name, value in head.headers:
        lower = name.lower()
        if lower == b"connection":
            connection += [t.strip().lower() for t in value.split(b",")]
        elif lower == b"transfer-encoding":
            encodings += [t.strip().lower() for t in value.split(b",") if t.strip()]
        elif lower == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
    head.keep_alive = head.version == b"HTTP/1.1" and b"close" not in connection
    if method == b"HEAD" or head.status in _NO_BODY_STATUS or head.status < 200:
        head.length = 0
        return
    if encodings:
        head.chunked = encodings[-1] == b"chunked"
        if not head.chunked or lengths:  # read to the end; a length beside it is a smuggling risk
            head.keep_alive = False
        return
    if lengths:
        if len(lengths) != 1 or not (value := lengths.pop()).isdigit():
            raise httpx.RemoteProtocolError("the server sent an invalid Content-Length")
        head.length = int(value)
        return
    head.keep_alive = False  # the body ends when the server closes the connection


class _NoAnswer(httpx.RemoteProtocolError):
    """The connection closed before any byte of an answer: on a reused connection, the
    server dropped it while idle, and the request may be sent again on a new one."""


class _Body(httpx.SyncByteStream):
    """A response body read off its connection; the connection goes back to the pool once
    the whole body was read, and is closed otherwise."""

    def __init__(
        self, transport: WireTransport, origin: tuple[str, str, int], conn: _Connection, head: _Head
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._conn: _Connection | None = conn
        self._head = head
        self._done = head.length == 0

    def __iter__(self) -> Iterator[bytes]:
        conn = self._conn
        if self._done or conn is None:
            return
        if self._head.chunked:
            yield from self._chunks(conn)
        elif self._head.length is not None:
            yield from self._fixed(conn, self._head.length)
        else:
            while chunk := conn.reader.read1(READ_SIZE):
                yield chunk
        self._done = True

    def _fixed(self, conn: _Connection, length: int) -> Iterator[bytes]:
        left = length
        while left:
            chunk = conn.reader.read1(min(left, READ_SIZE))
            if not chunk:
                raise httpx.RemoteProtocolError(
                    f"the server closed the connection {length - left} bytes into a "
                    f"{length}-byte body"
                )
            left -= len(chunk)
            yield chunk

    def _chunks(self, conn: _Connection) -> Iterator[bytes]:
        while True:
            line = conn.readline()
            size_text = line.split(b";", 1)[0].strip()
            # int() would also take "0x1f", "+1f" and "1_f"
            if not line.endswith(b"\n") or not 0 < len(size_text) <= 16 or size_text.strip(_HEX):
                raise httpx.RemoteProtocolError(f"malformed chunk size: {line[:80]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            yield from self._fixed(conn, size)
            if conn.readline() not in (b"\r\n", b"\n"):
                raise httpx.RemoteProtocolError("a chunk does not end where its size says")
        trailer = 0
        while (line := conn.readline()) not in (b"\r\n", b"\n"):
            trailer += len(line)
            if not line or trailer > MAX_HEAD:
                raise httpx.RemoteProtocolError("malformed chunked body trailer")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._head.keep_alive:
            self._transport.release(self._origin, conn)
        else:
            conn.close()


class WireTransport(httpx.BaseTransport):
    """Sends httpx requests over kept-alive HTTP/1.1 connections, at most `max_idle` of them
    idle per origin for up to `keepalive_expiry` seconds. Thread-safe."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext],
        *,
        max_idle: int = 20,
        keepalive_expiry: float = 30.0,
    ) -> None:
        # a callable is asked on the first TLS connection: a plain-HTTP host builds no context
        # (loading the CA store is a tenth of a short run) unless it redirects to https
        self._ssl = ssl_context
        self._max_idle = max_idle
        self._expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        head_bytes = _request_head(request)
        body: bytes | Iterable[bytes]
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):  # bytes: httpx sent its Content-Length
            body = b"".join(stream)
        elif isinstance(stream, httpx.SyncByteStream):
            chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
            body = _chunk_encoded(stream) if chunked else stream
        else:
            raise TypeError("an async request body on a sync transport")
        while True:
            conn = self._connection(origin, timeouts)
            try:
                head = self._exchange(conn, request, head_bytes, body, timeouts)
            except _NoAnswer:
                conn.close()
                if conn.reused and isinstance(body, bytes):
                    continue  # dropped while idle: once more on a fresh connection
                raise
            except BaseException:
                conn.close()
                raise
            return httpx.Response(
                head.status,
                headers=head.headers,
                stream=_Body(self, origin, conn, head),
                extensions={"http_version": head.version, "reason_phrase": head.reason},
                request=request,
            )

    def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        head_bytes: bytes,
        body: bytes | Iterable[bytes],
        timeouts: dict[str, float | None],
    ) -> _Head:
        write_timeout = timeouts.get("write")
        conn.raw.timeout = timeouts.get("read")
        try:
            if isinstance(body, bytes):
                if len(body) <= _SMALL_BODY:
                    conn.write(head_bytes + body, write_timeout)
                else:
                    conn.write(head_bytes, write_timeout)
                    conn.write(body, write_timeout)
            else:
                conn.write(head_bytes, write_timeout)
                for chunk in body:
                    if chunk:
                        conn.write(chunk, write_timeout)
        except httpx.WriteError as e:
            # the server may have answered (a 401, a 413) and closed before taking the whole
            # body: its answer says more than the broken pipe does
            try:
                return _read_head(conn, request.method.encode())
            except httpx.TransportError:
                if conn.reused and isinstance(body, bytes):
                    raise _NoAnswer(str(e)) from e
                raise e from e.__cause__
        return _read_head(conn, request.method.encode())

    def _connection(
        self, origin: tuple[str, str, int], timeouts: dict[str, float | None]
    ) -> _Connection:
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                conn = idle.pop() if idle else None
            if conn is None:
                return self._connect(origin, timeouts.get("connect"))
            if not conn.stale(now, self._expiry):  # its poll outside the lock others wait on
                conn.reused = True
                return conn
            conn.close()

    def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        try:
            sock = socket.create_connection(
                (host, port), deadline.left(timeout, httpx.ConnectTimeout)
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(_timed_out(f"connecting to {host}:{port}")) from None
        except OSError as e:
            raise httpx.ConnectError(str(e) or type(e).__name__) from e
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock.settimeout(deadline.left(timeout, httpx.ConnectTimeout))
                context = self._ssl if isinstance(self._ssl, ssl.SSLContext) else self._ssl()
                sock = context.wrap_socket(sock, server_hostname=host)
        except TimeoutError:
            sock.close()
            raise httpx.ConnectTimeout(
                _timed_out(f"in the TLS handshake with {host}:{port}")
            ) from None
        except OSError as e:  # ssl.SSLError included: its reason tells plain HTTP apart
            sock.close()
            raise httpx.ConnectError(str(e) or type(e).__name__) from e
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def release(self, origin: tuple[str, str, int], conn: _Connection) -> None:
        """Keep a connection whose answer was read to its end, for the origin's next request."""
        conn.idle_since = time.monotonic()
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if self._closed or len(idle) >= self._max_idle:
                conn.close()
                return
            idle.append(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers. A CR, LF or NUL in any of them (a token a hostile
    server handed out, a tag name) would split the message: refused instead."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw]
    lines.append(b"\r\n")
    head = b"".join(lines)
    if head.count(b"\n") != len(lines) or head.count(b"\r") != len(lines) or b"\0" in head:
        raise httpx.LocalProtocolError("a request header contains a line break or NUL")
    return head


def _chunk_encoded(chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
    yield b"0\r\n\r\n"
