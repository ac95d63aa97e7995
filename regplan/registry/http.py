"""`HTTPBackend`: the OCI distribution API over httpx.

This module says *what* to ask a registry (paths, headers, how answers are read and verified,
mirrors, uploads, pagination, referrers); `transport` says *how* a request travels (TLS,
retries, limits, counting, logging) and `auth` how it is authorised.

Uploads: `blob_put` opens a session (POST) and sends the blob in ONE streamed PUT with an
explicit Content-Length, unless the host's `blobMax` asks for chunks (PATCH of `blobChunk`
bytes, at most one chunk in memory). A generic iterable of chunks can be read once only, so a
failed upload is retried — in a fresh session, chunked — only when the caller passes a
`ReopenableChunks` (or a list/tuple); otherwise the error is raised and the caller may copy
the blob again.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from regplan import __version__, logs
from regplan.durations import format_duration
from regplan.errors import (
    DigestMismatchError,
    ManifestError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    RegplanError,
    UnauthorizedError,
)
from regplan.oci import digest as digests
from regplan.oci import manifest as manifests
from regplan.oci import mediatypes as mt
from regplan.oci.descriptor import Descriptor
from regplan.oci.manifest import Manifest
from regplan.refs import ImageRef
from regplan.registry import referrers as fallback
from regplan.registry.api import (
    Backend,
    BlobStream,
    DeleteMode,
    DeleteSupport,
    ManifestHead,
    RateLimitInfo,
    ReopenableChunks,
    RequestCounter,
)
from regplan.registry.auth import Scope
from regplan.registry.credentials import CredentialStore
from regplan.registry.hosts import Host
from regplan.registry.limits import STALL_BYTES, StallWatch
from regplan.registry.transport import (
    HostTransport,
    Reply,
    RetryPolicy,
    TransportFailure,
    decode_error,
    is_retryable,
)

log = logs.get(__name__)

DEFAULT_USER_AGENT = f"regplan/{__version__}"
DEFAULT_BLOB_LIMIT = 1024 * 1024 * 1024  # cap on a registry's OCI-Chunk-Min-Length
REFERRERS_SUPPORT_TTL = 300.0  # seconds a referrers-API probe result is trusted
CATALOG_PAGE = 1000
MAX_PAGES = 10_000  # a registry whose Link pages never end is refused, not followed forever
_ACCEPT = {"Accept": ", ".join(mt.MANIFEST_ACCEPT)}
BLOB_PUT_TIMEOUT = httpx.Timeout(connect=30.0, read=900.0, write=120.0, pool=300.0)
PULL = ("pull",)
PUSH = ("pull", "push")
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?\brel="?next"?', re.IGNORECASE)
_RANGE = re.compile(r"^(?:bytes=)?(\d+)-(\d+)$")


# -- small helpers ----------------------------------------------------------------------------


class _TTLCache:
    """A bounded LRU whose entries expire (cacheCount/cacheTime). Disabled when either is 0."""

    def __init__(self, count: int, ttl: float) -> None:
        self._count, self._ttl = count, ttl
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._count > 0 and self._ttl > 0

    def get(self, key: Hashable) -> Any:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            if time.monotonic() - entry[0] > self._ttl:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, value: Any) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self._count:
                self._items.popitem(last=False)

    def drop(self, match: Callable[[Hashable], bool]) -> None:
        with self._lock:
            for key in [k for k in self._items if match(k)]:
                del self._items[key]


def parse_rate_limit(headers: httpx.Headers) -> RateLimitInfo | None:
    """Docker Hub's `RateLimit-Limit: 100;w=21600`, `RateLimit-Remaining: 76;w=21600`,
    `RateLimit-Reset`. None when the registry sent no limit."""

    def number(value: str) -> int | None:
        head = value.split(";", 1)[0].split(",", 1)[0].strip()
        return int(head) if head.isdigit() else None

    limit_text = headers.get("ratelimit-limit", "")
    remaining_text = headers.get("ratelimit-remaining", "")
    if not limit_text and not remaining_text:
        return None
    policy = limit_text.split(";", 1)[1].strip() if ";" in limit_text else ""
    return RateLimitInfo(
        limit=number(limit_text) if limit_text else None,
        remaining=number(remaining_text) if remaining_text else None,
        reset=number(headers.get("ratelimit-reset", "")),
        policy=policy,
    )


def next_link(reply: Reply) -> httpx.URL | None:
    """The `Link: <...>; rel="next"` target, resolved against the URL that answered."""
    for value in reply.headers.get_list("link"):
        m = _LINK_NEXT.search(value)
        if m:
            return reply.url.join(m.group(1).strip())
    return None


def with_query(url: str | httpx.URL, key: str, value: str) -> str:
    """Append `key=value` to a URL, keeping its query (upload locations carry `_state`)."""
    text = str(url)
    text = text.partition("#")[0]
    sep = "&" if "?" in text else "?"
    return f"{text}{sep}{quote(key, safe='')}={quote(value, safe='')}"


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _content_type(headers: httpx.Headers) -> str:
    return mt.base(headers.get("content-type", ""))


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Pieces of exactly `size` bytes (the last may be shorter) from arbitrary chunks,
    holding at most one piece plus one input chunk."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class _SourceFailure(Exception):
    """An error raised by the chunks being uploaded (reading the source), carried through the
    upload so that `blob_put` does not retry it as a failure of the target."""

    def __init__(self, error: RegplanError) -> None:
        super().__init__(str(error))
        self.error = error


class _SourceMarked:
    """Iterates `chunks` afresh each time (a `ReopenableChunks` re-opens the source), turning
    the source's own errors into `_SourceFailure`."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.verified = getattr(chunks, "verified", False)  # see ReopenableChunks

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self._chunks)
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except RegplanError as e:
                raise _SourceFailure(e) from e
            yield chunk


