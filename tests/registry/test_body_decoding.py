"""Content-Encoding is undone by regplan itself, bounded, whatever the server sends."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator

import httpx
import pytest

from regplan.errors import ManifestError
from regplan.refs import ImageRef
from regplan.registry.transport import content_codings

from .mock import REG, Handler, backend, sha

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(b"{}"),
            "size": 2,
        },
        "layers": [],
    }
).encode()


class Raw(httpx.SyncByteStream):
    """A body as bytes on the wire (httpx does not pre-read it, as for a real socket)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), 1000):
            yield self.data[i : i + 1000]


def serve(body: bytes, encoding: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={
                "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                "Content-Encoding": encoding,
                "Docker-Content-Digest": sha(MANIFEST),
            },
            stream=Raw(body),
        )

    return handler


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(MANIFEST)),
        ("gzip, gzip", gzip.compress(gzip.compress(MANIFEST))),
        ("deflate", zlib.compress(MANIFEST)),
        ("identity", MANIFEST),
    ],
)
def test_encoded_manifest_is_decoded_and_verified(encoding: str, body: bytes) -> None:
    be = backend(serve(body, encoding))
    manifest = be.manifest_get(ImageRef.parse(f"{REG}/a:v1"))
    assert manifest.raw == MANIFEST and manifest.digest == sha(MANIFEST)


def test_inflating_past_the_manifest_limit_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"{" + b" " * (64 * 1024 * 1024))  # 64 MiB of JSON whitespace
    be = backend(serve(bomb, "gzip"))
    with pytest.raises(ManifestError, match="over the 4194304 byte limit"):
        be.manifest_get(ImageRef.parse(f"{REG}/a:v1"))


def test_unknown_encoding_is_refused() -> None:
    be = backend(serve(MANIFEST, "br"))
    with pytest.raises(Exception, match="Content-Encoding 'br'"):
        be.manifest_get(ImageRef.parse(f"{REG}/a:v1"))


def test_codings_are_undone_last_applied_first() -> None:
    headers = httpx.Headers(
        [("Content-Encoding", "deflate, gzip"), ("Content-Encoding", "identity")]
    )
    assert content_codings(headers) == ["gzip", "deflate"]
