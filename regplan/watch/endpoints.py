"""The server's HTTP listener: `/healthz`, `/readyz` and `/metrics`.

- `/healthz`: 200 while the process serves requests and its loops turn (liveness).
- `/readyz`: 200 once every step's initial run is over; 503 before and while stopping.
- `/metrics`: Prometheus text format from the server's own CollectorRegistry.

Connections cost no thread while they are idle: accepted sockets wait in one selector until
a request arrives, a small fixed pool answers it and closes the connection, and a socket
idle for IDLE_TIMEOUT (or the oldest beyond MAX_IDLE) is closed. So 400 idle clients hold
400 sockets and no threads, and a probe is still answered.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from regplan import logs
from regplan.errors import RegplanError

log = logs.get(__name__)


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise RegplanError(f'invalid --listen "{text}": expected HOST:PORT, [IPv6]:PORT or :PORT')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise RegplanError(f'invalid --listen "{text}": put an IPv6 address in brackets')
    return host, int(port)


WORKERS = 4  # threads answering requests
IDLE_TIMEOUT = 10.0  # seconds a connection may stay open without sending a request
READ_TIMEOUT = 5.0  # seconds per read once a request started (a slow sender)
MAX_IDLE = 256  # open connections waiting for a request; beyond, the oldest is closed


class _Server(HTTPServer):
    """Hands a connection to the worker pool only once it has something to read."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="http")
        self._selector = selectors.DefaultSelector()
        self._idle: dict[socket.socket, tuple[Any, float]] = {}  # -> (address, accepted at)
        self._idle_lock = threading.Lock()
        self._closed = threading.Event()
        self._waiter = threading.Thread(target=self._wait_loop, name="http-idle", daemon=True)
        super().__init__(address, handler)  # a failed bind calls server_close: set up first
        self._waiter.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._idle_lock:
            while len(self._idle) >= MAX_IDLE:
                oldest = min(self._idle, key=lambda s: self._idle[s][1])
                self._drop(oldest)
            self._idle[request] = (client_address, time.monotonic())
            self._selector.register(request, selectors.EVENT_READ)

    def _drop(self, sock: socket.socket) -> None:
        del self._idle[sock]
        self._selector.unregister(sock)
        self.shutdown_request(sock)

    def _wait_loop(self) -> None:
        while not self._closed.is_set():
            # epoll sees sockets registered while it waits; the timeout only ages idle ones
            events = self._selector.select(timeout=0.5)
            now = time.monotonic()
            with self._idle_lock:
                for key, _ in events:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    address, _ = self._idle.pop(sock)
                    self._selector.unregister(sock)
                    self._pool.submit(self._answer, sock, address)
                for sock in [s for s, (_, t) in self._idle.items() if now - t > IDLE_TIMEOUT]:
                    self._drop(sock)

    def _answer(self, sock: socket.socket, address: Any) -> None:
        try:
            self.finish_request(sock, address)
        except Exception:
            self.handle_error(sock, address)
        finally:
            self.shutdown_request(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http connection failed", client=str(client_address))

    def server_close(self) -> None:
        self._closed.set()
        if self._waiter.is_alive():
            self._waiter.join(timeout=2)
        with self._idle_lock:
            for sock in list(self._idle):
                self._drop(sock)
        self._selector.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().server_close()


class _Server6(_Server):
    address_family = socket.AF_INET6


class Endpoints:
    """Serves the three endpoints on a thread of its own."""

    def __init__(
        self,
        listen: str,
        *,
        metrics: Callable[[], bytes],
        not_ready: Callable[[], str | None],
        not_live: Callable[[], str | None] = lambda: None,
    ) -> None:
        """`not_ready()` / `not_live()` return why the server is not ready / not live, or None."""
        self._address = parse_listen(listen)
        self._metrics = metrics
        self._not_ready = not_ready
        self._not_live = not_live
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> None:
        host, port = self._address
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = server_class((host, port), self._handler())
        except OSError as e:
            raise RegplanError(f"cannot listen on {host or '*'}:{port}: {e.strerror}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="http",
            daemon=True,
        )
        self._thread.start()
        log.info("Serving health and metrics", address=self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "regplan"
            protocol_version = "HTTP/1.1"
            # errors the stdlib answers itself (unknown method, bad request line): plain text
            error_content_type = "text/plain; charset=utf-8"
            error_message_format = "%(code)d %(message)s\n"
            timeout = READ_TIMEOUT  # per read: a client that stops sending is dropped

            def log_message(self, format: str, *args: object) -> None:
                log.trace("http request", request=format % args)

            def do_GET(self) -> None:
                self._serve(body=True)

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def _not_allowed(self) -> None:
                # read-only endpoints: say which methods work, in text, not an HTML 501 page
                self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
                data = b"method not allowed: use GET or HEAD\n"
                self.send_header("Allow", "GET, HEAD")
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")  # a request body may follow, unread
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

            def _serve(self, *, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    why = endpoints._not_live()
                    if why is None:
                        self._reply(HTTPStatus.OK, b"ok\n", body=body)
                    else:
                        self._reply(
                            HTTPStatus.SERVICE_UNAVAILABLE,
                            f"not live: {why}\n".encode(),
                            body=body,
                        )
                elif path == "/readyz":
                    why = endpoints._not_ready()
                    if why is None:
                        self._reply(HTTPStatus.OK, b"ready\n", body=body)
                    else:
                        self._reply(
                            HTTPStatus.SERVICE_UNAVAILABLE,
                            f"not ready: {why}\n".encode(),
                            body=body,
                        )
                elif path == "/metrics":
                    self._reply(HTTPStatus.OK, endpoints._metrics(), CONTENT_TYPE_LATEST, body=body)
                else:
                    self._reply(HTTPStatus.NOT_FOUND, b"not found\n", body=body)

            def _reply(
                self,
                status: HTTPStatus,
                data: bytes,
                content_type: str = "text/plain; charset=utf-8",
                *,
                body: bool,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                # one request per connection: a kept-alive idle client would hold a worker
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler
