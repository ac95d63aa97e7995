"""Requests to one host reuse its connections: a HEAD answer (no body, whatever its
Content-Length says) is read to its end, so the connection goes back to the pool instead of
being closed, and no request pays a new TCP (or TLS) handshake."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from regplan.config.hosts import Host, TLSMode
from regplan.refs import ImageRef
from regplan.registry.api import RequestCounter
from regplan.registry.http import HTTPBackend
from tests.servers.net import LOOPBACK

DIGEST = "sha256:" + "a" * 64


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as registries speak

    def setup(self) -> None:  # once per connection
        super().setup()
        assert isinstance(self.server, _CountingServer)
        self.server.connections += 1

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Docker-Content-Digest", DIGEST)
        self.send_header("Content-Length", "1234")  # the manifest's size; no body follows
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_CountingServer]:
    httpd = _CountingServer((LOOPBACK, 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_manifest_heads_reuse_one_connection(server: _CountingServer) -> None:
    host = f"{LOOPBACK}:{server.server_address[1]}"
    counter = RequestCounter()
    backend = HTTPBackend([Host(name=host, tls=TLSMode.DISABLED)], counter=counter)
    try:
        for _ in range(20):
            head = backend.manifest_head(ImageRef.parse(f"{host}/app:v1"))
            assert head is not None and head.digest == DIGEST and head.size == 1234
    finally:
        backend.close_all()
    assert counter.total() == 20
    assert server.connections == 1
