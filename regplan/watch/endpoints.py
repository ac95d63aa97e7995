"""The server's HTTP listener: `/healthz`, `/readyz` and `/metrics`.

- `/healthz`: 200 while the process serves requests (liveness).
- `/readyz`: 200 once the initial pass finished; 503 before it and while stopping (readiness).
- `/metrics`: Prometheus text format from the server's own CollectorRegistry.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow scraper never holds up shutdown
    block_on_close = False


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
    ) -> None:
        """`not_ready()` returns why the server is not ready, or None when it is."""
        self._address = parse_listen(listen)
        self._metrics = metrics
        self._not_ready = not_ready
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
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
                    self._reply(HTTPStatus.OK, b"ok\n", body=body)
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
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler
