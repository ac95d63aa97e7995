"""A small OCI distribution registry in the stdlib, for what distribution 2.8 lacks.

distribution 2.8 predates the OCI 1.1 referrers API, so this server implements it (with
`artifactType` filtering, `OCI-Filters-Applied`, `OCI-Subject` on manifest PUTs) plus the parts of
the distribution spec a client needs: manifests and blobs by tag/digest, monolithic, chunked and
streamed uploads with digest verification, cross-repository mounts, and `n`/`last` pagination
with `Link` headers for tags, the catalog and referrers.

Content lives in memory, so `stop()` then `start()` keeps it (same port). Every request is
recorded — before its response is sent — as (method, path, query, status).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers.net import LOOPBACK, BackgroundHTTPServer, QuietHandler

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MAX_MANIFEST_SIZE = 4 * 1024 * 1024

_NAME = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("base", re.compile(r"/v2/?")),
    ("catalog", re.compile(r"/v2/_catalog")),
    ("tags", re.compile(rf"/v2/(?P<name>{_NAME})/tags/list")),
    ("manifest", re.compile(rf"/v2/(?P<name>{_NAME})/manifests/(?P<ref>[^/]+)")),
    ("upload_start", re.compile(rf"/v2/(?P<name>{_NAME})/blobs/uploads/?")),
    ("upload", re.compile(rf"/v2/(?P<name>{_NAME})/blobs/uploads/(?P<id>[^/]+)")),
    ("blob", re.compile(rf"/v2/(?P<name>{_NAME})/blobs/(?P<digest>[^/]+)")),
    ("referrers", re.compile(rf"/v2/(?P<name>{_NAME})/referrers/(?P<digest>[^/]+)")),
]
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    status: int


@dataclass(frozen=True)
class StoredManifest:
    digest: str
    media_type: str
    data: bytes
    subject: str  # digest of the `subject`, "" when none
    artifact_type: str  # artifactType, else config.mediaType (how referrers list it)
    annotations: dict[str, str]

    def descriptor(self) -> dict[str, Any]:
        desc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
        }
        if self.artifact_type:
            desc["artifactType"] = self.artifact_type
        if self.annotations:
            desc["annotations"] = self.annotations
        return desc


@dataclass
class Repository:
    blobs: set[str] = field(default_factory=set)  # digests linked into this repository
    manifests: dict[str, StoredManifest] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # tag → manifest digest


@dataclass
class Upload:
    repo: str
    data: bytearray = field(default_factory=bytearray)


class RegistryError(Exception):
    """An error answer with the spec's JSON body."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.detail = status, code, message, detail


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _page(
    items: list[str], query: dict[str, str], default_size: int | None
) -> tuple[list[str], bool]:
    """Items after `last`, at most `n` of them (or `default_size`); and whether more remain."""
    items = sorted(items)
    if "last" in query:
        items = [item for item in items if item > query["last"]]
    size = int(query["n"]) if query.get("n", "").isdigit() else default_size
    if size is None or len(items) <= size:
        return items, False
    if size <= 0:
        return [], False
    return items[:size], True


