"""Blob redirects on real sockets: Authorization must not follow a redirect to another origin
(object storage), and may follow one within the registry's origin. Two tiny HTTP servers on
127.0.0.1 stand for the registry and the storage; httpx's own redirect handling is checked."""

from __future__ import annotations

import base64
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from regplan.config.hosts import Host, TLSMode
from regplan.errors import RegplanError
from regplan.refs import ImageRef
from regplan.registry.http import HTTPBackend
from regplan.registry.transport import _shared_default_context
from tests.servers.certs import IssuedCert

from .mock import blob_desc

BLOB = b"layer bytes " * 1000
BASIC = "Basic " + base64.b64encode(b"user:pw").decode()


class Recording(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str]] = []  # (path, Authorization)
        self.redirect_to = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recording

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.server.seen.append((self.path, auth))
        if self.path.startswith("/v2/") and auth != BASIC:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/v2/") and self.server.redirect_to:
            self.send_response(307)
            self.send_header("Location", self.server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BLOB)))
        self.end_headers()
        self.wfile.write(BLOB)


@pytest.fixture
def servers() -> Iterator[tuple[Recording, Recording]]:
    registry, storage = Recording(), Recording()
    threads = [
        threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True)
        for s in (registry, storage)
    ]
    for t in threads:
        t.start()
    try:
        yield registry, storage
    finally:
        for s in (registry, storage):
            s.shutdown()
            s.server_close()


def read_blob(registry: Recording) -> bytes:
    be = HTTPBackend(
        [Host(name=registry.address, tls=TLSMode.DISABLED, user="user", password="pw")],
        retry_delay=0.001,
    )
    try:
        with be.blob_get(ImageRef.parse(f"{registry.address}/repo:v1"), blob_desc(BLOB)) as s:
            return b"".join(s)
    finally:
        be.close_all()


def test_authorization_dropped_on_redirect_to_another_port(
    servers: tuple[Recording, Recording],
) -> None:
    registry, storage = servers
    registry.redirect_to = f"http://{storage.address}/bucket/blob?X-Amz-Signature=abc"
    assert read_blob(registry) == BLOB
    assert [auth for _, auth in registry.seen] == ["", BASIC]
    assert storage.seen == [("/bucket/blob?X-Amz-Signature=abc", "")]


def test_authorization_kept_on_same_origin_redirect(servers: tuple[Recording, Recording]) -> None:
    registry, _ = servers
    registry.redirect_to = f"http://{registry.address}/storage/blob"
    assert read_blob(registry) == BLOB
    assert registry.seen[-1] == ("/storage/blob", BASIC)


def test_a_plain_http_registry_builds_no_tls_context_until_it_redirects_to_https(
    servers: tuple[Recording, Recording], server_cert: IssuedCert
) -> None:
    # loading the CA store is a tenth of a short run: a plain-HTTP registry never needs it,
    # unless it sends a blob to https storage, which is then verified like any https host
    registry, storage = servers
    _shared_default_context.cache_clear()
    assert read_blob(registry) == BLOB
    assert _shared_default_context.cache_info().currsize == 0

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(server_cert.cert_file, server_cert.key_file)
    storage.socket = tls.wrap_socket(storage.socket, server_side=True)
    registry.redirect_to = f"https://{storage.address}/bucket/blob"
    with pytest.raises(RegplanError, match="certificate"):  # the test CA is not a system CA
        read_blob(registry)
    assert _shared_default_context.cache_info().currsize == 1
