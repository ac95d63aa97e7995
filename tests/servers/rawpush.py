"""Push an OCI Layout's content into a registry byte for byte — for what skopeo 1.9 cannot copy.

Written from the OCI distribution spec (not with regplan's client, which is what the tests
check): blobs via POST + monolithic PUT `?digest=`, manifests via PUT with their media type,
children before parents, tags last. Manifests are pushed exactly as stored in the layout, so
every digest stays the same.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_TYPES = INDEX_TYPES | {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}


class Target(Protocol):
    """What the pusher needs of a test server (RegistryServer and OCIRegistry both fit)."""

    @property
    def url(self) -> str: ...


@dataclass(frozen=True)
class LayoutEntry:
    """One descriptor of a layout's index.json: a tag, or an untagged manifest (tag "")."""

    tag: str
    digest: str
    media_type: str


class Layout:
    """Read-only view of an OCI Layout directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index = json.loads((path / "index.json").read_bytes())

    def entries(self) -> list[LayoutEntry]:
        return [
            LayoutEntry(
                tag=(d.get("annotations") or {}).get(REF_NAME, ""),
                digest=d["digest"],
                media_type=d["mediaType"],
            )
            for d in self.index.get("manifests", [])
        ]

    def tags(self) -> list[str]:
        return [e.tag for e in self.entries() if e.tag]

    def blob(self, digest: str) -> bytes:
        algorithm, _, hex_digest = digest.partition(":")
        return (self.path / "blobs" / algorithm / hex_digest).read_bytes()


class RawPusher:
    """Pushes into one repository of a registry; reuse it for several entries."""

    def __init__(self, server: Target, repo: str, layout: Layout) -> None:
        self.repo = repo
        self.layout = layout
        self.pushed_blobs: set[str] = set()
        self.pushed_manifests: set[str] = set()
        context: ssl.SSLContext | bool = True
        ssl_context = getattr(server, "ssl_context", None)
        if callable(ssl_context) and ssl_context() is not None:
            context = ssl_context()
        user, password = getattr(server, "user", ""), getattr(server, "password", "")
        self.client = httpx.Client(
            base_url=server.url,
            verify=context,
            auth=_RegistryAuth(user, password) if user else None,
            timeout=30,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RawPusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def push_entry(self, entry: LayoutEntry) -> None:
        """The entry's whole tree by digest, then its tag (if any)."""
        self.push_manifest(entry.digest, entry.media_type)
        if entry.tag:
            self._put_manifest(entry.tag, entry.digest, entry.media_type)

    def push_manifest(
        self, digest: str, media_type: str, _parents: frozenset[str] = frozenset()
    ) -> None:
        if digest in self.pushed_manifests or digest in _parents:
            return
        doc: dict[str, Any] = json.loads(self.layout.blob(digest))
        media_type = doc.get("mediaType") or media_type
        for child in doc.get("manifests") or []:
            if child["mediaType"] in MANIFEST_TYPES:
                self.push_manifest(child["digest"], child["mediaType"], _parents | {digest})
            else:  # registries may list plain blobs in an index; push them as blobs
                self.push_blob(child["digest"])
        for blob in [doc.get("config"), *(doc.get("layers") or [])]:
            if blob and not blob.get("urls"):
                self.push_blob(blob["digest"])
        self._put_manifest(digest, digest, media_type)
        self.pushed_manifests.add(digest)

    def push_blob(self, digest: str) -> None:
        if digest in self.pushed_blobs:
            return
        head = self.client.head(f"/v2/{self.repo}/blobs/{digest}")
        if head.status_code != 200:
            start = self.client.post(f"/v2/{self.repo}/blobs/uploads/")
            _expect(start, 202)
            location = start.headers["Location"]
            # Add the digest to the upload URL's own query (it carries upload state).
            separator = "&" if "?" in location else "?"
            done = self.client.put(
                f"{location}{separator}digest={digest}",
                content=self.layout.blob(digest),
                headers={"Content-Type": "application/octet-stream"},
            )
            _expect(done, 201)
        self.pushed_blobs.add(digest)

    def _put_manifest(self, reference: str, digest: str, media_type: str) -> None:
        response = self.client.put(
            f"/v2/{self.repo}/manifests/{reference}",
            content=self.layout.blob(digest),
            headers={"Content-Type": media_type},
        )
        _expect(response, 201)
        returned = response.headers.get("Docker-Content-Digest", digest)
        if returned != digest:
            raise RuntimeError(f"registry stored {reference} as {returned}, expected {digest}")


def push_layout(
    layout_dir: Path, server: Target, repo: str, entries: Iterable[LayoutEntry] | None = None
) -> list[LayoutEntry]:
    """Push `entries` (default: every index.json entry, untagged ones included)."""
    layout = Layout(layout_dir)
    chosen = list(layout.entries() if entries is None else entries)
    with RawPusher(server, repo, layout) as pusher:
        for entry in chosen:
            pusher.push_entry(entry)
    return chosen


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: expected {status}, "
            f"got {response.status_code}: {response.text[:500]}"
        )


class _RegistryAuth(httpx.Auth):
    """Basic credentials, or the Bearer token dance when the registry asks for it."""

    def __init__(self, user: str, password: str) -> None:
        self.basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.header = ""  # the last Authorization that worked, sent up front next time

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.header:
            request.headers["Authorization"] = self.header
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("basic"):
            self.header = request.headers["Authorization"] = self.basic
            yield request
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        token_response = yield httpx.Request(
            "GET", params["realm"], params=query, headers={"Authorization": self.basic}
        )
        token_response.read()
        body = token_response.json()
        token = body.get("token") or body["access_token"]
        self.header = request.headers["Authorization"] = f"Bearer {token}"
        yield request