class _Candidate:
    """A host to read from: the upstream registry or one of its mirrors."""

    def __init__(self, transport: HostTransport, mirror_of: str = "") -> None:
        self.transport = transport
        self.mirror_of = mirror_of

    def url(self, backend: HTTPBackend, repository: str, rest: str) -> str:
        url = f"{self.transport.base_url}/v2/{backend.repo_path(self.transport.host, repository)}/{rest}"
        return with_query(url, "ns", self.mirror_of) if self.mirror_of else url


# -- the backend ------------------------------------------------------------------------------


class HTTPBackend(Backend):
    """OCI distribution registries over HTTP(S). Thread-safe; see the module docstring."""

    def __init__(
        self,
        hosts: Sequence[Host] = (),
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        blob_limit: int = 0,
        cache_count: int = 0,
        cache_time: float = 0.0,
        counter: RequestCounter | None = None,
        transport: httpx.BaseTransport | None = None,
        retry_delay: float = 0.1,
        retry_max_delay: float = 30.0,
        max_retries: int = 5,
        credentials: CredentialStore | None = None,
    ) -> None:
        self._hosts = {h.name: h for h in hosts}
        self._user_agent = user_agent or DEFAULT_USER_AGENT
        self._blob_limit = blob_limit if blob_limit > 0 else DEFAULT_BLOB_LIMIT
        self._counter = counter
        self._transport = transport
        self._policy = RetryPolicy(retry_delay, retry_max_delay, max_retries)
        self._credentials = credentials or CredentialStore()
        self._lock = threading.Lock()
        self._transports: dict[str, HostTransport] = {}
        self._rate_limits: dict[str, RateLimitInfo] = {}
        self._referrers_support: dict[tuple[str, str], tuple[float, bool]] = {}
        self._manifests = _TTLCache(cache_count, cache_time)
        self._referrers = _TTLCache(cache_count, cache_time)

    def __repr__(self) -> str:
        return f"<HTTPBackend {sorted(self._hosts)}>"

    # -- hosts --------------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        return self._hosts.get(name) or Host(name=name)

    def transport_for(self, name: str) -> HostTransport:
        with self._lock:
            found = self._transports.get(name)
            if found is None:
                found = HostTransport(
                    self.host(name),
                    user_agent=self._user_agent,
                    policy=self._policy,
                    counter=self._counter,
                    credentials=self._credentials,
                    transport=self._transport,
                )
                self._transports[name] = found
            return found

    @staticmethod
    def repo_path(host: Host, repository: str) -> str:
        prefix = host.path_prefix.strip("/")
        return f"{prefix}/{repository}" if prefix else repository

    def _url(self, ref: ImageRef, rest: str) -> str:
        ht = self.transport_for(ref.registry)
        return f"{ht.base_url}/v2/{self.repo_path(ht.host, ref.repository)}/{rest}"

    def _scope(self, ref: ImageRef, actions: tuple[str, ...], host: Host | None = None) -> Scope:
        return Scope.repository(
            self.repo_path(host or self.host(ref.registry), ref.repository), *actions
        )

    def _read_candidates(self, ref: ImageRef) -> list[_Candidate]:
        """Mirrors then the upstream: highest `priority` first, the upstream after mirrors of
        equal priority, hosts in backoff last (soonest-recovering first)."""
        upstream = self.host(ref.registry)
        entries: list[tuple[tuple[Any, ...], _Candidate]] = []
        for position, name in enumerate(
            dict.fromkeys(m for m in upstream.mirrors if m != upstream.name)
        ):
            ht = self.transport_for(name)
            until = ht.backoff_until
            key = (until > 0, until, -ht.host.priority, 0, position)
            entries.append((key, _Candidate(ht, mirror_of=ref.registry)))
        ht = self.transport_for(ref.registry)
        until = ht.backoff_until
        entries.append(((until > 0, until, -upstream.priority, 1, 0), _Candidate(ht)))
        return [c for _, c in sorted(entries, key=lambda e: e[0])]

    # -- errors -------------------------------------------------------------------------------
    @staticmethod
    def _fail(reply: Reply, what: str, ref: ImageRef | str) -> RegistryError:
        detail = decode_error(reply.body)
        suffix = f": {detail}" if detail else ""
        status = reply.status
        where = str(ref)
        if status in (401, 403):
            return UnauthorizedError(f"{what}: unauthorized{suffix}", ref=where, status=status)
        if status == 404:
            return NotFoundError(f"{what}: not found{suffix}", ref=where, status=status)
        if status == 429:
            return RateLimitedError(f"{what}: rate limited{suffix}", ref=where, status=status)
        reason = httpx.codes.get_reason_phrase(status) or "unexpected status"
        return RegistryError(f"{what}: http status: {reason}{suffix}", ref=where, status=status)

    @staticmethod
    def _network(e: TransportFailure, what: str, ref: ImageRef | str) -> TransportFailure:
        return TransportFailure(f"{what}: {e.message}", ref=str(ref))

    def _read(
        self,
        ref: ImageRef,
        method: str,
        rest: str,
        *,
        kind: str,
        what: str,
        headers: dict[str, str] | None = None,
        max_body: int = 0,
        follow_redirects: bool = False,
    ) -> tuple[Reply, _Candidate]:
        """A read through the mirrors: a mirror that fails or lacks the content hands over
        to the next host; the last host's answer stands (its errors are retried)."""
        candidates = self._read_candidates(ref)
        for i, candidate in enumerate(candidates):
            last = i == len(candidates) - 1
            ht = candidate.transport
            try:
                reply = ht.request(
                    method,
                    candidate.url(self, ref.repository, rest),
                    kind=kind,
                    scope=self._scope(ref, PULL, ht.host),
                    headers=headers,
                    max_body=max_body,
                    follow_redirects=follow_redirects,
                    retries=last,
                )
            except TransportFailure as e:
                if last:
                    raise self._network(e, what, ref) from None
                log.debug("Mirror failed", mirror=ht.name, registry=ref.registry, error=e.message)
                continue
            except RegistryError as e:  # e.g. the mirror's token realm refused or failed
                if last:
                    raise
                log.debug("Mirror failed", mirror=ht.name, registry=ref.registry, error=str(e))
                continue
            if last or 200 <= reply.status < 300:
                return reply, candidate
            log.debug("Mirror skipped", mirror=ht.name, registry=ref.registry, status=reply.status)
        raise AssertionError("unreachable: the upstream is always a candidate")

    def _note_rate_limit(self, name: str, headers: httpx.Headers) -> RateLimitInfo | None:
        info = parse_rate_limit(headers)
        if info is not None:
            with self._lock:
                self._rate_limits[name] = info
        return info

    def rate_limits(self) -> dict[str, RateLimitInfo]:
        with self._lock:
            return dict(self._rate_limits)

    def close_all(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for ht in transports:
            ht.close()

    # -- manifests ----------------------------------------------------------------------------
    def manifest_head(self, ref: ImageRef) -> ManifestHead | None:
        if self.host(ref.registry).api_opt("disableHead").lower() == "true":
            return self._head_by_get(ref)
        what = "manifest head"
        reply, candidate = self._read(
            ref,
            "HEAD",
            f"manifests/{ref.reference}",
            kind="manifest",
            what=what,
            headers=_ACCEPT,
        )
        if reply.status == 404:
            return None
        if not 200 <= reply.status < 300:
            raise self._fail(reply, what, ref)
        rate = self._note_rate_limit(candidate.transport.name, reply.headers)
        digest = reply.headers.get("docker-content-digest", "")
        media_type = _content_type(reply.headers)
        length = reply.headers.get("content-length", "")
        if not digests.is_valid(digest) or not mt.is_manifest(media_type) or not length.isdigit():
            head = self._head_by_get(ref)  # registries that leave HEAD answers incomplete
            if head is None:
                return None
            return ManifestHead(head.digest, head.media_type, head.size, rate or head.rate_limit)
        if ref.digest and digest != ref.digest:
            raise DigestMismatchError(
                f"{what}: registry answered with digest {digest}", ref=str(ref)
            )
        return ManifestHead(digest=digest, media_type=media_type, size=int(length), rate_limit=rate)

    def _head_by_get(self, ref: ImageRef) -> ManifestHead | None:
        try:
            manifest, rate = self._manifest_get(ref)
        except NotFoundError:
            return None
        return ManifestHead(manifest.digest, manifest.media_type, manifest.size, rate)

    def manifest_get(self, ref: ImageRef) -> Manifest:
        return self._manifest_get(ref)[0]

    def _manifest_get(self, ref: ImageRef) -> tuple[Manifest, RateLimitInfo | None]:
        cache_key = (ref.registry, ref.repository, ref.digest)
        if ref.digest:
            cached = self._manifests.get(cache_key)
            if cached is not None:
                return cached, None
        what = "manifest get"
        try:
            reply, candidate = self._read(
                ref,
                "GET",
                f"manifests/{ref.reference}",
                kind="manifest",
                what=what,
                headers=_ACCEPT,
                max_body=mt.MAX_MANIFEST_SIZE,
            )
        except ManifestError as e:
            raise ManifestError(f"{what}: {e.message}", ref=str(ref)) from None
        if not 200 <= reply.status < 300:
            raise self._fail(reply, what, ref)
        rate = self._note_rate_limit(candidate.transport.name, reply.headers)
        advertised = reply.headers.get("docker-content-digest", "")
        expected = ref.digest or (advertised if digests.is_valid(advertised) else "")
        manifest = manifests.parse(
            reply.body, reply.headers.get("content-type", ""), digest=expected, where=str(ref)
        )
        self._manifests.put((ref.registry, ref.repository, manifest.digest), manifest)
        return manifest, rate

    def manifest_put(self, ref: ImageRef, manifest: Manifest) -> bool:
        what = "manifest put"
        if manifest.size > mt.MAX_MANIFEST_SIZE:
            raise ManifestError(
                f"{what}: {manifest.size} bytes is over the {mt.MAX_MANIFEST_SIZE} byte limit",
                ref=str(ref),
            )
        if ref.digest and not ref.tag and ref.digest != manifest.digest:
            raise DigestMismatchError(
                f"{what}: manifest digest {manifest.digest} does not match the reference",
                ref=str(ref),
            )
        reference = ref.tag or manifest.digest
        ht = self.transport_for(ref.registry)
        try:
            reply = ht.request(
                "PUT",
                self._url(ref, f"manifests/{reference}"),
                kind="manifest",
                scope=self._scope(ref, PUSH),
                headers={"Content-Type": manifest.media_type},
                content=manifest.raw,
            )
        except TransportFailure as e:
            raise self._network(e, what, ref) from None
        if not 200 <= reply.status < 300:
            raise self._fail(reply, what, ref)
        stored = reply.headers.get("docker-content-digest", "")
        if stored and stored != manifest.digest:
            raise DigestMismatchError(
                f"{what}: registry stored digest {stored}, expected {manifest.digest}",
                ref=str(ref),
            )
        self._manifests.put((ref.registry, ref.repository, manifest.digest), manifest)
        self._referrers.drop(lambda k: k[:2] == (ref.registry, ref.repository))  # type: ignore[index]
        subject = reply.headers.get("oci-subject", "")
        return bool(subject) and (manifest.subject is None or subject == manifest.subject.digest)

    def manifest_delete(self, ref: ImageRef) -> None:
        what = "manifest delete"
        ht = self.transport_for(ref.registry)
        try:
            reply = ht.request(
                "DELETE",
                self._url(ref, f"manifests/{ref.reference}"),
                kind="manifest",
                scope=Scope.repository(
                    self.repo_path(ht.host, ref.repository), "pull", "push", "delete"
                ),
            )
        except TransportFailure as e:
            raise self._network(e, what, ref) from None
        if not 200 <= reply.status < 300:
            raise self._fail(reply, what, ref)
        if ref.digest:
            self._manifests.drop(lambda k: k == (ref.registry, ref.repository, ref.digest))

    def delete_support(self, ref: ImageRef) -> DeleteSupport:
        """Probe with DELETEs of a tag and a digest that do not exist: the answers tell tag
        delete (404 for the tag), delete by digest only (distribution 2.8 rejects a tag with 400,
        a digest with 404) and deletes disabled (405 UNSUPPORTED) apart, changing nothing."""
        ht = self.transport_for(ref.registry)
        scope = Scope.repository(self.repo_path(ht.host, ref.repository), "pull", "push", "delete")
        answers: list[str] = []
        for reference in (f"regplan-delete-probe-{secrets.token_hex(16)}", "sha256:" + "0" * 64):
            try:
                reply = ht.request(
                    "DELETE", self._url(ref, f"manifests/{reference}"), kind="manifest", scope=scope
                )
            except TransportFailure as e:
                raise self._network(e, "delete probe", ref.repo()) from None
            if reply.status == 404 or 200 <= reply.status < 300:
                return DeleteSupport(DeleteMode.TAG if not answers else DeleteMode.DIGEST)
            detail = decode_error(reply.body)
            answers.append(f"{reply.status}" + (f" {detail}" if detail else ""))
            if reply.status in (401, 403, 405) or "UNSUPPORTED" in detail:
                break  # deletes as such are refused: no digest probe tells more
        return DeleteSupport(DeleteMode.NONE, answers[-1])

    # -- blobs --------------------------------------------------------------------------------
    def blob_head(self, ref: ImageRef, digest: str) -> int | None:
        what = f"blob head {digest}"
        digests.split(digest)
        ht = self.transport_for(ref.registry)
        try:
            reply = ht.request(
                "HEAD",
                self._url(ref, f"blobs/{digest}"),
                kind="blob",
                scope=self._scope(ref, PULL),
                follow_redirects=True,
            )
        except TransportFailure as e:
            raise self._network(e, what, ref.repo()) from None
        if reply.status == 404:
            return None
        if not 200 <= reply.status < 300:
            raise self._fail(reply, what, ref.repo())
        length = reply.headers.get("content-length", "")
        return int(length) if length.isdigit() else -1

    @contextlib.contextmanager
    def blob_get(self, ref: ImageRef, desc: Descriptor) -> Iterator[BlobStream]:
        digests.split(desc.digest)
        what = f"blob get {desc.digest}"
        candidates = self._read_candidates(ref)
        for i, candidate in enumerate(candidates):
            last = i == len(candidates) - 1
            ht = candidate.transport
            url = candidate.url(self, ref.repository, f"blobs/{desc.digest}")
            scope = self._scope(ref, PULL, ht.host)
            with contextlib.ExitStack() as stack:
                try:
                    response = stack.enter_context(
                        ht.stream(
                            "GET", url, kind="blob", scope=scope, headers=_IDENTITY, retries=last
                        )
                    )
                except TransportFailure as e:
                    if last:
                        raise self._network(e, what, ref.repo()) from None
                    continue
                except RegistryError:
                    if last:
                        raise
                    continue
                if response.status_code != 200:
                    if not last:
                        continue
                    body = response.read() if response.status_code >= 400 else b""
                    raise self._fail(
                        Reply(response.status_code, response.headers, body[:65536], response.url),
                        what,
                        ref.repo(),
                    )
                stream = _HTTPBlobStream(
                    self, ht, url, scope, desc, response, where=str(ref.repo())
                )
                stack.callback(stream.close)
                yield stream
                return
        raise AssertionError("unreachable: the upstream is always a candidate")

    def blob_mount(self, ref: ImageRef, digest: str, from_ref: ImageRef) -> bool:
        digests.split(digest)
        ht = self.transport_for(ref.registry)
        source = self.repo_path(ht.host, from_ref.repository)
        url = with_query(
            with_query(self._url(ref, "blobs/uploads/"), "mount", digest), "from", source
        )
        try:
            reply = ht.request(
                "POST",
                url,
                kind="upload",
                scope=self._scope(ref, PUSH) | Scope.repository(source, "pull"),
                headers={"Content-Length": "0"},
                content=b"",
            )
        except TransportFailure as e:
            raise self._network(e, f"blob mount {digest}", ref.repo()) from None
        if reply.status == 201:
            return True
        if reply.status == 202 and reply.headers.get("location"):
            self._cancel_upload(ht, ref, reply.url.join(reply.headers["location"]))
        elif reply.status >= 500:
            raise self._fail(reply, f"blob mount {digest}", ref.repo())
        log.debug("Blob mount declined", target=str(ref.repo()), digest=digest, status=reply.status)
        return False

    def blob_put(self, ref: ImageRef, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        digests.split(desc.digest)
        ht = self.transport_for(ref.registry)
        reopenable = isinstance(chunks, ReopenableChunks | list | tuple)
        # an unknown size (schema1 layers) cannot be announced in one PUT: send it in chunks
        chunked = desc.size < 0 or (ht.host.blob_max > 0 and desc.size > ht.host.blob_max)
        attempts = 1 + (self._policy.max_retries if reopenable else 0)
        for attempt in range(1, attempts + 1):
            try:
                self._upload(ht, ref, desc, _SourceMarked(chunks), chunked=chunked)
                return
            except _SourceFailure as e:
                # the source read already did its own retries: re-reading it would multiply them
                raise e.error from None
            except RegistryError as e:
                retry = isinstance(e, TransportFailure) or e.status == 413 or is_retryable(e.status)
                if isinstance(e, DigestMismatchError | UnauthorizedError) or not retry:
                    raise
                if attempt == attempts:
                    raise
                chunked = True  # regclient's fallback: a body too big for a proxy may pass in parts
                log.warn(
                    "Retrying blob upload in a new session",
                    target=str(ref.repo()),
                    digest=desc.digest,
                    error=str(e),
                    attempt=attempt,
                )
                ht.pause(self._policy.backoff(attempt))  # before a fresh upload session

    def _upload(
        self,
        ht: HostTransport,
        ref: ImageRef,
        desc: Descriptor,
        chunks: Iterable[bytes],
        *,
        chunked: bool,
    ) -> None:
        what = f"blob put {desc.digest}"
        scope = self._scope(ref, PUSH)
        start = self._url(ref, "blobs/uploads/")
        algorithm, _ = digests.split(desc.digest)
        if algorithm != "sha256":
            start = with_query(start, "digest-algorithm", algorithm)
        try:
            reply = ht.request(
                "POST",
                start,
                kind="upload",
                scope=scope,
                headers={"Content-Length": "0"},
                content=b"",
            )
        except TransportFailure as e:
            raise self._network(e, what, ref.repo()) from None
        if reply.status != 202 or not reply.headers.get("location"):
            raise (
                self._fail(reply, what, ref.repo())
                if reply.status != 202
                else RegistryError(
                    f"{what}: upload session without a Location", ref=str(ref.repo()), status=202
                )
            )
        location = reply.url.join(reply.headers["location"])
        chunk_size = ht.host.chunk_size
        minimum = reply.headers.get("oci-chunk-min-length", "")
        if minimum.isdigit():
            chunk_size = max(chunk_size, min(int(minimum), self._blob_limit))
        try:
            if chunked:
                location = self._put_chunks(ht, ref, desc, chunks, location, chunk_size, scope)
                reply = ht.request(
                    "PUT",
                    with_query(location, "digest", desc.digest),
                    kind="upload",
                    scope=scope,
                    headers={"Content-Length": "0", "Content-Type": "application/octet-stream"},
                    content=b"",
                    timeout=BLOB_PUT_TIMEOUT,
                )
            else:
                reply = ht.send_body(
                    "PUT",
                    with_query(location, "digest", desc.digest),
                    kind="upload",
                    scope=scope,
                    headers={
                        "Content-Length": str(desc.size),
                        "Content-Type": "application/octet-stream",
                    },
                    # bytes from a verifying source are checked there (and by the registry
                    # against ?digest=): hashing them twice costs ~15 % of a big copy
                    body=chunks
                    if getattr(chunks, "verified", False)
                    else _verified(chunks, desc, f"{what} to {ref.repo()}"),
                    timeout=BLOB_PUT_TIMEOUT,
                )
            if reply.status not in (201, 204) and not 200 <= reply.status < 300:
                raise self._fail(reply, what, ref.repo())
            stored = reply.headers.get("docker-content-digest", "")
            if stored and stored != desc.digest:
                raise DigestMismatchError(f"{what}: registry stored {stored}", ref=str(ref.repo()))
        except BaseException:
            self._cancel_upload(ht, ref, location)
            raise

    def _put_chunks(
        self,
        ht: HostTransport,
        ref: ImageRef,
        desc: Descriptor,
        chunks: Iterable[bytes],
        location: httpx.URL,
        chunk_size: int,
        scope: Scope,
    ) -> httpx.URL:
        """PATCH the blob in `chunk_size` pieces; returns the location for the final PUT."""
        what = f"blob put {desc.digest}"
        verifier = digests.Verifier(desc.digest, desc.size, what=f"{what} to {ref.repo()}")
        offset = 0
        for piece in _rechunk(chunks, chunk_size):
            verifier.update(piece)
            location = self._patch(ht, ref, location, piece, offset, scope)
            offset += len(piece)
        verifier.verify()
        return location

    def _patch(
        self,
        ht: HostTransport,
        ref: ImageRef,
        location: httpx.URL,
        piece: bytes,
        offset: int,
        scope: Scope,
    ) -> httpx.URL:
        """Send one chunk; when the registry kept only part of it (its `Range` says so),
        send the rest. The chunk is in memory, so it can be resent."""
        what = "blob chunk upload"
        sent = 0
        for _ in range(4):
            data = piece[sent:]
            start = offset + sent
            try:
                reply = ht.request(
                    "PATCH",
                    location,
                    kind="upload",
                    scope=scope,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + len(data) - 1}",
                        "Content-Length": str(len(data)),
                    },
                    content=data,
                )
            except TransportFailure as e:
                raise self._network(e, what, ref.repo()) from None
            if reply.status == 416:  # our offset is not where the registry is: ask it
                status = ht.request("GET", location, kind="upload", scope=scope)
                if status.status != 204:
                    raise self._fail(reply, what, ref.repo())
                reply = status
            elif reply.status != 202:
                raise self._fail(reply, what, ref.repo())
            if reply.headers.get("location"):
                location = reply.url.join(reply.headers["location"])
            m = _RANGE.match(reply.headers.get("range", "").strip())
            have = int(m.group(2)) + 1 if m else offset + len(piece)
            if have == offset + len(piece):
                return location
            if not offset <= have < offset + len(piece):
                raise RegistryError(
                    f"{what}: registry holds {have} bytes, expected {offset + len(piece)}",
                    ref=str(ref.repo()),
                )
            sent = have - offset
        raise RegistryError(
            f"{what}: registry keeps accepting only part of a chunk", ref=str(ref.repo())
        )

    def _cancel_upload(self, ht: HostTransport, ref: ImageRef, location: httpx.URL) -> None:
        try:
            ht.request(
                "DELETE", location, kind="upload", scope=self._scope(ref, PUSH), retries=False
            )
        except (RegistryError, httpx.HTTPError) as e:
            log.debug("Failed to cancel upload", target=str(ref.repo()), error=str(e))

    # -- listings -----------------------------------------------------------------------------
    def _pages(
        self,
        first: Reply,
        candidate: _Candidate,
        ref: ImageRef | str,
        what: str,
        kind: str,
        scope: Scope,
    ) -> Iterator[Reply]:
        """Every page of a listing, following `Link: rel="next"` on the same origin; a link
        back to a page already read is a loop, refused rather than followed for ever."""
        reply = first
        seen = {str(first.url)}
        for _ in range(MAX_PAGES):
            yield reply
            link = next_link(reply)
            if link is None:
                return
            if not _same_origin(link, reply.url):
                raise ListingError(f"{what}: pagination link leaves the registry", ref=str(ref))
            if str(link) in seen:
                raise ListingError(
                    f"{what}: pagination loops back to a page already read", ref=str(ref)
                )
            seen.add(str(link))
            try:
                reply = candidate.transport.request("GET", link, kind=kind, scope=scope)
            except TransportFailure as e:
                raise self._network(e, what, ref) from None
            if reply.status != 200:
                raise self._fail(reply, what, ref)
        raise ListingError(f"{what}: more than {MAX_PAGES} pages", ref=str(ref))

    @staticmethod
    def _capped(
        found: dict[Any, None],
        new: Iterable[Any],
        ht: HostTransport,
        what: str,
        ref: ImageRef | str,
    ) -> None:
        """Add a page's entries, de-duplicated as they arrive, up to the host's cap."""
        cap = ht.limits.max_list_entries
        for item in new:
            found[item] = None
            if len(found) > cap:
                raise ListingError(
                    f"{what}: more than {cap} entries (raise apiOpts maxListEntries for"
                    f" {ht.name} in creds to allow more)",
                    ref=str(ref),
                )

    @staticmethod
    def _json(reply: Reply, what: str, ref: ImageRef | str) -> dict[str, Any]:
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise RegistryError(f"{what}: invalid JSON", ref=str(ref))
        return data

    def tag_list(self, ref: ImageRef) -> list[str]:
        what = "tag list"
        repo = ref.repo()
        reply, candidate = self._read(ref, "GET", "tags/list", kind="tags", what=what)
        if reply.status != 200:
            raise self._fail(reply, what, repo)
        tags: dict[str, None] = {}
        scope = self._scope(ref, PULL, candidate.transport.host)
        for page in self._pages(reply, candidate, repo, what, "tags", scope):
            items = self._json(page, what, repo).get("tags") or []
            if not isinstance(items, list):
                raise RegistryError(f"{what}: invalid JSON", ref=str(repo))
            self._capped(
                tags, (t for t in items if isinstance(t, str)), candidate.transport, what, repo
            )
        return list(tags)

    def catalog(self, ref: ImageRef) -> list[str]:
        what = "catalog"
        ht = self.transport_for(ref.registry)
        scope = Scope.catalog()
        try:
            reply = ht.request(
                "GET", f"{ht.base_url}/v2/_catalog?n={CATALOG_PAGE}", kind="catalog", scope=scope
            )
        except TransportFailure as e:
            raise self._network(e, what, ref.registry) from None
        if reply.status != 200:
            raise self._fail(reply, what, ref.registry)
        prefix = ht.host.path_prefix.strip("/")
        repos: dict[str, None] = {}
        for page in self._pages(reply, _Candidate(ht), ref.registry, what, "catalog", scope):
            items = self._json(page, what, ref.registry).get("repositories") or []
            if not isinstance(items, list):
                raise RegistryError(f"{what}: invalid JSON", ref=ref.registry)
            self._capped(repos, _in_prefix(items, prefix), ht, what, ref.registry)
        return list(repos)

    # -- referrers ----------------------------------------------------------------------------
    def _known_referrers_support(self, ref: ImageRef) -> tuple[float, bool] | None:
        """What the last probe said for this repository, or for the whole registry when the
        registry has no referrers route at all (then no repository of it needs a probe)."""
        now = time.monotonic()
        with self._lock:
            for key in ((ref.registry, ref.repository), (ref.registry, "")):
                known = self._referrers_support.get(key)
                if known is not None and now - known[0] < REFERRERS_SUPPORT_TTL:
                    return known
        return None

    def referrers_api(self, ref: ImageRef) -> bool:
        known = self._known_referrers_support(ref)
        if known is not None:
            return known[1]
        # any digest does for the probe: the answer's shape is what matters
        probe = "sha256:" + "0" * 64
        return self._probe_referrers(ref, probe, "") is not None

    def _probe_referrers(
        self, ref: ImageRef, digest: str, artifact_type: str
    ) -> list[Descriptor] | None:
        """Ask the referrers API once (no retries): the descriptors, or None if unsupported."""
        what = "referrers"
        ht = self.transport_for(ref.registry)
        url = self._url(ref, f"referrers/{digest}")
        if artifact_type:
            url = with_query(url, "artifactType", artifact_type)
        scope = self._scope(ref, PULL)
        result: list[Descriptor] | None = None
        try:
            reply = ht.request(
                "GET",
                url,
                kind="referrers",
                scope=scope,
                retries=False,
                max_body=mt.MAX_MANIFEST_SIZE,
            )
            if _route_missing(reply):
                with self._lock:  # e.g. distribution 2.8: "404 page not found", not an OCI error
                    self._referrers_support[(ref.registry, "")] = (time.monotonic(), False)
            if reply.status == 200:
                found: dict[Descriptor, None] | None = {}
                for page in self._pages(
                    reply, _Candidate(ht), ref.repo(), what, "referrers", scope
                ):
                    index = manifests.parse(
                        page.body,
                        page.headers.get("content-type", ""),
                        where=f"{ref.repo()} referrers",
                    )
                    if not index.is_index or found is None:
                        found = None
                        break
                    self._capped(found, index.manifests, ht, what, ref.repo())
                result = None if found is None else list(found)
        except ListingError:
            raise  # an API that answers with endless or looping pages is hostile, not absent
        except (RegistryError, httpx.HTTPError) as e:
            log.debug("Referrers API probe failed", repository=str(ref.repo()), error=str(e))
            result = None
        key = (ref.registry, ref.repository)
        with self._lock:
            known = self._referrers_support.get(key)
            # an API that answered before and fails now is failing, not unsupported
            if result is not None or known is None or not known[1]:
                self._referrers_support[key] = (time.monotonic(), result is not None)
        return result

    def referrers(
        self, ref: ImageRef, digest: str, *, artifact_type: str = "", slow: bool = False
    ) -> list[Descriptor]:
        digests.split(digest)
        key = (ref.registry, ref.repository, digest)
        found: list[Descriptor] | None = self._referrers.get(key)
        if found is None:
            found = self._list_referrers(ref, digest, artifact_type)
            if not artifact_type:
                self._referrers.put(key, found)
        return [d for d in found if fallback.matches_artifact_type(d, artifact_type)]

    def _list_referrers(self, ref: ImageRef, digest: str, artifact_type: str) -> list[Descriptor]:
        known = self._known_referrers_support(ref)
        fresh = known is not None
        if not fresh or (known is not None and known[1]):
            listed = self._probe_referrers(ref, digest, artifact_type)
            if listed is not None:
                return listed
            if fresh:  # it answered before: a failure now is an error, not "unsupported"
                raise RegistryError(
                    "referrers: the referrers API stopped answering", ref=str(ref.repo())
                )
        return fallback.read_fallback(self, ref.repo(), digest)


