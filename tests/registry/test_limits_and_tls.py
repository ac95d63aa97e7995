"""Per-host limits (reqConcurrent, reqPerSec) and client TLS contexts (regcert, mTLS)."""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from regplan.config.hosts import Host
from regplan.errors import RegistryError
from regplan.refs import ImageRef
from regplan.registry.http import HTTPBackend
from regplan.registry.transport import ssl_context
from tests.servers.certs import CertificateAuthority, IssuedCert, issue_cert

from .mock import REG, backend


def test_req_concurrent_bounds_requests_in_flight() -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json={"tags": []})

    be = backend(handler, Host(name=REG, req_concurrent=2))
    ref = ImageRef.parse(f"{REG}/a:v1")
    threads = [threading.Thread(target=be.tag_list, args=(ref,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["max"] == 2


def test_req_per_sec_paces_requests() -> None:
    be = backend(lambda r: httpx.Response(200, json={"tags": []}), Host(name=REG, req_per_sec=50))
    ref = ImageRef.parse(f"{REG}/a:v1")
    start = time.monotonic()
    for _ in range(6):
        be.tag_list(ref)
    assert time.monotonic() - start >= 5 / 50 * 0.9


def test_client_key_written_privately_and_removed(
    test_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = issue_cert(
        test_ca, tmp_path_factory.mktemp("client"), "client", sans=(), extended_usage="clientAuth"
    )
    made: list[str] = []
    real = tempfile.mkstemp

    def spy(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, path = real(*args, **kwargs)  # type: ignore[call-overload]
        made.append(path)
        return fd, path

    monkeypatch.setattr("regplan.registry.transport.tempfile.mkstemp", spy)
    host = Host(
        name="r", client_cert=client.cert_file.read_text(), client_key=client.key_file.read_text()
    )
    assert isinstance(ssl_context(host), ssl.SSLContext)
    assert made and not any(os.path.exists(p) for p in made)
    with pytest.raises(RegistryError, match="clientCert and clientKey"):
        ssl_context(Host(name="r", client_cert=client.cert_file.read_text()))
    with pytest.raises(RegistryError, match="invalid regcert"):
        ssl_context(Host(name="r", regcert="not a pem"))


class _NotFound(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def mtls_server(server_cert: IssuedCert) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 that demands a client certificate from the test CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert.cert_file, server_cert.key_file)
    context.load_verify_locations(server_cert.ca.cert_file)
    context.verify_mode = ssl.CERT_REQUIRED
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_mutual_tls(
    mtls_server: str, server_cert: IssuedCert, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = issue_cert(
        server_cert.ca,
        tmp_path_factory.mktemp("mtls-client"),
        "client",
        sans=(),
        extended_usage="clientAuth",
    )
    ref = ImageRef.parse(f"{mtls_server}/app:v1")
    ca = server_cert.ca.pem
    with_cert = HTTPBackend(
        [
            Host(
                name=mtls_server,
                regcert=ca,
                client_cert=client.cert_file.read_text(),
                client_key=client.key_file.read_text(),
            )
        ]
    )
    assert with_cert.manifest_head(ref) is None  # the handshake passed; the server says 404
    without = HTTPBackend([Host(name=mtls_server, regcert=ca)], max_retries=0)
    with pytest.raises(RegistryError, match=mtls_server.replace(".", r"\.")):
        without.manifest_head(ref)