class OCIRegistry(BackgroundHTTPServer):
    """Serve with `start()`; `.host` is "127.0.0.1:PORT", `.url` its http:// URL."""

    def __init__(
        self,
        *,
        read_only: bool = False,
        read_only_status: int = HTTPStatus.METHOD_NOT_ALLOWED,
        referrers_api: bool = True,
        page_size: int | None = None,
        chunk_min_length: int = 0,
        immutable_tags: bool = False,
    ) -> None:
        """`page_size` caps tag, catalog and referrers pages even when the client sends no `n`
        (to make clients follow `Link`); `referrers_api=False` answers the referrers endpoint
        with 404 like registries without it; `chunk_min_length` is sent as OCI-Chunk-Min-Length."""
        self.read_only = read_only
        self.read_only_status = read_only_status
        self.referrers_api = referrers_api
        self.page_size = page_size
        self.chunk_min_length = chunk_min_length
        # as Harbor/ECR immutable tags: a PUT to a tag that exists is refused, same digest or not
        self.immutable_tags = immutable_tags
        self.repos: dict[str, Repository] = {}
        self.blobs: dict[str, bytes] = {}
        self.uploads: dict[str, Upload] = {}
        self.lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self.port = 0

    # -- lifecycle and addresses --------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"  # known while stopped too: a restart reuses the port

    def ref(self, repo: str, tag_or_digest: str = "latest") -> str:
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"

    def skopeo_args(self, prefix: str = "") -> list[str]:
        return [f"--{prefix}tls-verify=false"]

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> OCIRegistry:
        """Listen (again, on the same port after a stop) in a background thread."""
        if self._httpd is None:
            self._listen(_make_handler(self), name=f"oci-registry-{self.port}", port=self.port)
            self.port = self.bound_port
        return self

    # -- recorded requests --------------------------------------------------------------------
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self._requests.append(request)

    # -- store helpers (hold self.lock) -------------------------------------------------------
    def _repo(self, name: str, *, create: bool = False) -> Repository:
        repo = self.repos.get(name)
        if repo is None:
            if not create:
                raise RegistryError(404, "NAME_UNKNOWN", "repository name not known to registry")
            repo = self.repos[name] = Repository()
        return repo

    def _resolve(self, name: str, reference: str) -> StoredManifest:
        repo = self._repo(name)
        digest = repo.tags.get(reference, reference)
        manifest = repo.manifests.get(digest)
        if manifest is None:
            raise RegistryError(
                404, "MANIFEST_UNKNOWN", "manifest unknown", {"reference": reference}
            )
        return manifest

    def _store_blob(self, name: str, data: bytes, digest: str) -> None:
        if not _DIGEST.fullmatch(digest):
            raise RegistryError(400, "DIGEST_INVALID", "unsupported digest", {"digest": digest})
        if _sha256(data) != digest:
            raise RegistryError(
                400, "DIGEST_INVALID", "provided digest did not match uploaded content"
            )
        self.blobs[digest] = data
        self._repo(name, create=True).blobs.add(digest)

    # -- API operations (each returns status, headers, body) ----------------------------------
    def put_manifest(
        self, name: str, reference: str, media_type: str, data: bytes
    ) -> StoredManifest:
        if len(data) > MAX_MANIFEST_SIZE:
            raise RegistryError(413, "SIZE_INVALID", "manifest too large")
        digest = _sha256(data)
        is_digest = reference.startswith("sha256:")
        if is_digest and reference != digest:
            raise RegistryError(400, "DIGEST_INVALID", "manifest digest does not match reference")
        if not is_digest and not _TAG.fullmatch(reference):
            raise RegistryError(400, "TAG_INVALID", "invalid tag", {"tag": reference})
        if not is_digest and self.immutable_tags:
            with self.lock:
                if reference in self._repo(name, create=True).tags:
                    raise RegistryError(409, "DENIED", f"tag {reference} is immutable")
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise RegistryError(400, "MANIFEST_INVALID", f"not JSON: {e}") from e
        if not isinstance(doc, dict):
            raise RegistryError(400, "MANIFEST_INVALID", "manifest is not a JSON object")
        media_type = media_type.split(";")[0].strip() or doc.get("mediaType", "")
        if media_type not in MANIFEST_MEDIA_TYPES:
            raise RegistryError(400, "MANIFEST_INVALID", f"unsupported media type {media_type!r}")
        if doc.get("mediaType") not in (None, media_type):
            raise RegistryError(400, "MANIFEST_INVALID", "Content-Type differs from mediaType")
        with self.lock:
            repo = self._repo(name, create=True)
            # Everything the manifest references must be here; its subject need not be.
            for child in doc.get("manifests") or []:
                if child.get("digest") not in repo.manifests:
                    raise RegistryError(
                        400, "MANIFEST_UNKNOWN", "index references an unknown manifest", child
                    )
            for blob in [doc.get("config"), *(doc.get("layers") or [])]:
                if blob and not blob.get("urls") and blob.get("digest") not in repo.blobs:
                    raise RegistryError(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown", blob)
            config_type = (doc.get("config") or {}).get("mediaType", "")
            stored = StoredManifest(
                digest=digest,
                media_type=media_type,
                data=data,
                subject=(doc.get("subject") or {}).get("digest", ""),
                artifact_type=doc.get("artifactType") or config_type,
                annotations=dict(doc.get("annotations") or {}),
            )
            repo.manifests[digest] = stored
            if not is_digest:
                repo.tags[reference] = digest
        return stored

    def delete_manifest(self, name: str, reference: str) -> None:
        with self.lock:
            repo = self._repo(name)
            if reference in repo.tags:
                del repo.tags[reference]
                return
            if reference not in repo.manifests:
                raise RegistryError(404, "MANIFEST_UNKNOWN", "manifest unknown")
            del repo.manifests[reference]
            for tag in [t for t, d in repo.tags.items() if d == reference]:
                del repo.tags[tag]

    def referrers(self, name: str, digest: str, artifact_type: str) -> list[dict[str, Any]]:
        with self.lock:
            repo = self.repos.get(name) or Repository()
            found = [m for m in repo.manifests.values() if m.subject == digest]
        if artifact_type:
            found = [m for m in found if m.artifact_type == artifact_type]
        return [m.descriptor() for m in sorted(found, key=lambda m: m.digest)]


# -- HTTP --------------------------------------------------------------------------------------


def _make_handler(registry: OCIRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.registry = registry
    return Handler


class _Handler(QuietHandler):
    registry: OCIRegistry

    def route(self) -> None:
        self._dispatch(self.command)

    # -- plumbing -----------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.url_path, self.raw_query = url.path, url.query
        self.query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        self._body: bytes | None = None
        try:
            route, params = self._route(url.path)
            if self.registry.read_only and method in _WRITE_METHODS:
                raise RegistryError(
                    self.registry.read_only_status, "UNSUPPORTED", "registry is read-only"
                )
            handler: Callable[..., None] | None = getattr(self, f"{method.lower()}_{route}", None)
            if handler is None:
                raise RegistryError(405, "UNSUPPORTED", f"{method} not allowed on {route}")
            handler(**params)
        except RegistryError as e:
            self._error(e)
        except (ValueError, KeyError) as e:  # malformed headers or parameters
            self._error(RegistryError(400, "UNSUPPORTED", f"bad request: {e}"))

    def _error(self, e: RegistryError) -> None:
        self.body()  # drain, so the connection stays usable
        error: dict[str, Any] = {"code": e.code, "message": e.message}
        if e.detail is not None:
            error["detail"] = e.detail
        self.reply(e.status, json.dumps({"errors": [error]}).encode(), "application/json")

    def _route(self, path: str) -> tuple[str, dict[str, str]]:
        for route, pattern in _ROUTES:
            m = pattern.fullmatch(path)
            if m:
                return route, m.groupdict()
        raise RegistryError(404, "NOT_FOUND", "no such endpoint")

    def body(self) -> bytes:
        """The request body: Content-Length, chunked (streamed uploads), or none."""
        if self._body is None:
            self._body = self.read_body()  # read once: handlers ask more than once
        return self._body

    def reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "",
        headers: dict[str, str] | None = None,
        *,
        length: int | None = None,
    ) -> None:
        """Record, then answer. `length` overrides Content-Length (HEAD sends no body)."""
        self.registry.record(RecordedRequest(self.command, self.url_path, self.raw_query, status))
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _upload_headers(self, name: str, upload_id: str, offset: int) -> dict[str, str]:
        headers = {
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Range": f"0-{max(offset - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
        }
        if self.registry.chunk_min_length:
            headers["OCI-Chunk-Min-Length"] = str(self.registry.chunk_min_length)
        return headers

    def _next_link(self, path: str, last: str, query: dict[str, str]) -> dict[str, str]:
        params = {"last": last}
        n = query.get("n") or (str(self.registry.page_size) if self.registry.page_size else "")
        if n:
            params["n"] = n
        if "artifactType" in query:
            params["artifactType"] = query["artifactType"]
        return {"Link": f'<{path}?{urllib.parse.urlencode(params)}>; rel="next"'}

    # -- endpoints ----------------------------------------------------------------------------
    def get_base(self) -> None:
        self.reply(200, b"{}", "application/json")

    head_base = get_base

    def get_catalog(self) -> None:
        reg = self.registry
        with reg.lock:
            names = [n for n, r in reg.repos.items() if r.manifests]
        page, more = _page(names, self.query, reg.page_size)
        headers = self._next_link("/v2/_catalog", page[-1], self.query) if more else {}
        body = json.dumps({"repositories": page}).encode()
        self.reply(200, body, "application/json", headers)

    def get_tags(self, name: str) -> None:
        reg = self.registry
        with reg.lock:
            tags = list(reg._repo(name).tags)
        page, more = _page(tags, self.query, reg.page_size)
        headers = self._next_link(f"/v2/{name}/tags/list", page[-1], self.query) if more else {}
        self.reply(
            200, json.dumps({"name": name, "tags": page}).encode(), "application/json", headers
        )

    def get_manifest(self, name: str, ref: str) -> None:
        with self.registry.lock:
            m = self.registry._resolve(name, ref)
        self.reply(200, m.data, m.media_type, {"Docker-Content-Digest": m.digest})

    head_manifest = get_manifest

    def put_manifest(self, name: str, ref: str) -> None:
        stored = self.registry.put_manifest(
            name, ref, self.headers.get("Content-Type", ""), self.body()
        )
        headers = {
            "Location": f"/v2/{name}/manifests/{stored.digest}",
            "Docker-Content-Digest": stored.digest,
        }
        if stored.subject:
            headers["OCI-Subject"] = stored.subject
        self.reply(201, headers=headers)

    def delete_manifest(self, name: str, ref: str) -> None:
        self.registry.delete_manifest(name, ref)
        self.reply(202)

    def get_blob(self, name: str, digest: str) -> None:
        reg = self.registry
        with reg.lock:
            if digest not in reg._repo(name).blobs:
                raise RegistryError(
                    404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest}
                )
            data = reg.blobs[digest]
        self.reply(200, data, "application/octet-stream", {"Docker-Content-Digest": digest})

    head_blob = get_blob

    def delete_blob(self, name: str, digest: str) -> None:
        with self.registry.lock:
            repo = self.registry._repo(name)
            if digest not in repo.blobs:
                raise RegistryError(404, "BLOB_UNKNOWN", "blob unknown to registry")
            repo.blobs.discard(digest)
        self.reply(202)

    def post_upload_start(self, name: str) -> None:
        reg = self.registry
        mount, source = self.query.get("mount", ""), self.query.get("from", "")
        if mount and source:
            with reg.lock:
                source_repo = reg.repos.get(source)
                if source_repo is not None and mount in source_repo.blobs:
                    reg._repo(name, create=True).blobs.add(mount)
                    self.body()
                    headers = {
                        "Location": f"/v2/{name}/blobs/{mount}",
                        "Docker-Content-Digest": mount,
                    }
                    self.reply(201, headers=headers)
                    return
            # Not mountable: the spec says to fall back to a new upload session.
        digest = self.query.get("digest", "")
        if digest:  # monolithic single POST
            with reg.lock:
                reg._store_blob(name, self.body(), digest)
            self.reply(
                201,
                headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest},
            )
            return
        self.body()
        upload_id = uuid.uuid4().hex
        with reg.lock:
            reg.uploads[upload_id] = Upload(name)
        self.reply(202, headers=self._upload_headers(name, upload_id, 0))

    def _upload(self, name: str, upload_id: str) -> Upload:
        upload = self.registry.uploads.get(upload_id)
        if upload is None or upload.repo != name:
            raise RegistryError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        return upload

    def patch_upload(self, name: str, id: str) -> None:
        data = self.body()
        with self.registry.lock:
            upload = self._upload(name, id)
            content_range = self.headers.get("Content-Range", "")
            if content_range:
                start, _, end = content_range.removeprefix("bytes=").partition("-")
                if int(start) != len(upload.data) or int(end) - int(start) + 1 != len(data):
                    raise RegistryError(
                        416, "BLOB_UPLOAD_INVALID", "chunk out of order",
                        {"offset": len(upload.data), "range": content_range},
                    )  # fmt: skip
            upload.data += data
            offset = len(upload.data)
        self.reply(202, headers=self._upload_headers(name, id, offset))

    def put_upload(self, name: str, id: str) -> None:
        data = self.body()
        digest = self.query.get("digest", "")
        with self.registry.lock:
            upload = self._upload(name, id)
            if not digest:
                raise RegistryError(400, "DIGEST_INVALID", "digest parameter missing")
            content = bytes(upload.data + data)
            self.registry._store_blob(name, content, digest)  # verifies the digest
            del self.registry.uploads[id]
        self.reply(
            201, headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
        )

    def get_upload(self, name: str, id: str) -> None:
        with self.registry.lock:
            offset = len(self._upload(name, id).data)
        self.reply(204, headers=self._upload_headers(name, id, offset))

    def delete_upload(self, name: str, id: str) -> None:
        with self.registry.lock:
            self._upload(name, id)
            del self.registry.uploads[id]
        self.reply(204)

    def get_referrers(self, name: str, digest: str) -> None:
        reg = self.registry
        if not reg.referrers_api:
            raise RegistryError(404, "NOT_FOUND", "referrers API not supported")
        if not _DIGEST.fullmatch(digest):
            raise RegistryError(400, "DIGEST_INVALID", "invalid digest", {"digest": digest})
        artifact_type = self.query.get("artifactType", "")
        descriptors = reg.referrers(name, digest, artifact_type)
        by_digest = {d["digest"]: d for d in descriptors}
        page, more = _page(list(by_digest), self.query, reg.page_size)
        headers = {}
        if artifact_type:
            headers["OCI-Filters-Applied"] = "artifactType"
        if more:
            headers.update(self._next_link(f"/v2/{name}/referrers/{digest}", page[-1], self.query))
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [by_digest[d] for d in page],
        }
        self.reply(200, json.dumps(index).encode(), OCI_INDEX, headers)