class ListingError(RegistryError):
    """A paged listing that loops, leaves the registry, or holds more than the cap."""


def _in_prefix(items: Iterable[Any], prefix: str) -> Iterator[str]:
    """Catalog names as our references spell them: under `prefix`, without it."""
    for name in items:
        if not isinstance(name, str):
            continue
        if prefix:  # repositories outside the prefix are not reachable by our names
            if not name.startswith(prefix + "/"):
                continue
            name = name[len(prefix) + 1 :]
        yield name


def _route_missing(reply: Reply) -> bool:
    """A 404 that is no OCI error document: the registry has no such endpoint at all (as
    opposed to a registry with the API answering NAME_UNKNOWN for a missing repository)."""
    if reply.status != 404:
        return False
    try:
        body = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return True
    return not (isinstance(body, dict) and "errors" in body)


_IDENTITY = {"Accept-Encoding": "identity"}  # blob bytes exactly as stored, never decoded


def _verified(chunks: Iterable[bytes], desc: Descriptor, what: str) -> Iterator[bytes]:
    """Pass chunks on while hashing them; refuse (mid-body) anything that is not `desc`.
    Raising before the last byte leaves the registry with an incomplete body it discards."""
    verifier = digests.Verifier(desc.digest, desc.size, what=what)
    for chunk in chunks:
        if chunk:
            verifier.update(chunk)
            yield chunk
    verifier.verify()


