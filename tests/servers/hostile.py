"""A small malicious registry on 127.0.0.1: well-formed answers meant to exhaust memory or time.

It serves one repository (`app`, tag `v1`: an OCI image with a config and one small layer)
honestly, except where its `Mode` says otherwise:

- `GZIP_BOMB`: manifest GETs answer `Content-Encoding: gzip, gzip` — 5 KB that inflate to 2 GiB;
- `DRIP_BODY` / `DRIP_HEADERS`: manifest answers (and tag lists) sent one byte every
  `drip` seconds, in the body or already in the status line and headers;
- `DRIP_BLOB`: blob GETs sent one byte every `drip` seconds;
- `TAG_FLOOD` / `CATALOG_FLOOD` / `REFERRERS_FLOOD`: a `Link: rel="next"` chain that never
  ends, each page `page_size` new names (or descriptors);
- `TAG_LOOP` / `CATALOG_LOOP` / `REFERRERS_LOOP`: page 2's next link points back at page 1;
- `TOKEN_SELF_REDIRECT`: bearer auth whose realm redirects to itself;
- `TOKEN_REDIRECT_AWAY`: bearer auth whose realm answers 307 to `redirect_to` (another origin).

Every request is recorded in `seen` (method, path, query, headers, body).
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
import struct
import threading
import urllib.parse
import zlib
from dataclasses import dataclass, field
from enum import StrEnum

from tests.servers.net import BackgroundHTTPServer, QuietHandler
from tests.servers.tinyimage import one_layer_manifest

REPO = "app"
TAG = "v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class Mode(StrEnum):
    HONEST = "honest"
    GZIP_BOMB = "gzip-bomb"
    DRIP_BODY = "drip-body"
    DRIP_HEADERS = "drip-headers"
    DRIP_BLOB = "drip-blob"
    TAG_FLOOD = "tag-flood"
    TAG_LOOP = "tag-loop"
    CATALOG_FLOOD = "catalog-flood"
    CATALOG_LOOP = "catalog-loop"
    REFERRERS_FLOOD = "referrers-flood"
    REFERRERS_LOOP = "referrers-loop"
    TOKEN_SELF_REDIRECT = "token-self-redirect"
    TOKEN_REDIRECT_AWAY = "token-redirect-away"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(default=b"", repr=False)


@functools.cache
def gzip_bomb(gib: int = 2) -> bytes:
    """`gzip(gzip(zeros))` of `gib` GiB: a deflate block of 1 MiB of zeros, repeated (a full
    flush resets the compressor, so every block is the same bytes), then gzipped again."""
    zeros = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(gib * 1024):
        crc = zlib.crc32(zeros, crc)
    raw = first + block * (gib * 1024 - 1) + deflate.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    inner = header + raw + struct.pack("<II", crc, (gib << 30) & 0xFFFFFFFF)
    outer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return outer.compress(inner) + outer.flush()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostileRegistry(BackgroundHTTPServer):
    """Use as a context manager; `host` is "127.0.0.1:PORT" (plain HTTP)."""

    def __init__(
        self,
        mode: Mode = Mode.HONEST,
        *,
        drip: float = 0.5,
        page_size: int = 20_000,
        redirect_to: str = "",
    ) -> None:
        self.mode = mode
        self.drip = drip
        self.page_size = page_size
        self.redirect_to = redirect_to
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        config = b'{"architecture":"amd64","os":"linux","config":{}}'
        layer = b"hostile layer\n" * 64
        self.blobs = {_digest(config): config, _digest(layer): layer}
        self.manifest = one_layer_manifest(config, layer)
        self.manifest_digest = _digest(self.manifest)

    def requests(self, path: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if path in s.path]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def start(self) -> HostileRegistry:
        owner = self

        class Handler(_Handler):
            registry = owner

        self._listen(Handler, name="hostile-registry")
        return self

    def stop(self) -> None:
        self.stopping.set()  # ends drips, so shutdown does not wait for them
        super().stop()


class _Handler(QuietHandler):
    registry: HostileRegistry
    dropped = (OSError,)  # drips end in broken pipes and resets

    def route(self) -> None:
        self._route()

    # -- plumbing -----------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        drip_body: bool = False,
        drip_headers: bool = False,
    ) -> None:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        all_headers = {"Content-Length": str(len(body)), **(headers or {})}
        lines += [f"{k}: {v}" for k, v in all_headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        payload = b"" if self.command == "HEAD" else body
        if drip_headers:
            self._drip(head + payload)
        elif drip_body:
            self.wfile.write(head)
            self.wfile.flush()
            self._drip(payload)
        else:
            self.wfile.write(head + payload)

    def _drip(self, data: bytes) -> None:
        """One byte every `drip` seconds until done or the server stops."""
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            if self.registry.stopping.wait(self.registry.drip):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return

    def _json(self, status: int, data: object, headers: dict[str, str] | None = None) -> None:
        self._send(
            status,
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    # -- routes -------------------------------------------------------------------------------
    def _route(self) -> None:
        reg = self.registry
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, urllib.parse.parse_qs(split.query)
        reg.record(Seen(self.command, path, split.query, dict(self.headers.items()), self._body()))
        if path == "/token":
            return self._token()
        if reg.mode in (
            Mode.TOKEN_SELF_REDIRECT,
            Mode.TOKEN_REDIRECT_AWAY,
        ) and not self.headers.get("Authorization", "").startswith("Bearer "):
            realm = f"{reg.url}/token"
            return self._json(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "token required"}]},
                {"WWW-Authenticate": f'Bearer realm="{realm}",service="hostile"'},
            )
        if path in ("/v2/", "/v2"):
            return self._json(200, {})
        if path == "/v2/_catalog":
            return self._listing(
                "repositories", path, query, (Mode.CATALOG_FLOOD, Mode.CATALOG_LOOP), [REPO]
            )
        prefix = f"/v2/{REPO}/"
        if not path.startswith(prefix):
            return self._json(
                404, {"errors": [{"code": "NAME_UNKNOWN", "message": "no such repo"}]}
            )
        rest = path[len(prefix) :]
        if rest == "tags/list":
            return self._listing("tags", path, query, (Mode.TAG_FLOOD, Mode.TAG_LOOP), [TAG])
        if rest.startswith("manifests/"):
            return self._manifest(rest.removeprefix("manifests/"))
        if rest.startswith("blobs/"):
            return self._blob(rest.removeprefix("blobs/"))
        if rest.startswith("referrers/"):
            return self._referrers(path, query)
        return self._json(404, {"errors": [{"code": "NOT_FOUND", "message": "no route"}]})

    def _manifest(self, reference: str) -> None:
        reg = self.registry
        if reference not in (TAG, reg.manifest_digest):
            return self._json(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "none"}]})
        headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": reg.manifest_digest}
        if reg.mode == Mode.GZIP_BOMB and self.command == "GET":
            headers["Content-Encoding"] = "gzip, gzip"
            return self._send(200, gzip_bomb(), headers)
        self._send(
            200,
            reg.manifest,
            headers,
            drip_body=reg.mode == Mode.DRIP_BODY,
            drip_headers=reg.mode == Mode.DRIP_HEADERS,
        )

    def _blob(self, digest: str) -> None:
        reg = self.registry
        data = reg.blobs.get(digest)
        if data is None:
            return self._json(404, {"errors": [{"code": "BLOB_UNKNOWN", "message": "none"}]})
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        self._send(200, data, headers, drip_body=reg.mode == Mode.DRIP_BLOB)

    def _listing(
        self,
        key: str,
        path: str,
        query: dict[str, list[str]],
        modes: tuple[Mode, Mode],
        honest: list[str],
    ) -> None:
        reg = self.registry
        flood = modes[0]
        if reg.mode not in modes:
            return self._send(
                200,
                json.dumps({key: honest, "name": REPO}).encode(),
                {"Content-Type": "application/json"},
                drip_body=reg.mode == Mode.DRIP_BODY and key == "tags",
            )
        page = int(query.get("page", ["1"])[0])
        if reg.mode == flood:
            names = [f"p{page}-{i}" for i in range(reg.page_size)]
            following = page + 1
        else:  # loop: the first page -> page 2 -> the first page again
            names = [f"loop-{page}"]
            following = 2 if page == 1 else 1
        self._json(200, {key: names, "name": REPO}, {"Link": _next(path, following)})

    def _referrers(self, path: str, query: dict[str, list[str]]) -> None:
        reg = self.registry
        page = int(query.get("page", ["1"])[0])
        if reg.mode == Mode.REFERRERS_FLOOD:
            count, following = reg.page_size, page + 1
        elif reg.mode == Mode.REFERRERS_LOOP:
            count, following = 1, 2 if page == 1 else 1
        else:
            return self._json(
                200,
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []},
                {"Content-Type": OCI_INDEX},
            )
        manifests = [
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + hashlib.sha256(f"{page}-{i}".encode()).hexdigest(),
                "size": 100 + i,
                "artifactType": "application/vnd.example.sig",
            }
            for i in range(count)
        ]
        self._send(
            200,
            json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
            ).encode(),
            {"Content-Type": OCI_INDEX, "Link": _next(path, following)},
        )

    def _token(self) -> None:
        reg = self.registry
        if reg.mode == Mode.TOKEN_SELF_REDIRECT:
            return self._send(302, b"", {"Location": f"{reg.url}/token"})
        if reg.mode == Mode.TOKEN_REDIRECT_AWAY:
            return self._send(307, b"", {"Location": f"{reg.redirect_to}/token"})
        self._json(200, {"token": "hostile-token", "expires_in": 300})


def _next(path: str, page: int) -> str:
    """A Link header to `page` of `path`; page 1 is `path` itself, as a registry's first page."""
    return f'<{path}?page={page}>; rel="next"' if page > 1 else f'<{path}>; rel="next"'
