"""A fault-injecting HTTP proxy between regplan and a real registry, on 127.0.0.1.

regplan is configured with the proxy's address as the registry host; the proxy forwards every
request to the upstream registry (keeping the `Host` header, so the registry's upload
`Location`s point back at the proxy) and, for requests a `Fault` matches, misbehaves instead:

- `status`: answer N, e.g. 500/502/503, without forwarding (or after forwarding, with
  `forward=True`: the registry did the work but the answer was lost);
- `rate_limit`: 429 with a `Retry-After`;
- `delay`: wait, then forward;
- `reset`: send the headers and part of the body, then reset the connection (RST); an
  answer without a body is forwarded to the registry and then reset before its status line;
- `truncate`: announce the full Content-Length, send part of the body, close cleanly (FIN);
- `corrupt`: flip one byte of the body, keeping its length and the registry's
  `Docker-Content-Digest` (a manifest or blob whose bytes do not match its digest);
- `redirect`: 307 to another origin (`location` + the request path);
- `hook`: call a function (e.g. restart the upstream), then forward.

A fault applies to the first `times` matching requests after skipping `skip` of them
(`times=-1`: all). Every request is recorded in `seen` (method, path, status, fault, headers),
so tests can count what regplan sent. When the upstream is down the client's connection is
reset, as it would be by the registry itself.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.servers.net import BackgroundHTTPServer, QuietHandler

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    }
)


@dataclass
class Fault:
    """What to do to requests matching `method` (None: any) and the `path` regex (searched)."""

    action: str  # status | rate_limit | delay | reset | truncate | corrupt | redirect | hook
    path: str = ""
    method: str | None = None
    times: int = 1
    skip: int = 0
    status: int = 503
    retry_after: str = "1"
    delay: float = 0.0
    fraction: float = 0.5  # reset/truncate: share of the body sent first
    forward: bool = False  # status: forward first, then replace the answer
    location: str = ""  # redirect: origin to redirect to, e.g. "http://127.0.0.1:1234"
    hook: Callable[[], None] | None = None
    message: str = "injected fault"  # status: the registry error message (hostile texts too)
    applied: int = 0  # how many requests this fault hit
    _matched: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return re.search(self.path, path) is not None

    def take(self) -> bool:
        """Count a matching request; True when the fault applies to it."""
        self._matched += 1
        if self._matched <= self.skip:
            return False
        if self.times >= 0 and self.applied >= self.times:
            return False
        self.applied += 1
        return True


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    status: int  # what the client was sent (0: connection reset before a status)
    fault: str  # the fault's action, "" when forwarded untouched
    headers: dict[str, str] = field(repr=False)
    body_size: int = 0


class _Reset(Exception):
    """Abort the connection with RST."""


class FaultProxy(BackgroundHTTPServer):
    """Forwards to `upstream` ("127.0.0.1:PORT", plain HTTP). Use as a context manager."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    # -- addresses (host and url: BackgroundHTTPServer's) -------------------------------------
    @property
    def port(self) -> int:
        return self.bound_port

    # -- faults -------------------------------------------------------------------------------
    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.seen.clear()

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path) and fault.take():
                    return fault
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def requests(self, method: str | None = None, path: str = "") -> list[Seen]:
        with self._lock:
            return [
                s
                for s in self.seen
                if (method is None or s.method == method) and re.search(path, s.path)
            ]

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._listen(Handler, name="fault-proxy")
        return self


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream) as proxy:
        yield proxy


class _Handler(QuietHandler):
    owner: FaultProxy

    def handle(self) -> None:
        try:
            super().handle()
        except _Reset:
            self.close_connection = True
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            except OSError:
                pass

    def route(self) -> None:
        self._proxy()

    def _proxy(self) -> None:
        owner = self.owner
        split = urllib.parse.urlsplit(self.path)
        method, path, query = self.command, split.path, split.query
        request_headers = {k: v for k, v in self.headers.items()}
        body = self.read_body()
        fault = owner._fault_for(method, path)
        action = fault.action if fault else ""

        def record(status: int) -> None:
            owner._record(Seen(method, path, query, status, action, request_headers, len(body)))

        if fault is not None and action == "delay":
            time.sleep(fault.delay)
        if fault is not None and action == "hook" and fault.hook is not None:
            fault.hook()
        if fault is not None and action in ("status", "rate_limit") and not fault.forward:
            status = 429 if action == "rate_limit" else fault.status
            record(status)
            self._send_error(status, fault)
            return
        if fault is not None and action == "redirect":
            record(307)
            self.send_response(307)
            self.send_header("Location", fault.location.rstrip("/") + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            status, reason, headers, payload = self._forward(method, body)
        except OSError:
            record(0)
            raise _Reset() from None
        if fault is not None and action in ("status", "rate_limit"):  # forwarded: answer lost
            record(fault.status)
            self._send_error(fault.status, fault)
            return
        if fault is not None and action == "reset" and (not payload or method == "HEAD"):
            # a bodiless answer would be complete before the RST: reset before the status
            record(0)
            raise _Reset()
        if fault is not None and action == "corrupt" and payload:
            i = len(payload) // 2
            payload = payload[:i] + bytes([payload[i] ^ 0x01]) + payload[i + 1 :]
        record(status)
        self.send_response(status, reason)
        for key, value in headers:
            if key.lower() in _HOP_BY_HOP or key.lower() == "content-length":
                continue
            self.send_header(key, value)
        length = _content_length(headers) if method == "HEAD" else str(len(payload))
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if method == "HEAD":
            return
        if fault is not None and action in ("reset", "truncate"):
            cut = max(1, int(len(payload) * fault.fraction)) if payload else 0
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            if action == "reset":
                raise _Reset()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
            return
        self.wfile.write(payload)

    def _send_error(self, status: int, fault: Fault) -> None:
        error = {"code": "UNAVAILABLE", "message": fault.message}
        body = json.dumps({"errors": [error]}).encode()
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", fault.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, method: str, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        host, _, port = self.owner.upstream.partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
            }
            if body or method in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            conn.request(method, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            return response.status, response.reason, response.getheaders(), payload
        finally:
            conn.close()


def _content_length(headers: list[tuple[str, str]]) -> str | None:
    for key, value in headers:
        if key.lower() == "content-length":
            return value
    return None