class _HTTPBlobStream(BlobStream):
    """A blob body being read; a connection that breaks mid-body is resumed with a `Range`
    request (or re-read and skipped when the registry ignores Range)."""

    def __init__(
        self,
        backend: HTTPBackend,
        ht: HostTransport,
        url: str,
        scope: Scope,
        desc: Descriptor,
        response: httpx.Response,
        *,
        where: str,
    ) -> None:
        self.size = desc.size
        self._backend = backend
        self._ht = ht
        self._url = url
        self._scope = scope
        self._desc = desc
        self._response = response
        self._where = where
        self._started = False
        length = response.headers.get("content-length", "")
        if length.isdigit() and desc.size >= 0 and int(length) != desc.size:
            raise DigestMismatchError(
                f"blob {desc.digest}: registry sends {length} bytes, descriptor says {desc.size}",
                ref=where,
            )

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RegistryError(
                f"blob {self._desc.digest}: a blob stream can be read once", ref=self._where
            )
        self._started = True
        verifier = digests.Verifier(
            self._desc.digest, self._desc.size, what=f"blob {self._desc.digest}"
        )
        response = self._response
        skip = 0  # bytes of a restarted body already delivered
        resumes = 0
        window = self._ht.limits.blob_stall_timeout
        watch = StallWatch(window, time.monotonic())
        while True:
            try:
                for chunk in response.iter_raw():
                    if watch.stalled(len(chunk), time.monotonic()):
                        raise RegistryError(
                            f"blob {self._desc.digest}: {self._ht.name} sent less than "
                            f"{STALL_BYTES // 1024} KiB in {format_duration(window)} (apiOpts blobStallTimeout)",
                            ref=self._where,
                        )
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                        if not chunk:
                            continue
                    try:
                        verifier.update(chunk)
                    except DigestMismatchError as e:
                        raise DigestMismatchError(e.message, ref=self._where) from None
                    yield chunk
                break
            except httpx.TransportError as e:
                resumes += 1
                if resumes > self._ht.policy.max_retries:
                    raise RegistryError(
                        f"blob {self._desc.digest}: connection to {self._ht.name} broke after "
                        f"{verifier.size} bytes: {type(e).__name__}",
                        ref=self._where,
                    ) from None
                delay = self._ht.policy.backoff(resumes)
                log.warn(
                    "Sleeping for backoff",
                    registry=self._ht.name,
                    method="GET",
                    reason=f"blob read broke after {verifier.size} bytes",
                    seconds=round(delay, 3),
                    attempt=resumes,
                )
                self._ht.pause(delay)
                response.close()
                response, skip = self._resume(verifier.size)
                self._response = response
        try:
            verifier.verify()
        except DigestMismatchError as e:
            raise DigestMismatchError(e.message, ref=self._where) from None

    def _resume(self, offset: int) -> tuple[httpx.Response, int]:
        headers = dict(_IDENTITY)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = self._ht.open(
                "GET", self._url, kind="blob", scope=self._scope, headers=headers
            )
        except TransportFailure as e:
            raise RegistryError(f"blob {self._desc.digest}: {e.message}", ref=self._where) from None
        if response.status_code == 206:
            m = re.match(r"bytes (\d+)-", response.headers.get("content-range", ""))
            if m and int(m.group(1)) == offset:
                return response, 0
            response.close()
            raise RegistryError(
                f"blob {self._desc.digest}: registry resumed at the wrong offset", ref=self._where
            )
        if response.status_code == 200:
            return response, offset
        response.close()
        raise RegistryError(
            f"blob {self._desc.digest}: resuming the download failed",
            ref=self._where,
            status=response.status_code,
        )

    def close(self) -> None:
        self._response.close()
