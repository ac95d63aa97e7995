"""A registry on 127.0.0.1 that serves whatever a test tells it to: manifests a real registry
would refuse to store (invalid JSON, oversized, unknown media types, self-referencing indexes,
bytes that do not match their digest) and tag lists full of hostile names. Read-only: any
write is answered 405 and recorded in `writes`, so a test can prove nothing was written."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.reliability.images import ImageSet, make_images, push_images
from tests.servers.distribution import RegistryServer
from tests.servers.net import LOOPBACK


@dataclass
class Served:
    body: bytes
    media_type: str
    digest: str = ""  # Docker-Content-Digest to claim; "" = the body's real digest
    length: int | None = None  # Content-Length to claim; None = the real length; -1 = chunked

    @property
    def claimed_digest(self) -> str:
        return self.digest or "sha256:" + hashlib.sha256(self.body).hexdigest()


@dataclass
class Repo:
    manifests: dict[str, Served] = field(default_factory=dict)  # tag or digest -> manifest
    tags: list[str] | None = None  # None: the tags among `manifests` keys


class HostileRegistry:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.writes: list[str] = []
        self.requests: list[str] = []
        owner = self

        class Handler(_Handler):
            registry = owner

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    def __enter__(self) -> HostileRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    registry: HostileRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                length: int | None = None) -> None:  # fmt: skip
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if length == -1:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if length == -1:
            for i in range(0, len(body), 65536):
                piece = body[i : i + 65536]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.registry.requests.append(f"{self.command} {path}")
        if path in ("/v2/", "/v2"):
            self._answer(200, b"{}", {"Content-Type": "application/json"})
            return
        for name, repo in self.registry.repos.items():
            prefix = f"/v2/{name}/"
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if rest == "tags/list":
                tags = repo.tags if repo.tags is not None else [
                    t for t in repo.manifests if not t.startswith("sha256:")
                ]  # fmt: skip
                import json

                body = json.dumps({"name": name, "tags": tags}).encode()
                self._answer(200, body, {"Content-Type": "application/json"})
                return
            if rest.startswith("manifests/"):
                reference = rest[len("manifests/") :]
                served = repo.manifests.get(reference) or next(
                    (m for m in repo.manifests.values() if m.claimed_digest == reference), None
                )  # a manifest is also served under the digest it claims
                if served is None:
                    break
                self._answer(
                    200,
                    served.body,
                    {"Content-Type": served.media_type,
                     "Docker-Content-Digest": served.claimed_digest},
                    length=served.length,
                )  # fmt: skip
                return
        self._answer(404, b'{"errors":[{"code":"NOT_FOUND","message":"not here"}]}')

    do_HEAD = do_GET

    def _refuse(self) -> None:
        self.registry.writes.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._answer(405, b"")

    do_PUT = do_POST = do_PATCH = do_DELETE = _refuse


@contextmanager
def beside_real_registries(
    base: Path, source: str, *, seed: int, images: int
) -> Iterator[tuple[RegistryServer, RegistryServer, HostileRegistry, ImageSet]]:
    """A real registry holding `images` generated images as repository `good` (storage in
    `base/source`), a real target (`base/target`) and a HostileRegistry, serving until the
    block ends."""
    with (
        RegistryServer(base / source) as real_source,
        RegistryServer(base / "target") as target,
        HostileRegistry() as hostile,
    ):
        made = make_images(base / "layout", seed=seed, images=images, layers=1, index_every=0)
        push_images(made, real_source, "good")
        yield real_source, target, hostile, made
