"""Blobs over HTTP: head, get (verified while streamed, resumed with `Range` when a
connection breaks), cross-repository mount, and uploads.

Uploads: `put` opens a session (POST) and sends the blob in ONE streamed PUT with an explicit
Content-Length, unless the host's `blobMax` asks for chunks (PATCH of `blobChunk` bytes, at
most one chunk in memory). A generic iterable of chunks can be read once only, so a failed
upload is retried — in a fresh session, chunked — only when the caller passes a
`ReopenableChunks` (or a list/tuple); otherwise the error is raised and the caller may copy
the blob again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Iterable, Iterator

import httpx

from regplan import logs
from regplan.durations import format_duration
from regplan.errors import DigestMismatchError, RegistryError, RegplanError, UnauthorizedError
from regplan.oci import digest as digests
from regplan.oci.descriptor import Descriptor
from regplan.refs import ImageRef
from regplan.registry.api import BlobStream, ReopenableChunks
from regplan.registry.auth import Scope
from regplan.registry.limits import STALL_BYTES, StallWatch
from regplan.registry.transport import (
    ANY,
    OK,
    HostTransport,
    Reply,
    Request,
    TransportFailure,
    Transports,
    is_retryable,
    repo_path,
    status_error,
    with_query,
)

log = logs.get(__name__)

DEFAULT_BLOB_LIMIT = 1024 * 1024 * 1024  # cap on a registry's OCI-Chunk-Min-Length
BLOB_PUT_TIMEOUT = httpx.Timeout(connect=30.0, read=900.0, write=120.0, pool=300.0)
PULL = ("pull",)
PUSH = ("pull", "push")
_IDENTITY = {"Accept-Encoding": "identity"}  # blob bytes exactly as stored, never decoded
_RANGE = re.compile(r"^(?:bytes=)?(\d+)-(\d+)$")
_CONTENT_RANGE_START = re.compile(r"bytes (\d+)-")


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
    upload so that `put` does not retry it as a failure of the target."""

    def __init__(self, error: RegplanError) -> None:
        super().__init__(str(error))
        self.error = error


class _SourceMarked:
    """Iterates `chunks` afresh each time (a `ReopenableChunks` re-opens the source), turning
    the source's own errors into `_SourceFailure`."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.verified = isinstance(chunks, ReopenableChunks) and chunks.verified

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


def _verified(chunks: Iterable[bytes], desc: Descriptor, what: str) -> Iterator[bytes]:
    """Pass chunks on while hashing them; refuse (mid-body) anything that is not `desc`.
    Raising before the last byte leaves the registry with an incomplete body it discards."""
    verifier = digests.Verifier(desc.digest, desc.size, what=what)
    for chunk in chunks:
        if chunk:
            verifier.update(chunk)
            yield chunk
    verifier.verify()


class Blobs:
    """The blob endpoints of every registry. Thread-safe."""

    def __init__(self, net: Transports, blob_limit: int) -> None:
        self._net = net
        self._blob_limit = blob_limit if blob_limit > 0 else DEFAULT_BLOB_LIMIT

    def _push(
        self,
        ref: ImageRef,
        method: str,
        url: str | httpx.URL,
        *,
        expect: frozenset[int] = OK,
        what: str = "",
        scope: Scope | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        upload: Iterable[bytes] | None = None,
        timeout: httpx.Timeout | None = None,
        retries: bool = True,
    ) -> Reply:
        """An upload-session request to `ref`'s registry."""
        return self._net.send(
            Request(
                method,
                registry=ref.registry,
                url=url,
                repository=ref.repository,
                kind="upload",
                scope=scope,
                actions=PUSH,
                headers=headers,
                body=body,
                upload=upload,
                expect=expect,
                what=what,
                where=str(ref.repo()),
                timeout=timeout,
                retries=retries,
            )
        )

    def _upload_url(self, ht: HostTransport, ref: ImageRef) -> str:
        return ht.url_for(Request("POST", repository=ref.repository, path="blobs/uploads/"))

    def head(self, ref: ImageRef, digest: str) -> int | None:
        digests.split(digest)
        reply = self._net.send(
            Request(
                "HEAD",
                registry=ref.registry,
                repository=ref.repository,
                path=f"blobs/{digest}",
                kind="blob",
                actions=PULL,
                follow_redirects=True,
                expect=OK | {404},
                what=f"blob head {digest}",
                where=str(ref.repo()),
            )
        )
        if reply.status == 404:
            return None
        length = reply.headers.get("content-length", "")
        return int(length) if length.isdigit() else -1

    @contextlib.contextmanager
    def get(self, ref: ImageRef, desc: Descriptor) -> Iterator[BlobStream]:
        digests.split(desc.digest)
        reply = self._net.send(
            Request(
                "GET",
                registry=ref.registry,
                repository=ref.repository,
                path=f"blobs/{desc.digest}",
                kind="blob",
                actions=PULL,
                headers=_IDENTITY,
                stream=True,
                mirrors=True,
                follow_redirects=True,
                expect=frozenset({200}),
                what=f"blob get {desc.digest}",
                where=str(ref.repo()),
            )
        )
        with reply:
            stream = _HTTPBlobStream(self._net.get(reply.host), reply, desc, where=str(ref.repo()))
            try:
                yield stream
            finally:
                stream.close()

    def mount(self, ref: ImageRef, digest: str, from_ref: ImageRef) -> bool:
        digests.split(digest)
        ht = self._net.get(ref.registry)
        source = repo_path(ht.host, from_ref.repository)
        what = f"blob mount {digest}"
        start = self._upload_url(ht, ref)
        reply = self._push(
            ref,
            "POST",
            with_query(with_query(start, "mount", digest), "from", source),
            scope=Scope.repository(repo_path(ht.host, ref.repository), *PUSH)
            | Scope.repository(source, "pull"),
            headers={"Content-Length": "0"},
            body=b"",
            expect=ANY,
            what=what,
        )
        if reply.status == 201:
            return True
        if reply.status == 202 and reply.headers.get("location"):
            self._cancel_upload(ref, reply.url.join(reply.headers["location"]))
        elif reply.status >= 500:
            raise status_error(reply, what, str(ref.repo()))
        log.debug("Blob mount declined", target=str(ref.repo()), digest=digest, status=reply.status)
        return False

    def put(self, ref: ImageRef, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        digests.split(desc.digest)
        ht = self._net.get(ref.registry)
        policy = self._net.policy
        reopenable = isinstance(chunks, ReopenableChunks | list | tuple)
        # an unknown size (schema1 layers) cannot be announced in one PUT: send it in chunks
        chunked = desc.size < 0 or (ht.host.blob_max > 0 and desc.size > ht.host.blob_max)
        attempts = 1 + (policy.max_retries if reopenable else 0)
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
                ht.pause(policy.backoff(attempt))  # before a fresh upload session

    def _upload(
        self,
        ht: HostTransport,
        ref: ImageRef,
        desc: Descriptor,
        chunks: _SourceMarked,
        *,
        chunked: bool,
    ) -> None:
        what = f"blob put {desc.digest}"
        where = str(ref.repo())
        start = self._upload_url(ht, ref)
        algorithm, _ = digests.split(desc.digest)
        if algorithm != "sha256":
            start = with_query(start, "digest-algorithm", algorithm)
        reply = self._push(
            ref,
            "POST",
            start,
            headers={"Content-Length": "0"},
            body=b"",
            expect=frozenset({202}),
            what=what,
        )
        if not reply.headers.get("location"):
            raise RegistryError(f"{what}: upload session without a Location", ref=where, status=202)
        location = reply.url.join(reply.headers["location"])
        chunk_size = ht.host.chunk_size
        minimum = reply.headers.get("oci-chunk-min-length", "")
        if minimum.isdigit():
            chunk_size = max(chunk_size, min(int(minimum), self._blob_limit))
        headers = {"Content-Type": "application/octet-stream"}
        try:
            if chunked:
                location = self._put_chunks(ref, desc, chunks, location, chunk_size)
                reply = self._push(
                    ref,
                    "PUT",
                    with_query(location, "digest", desc.digest),
                    headers={"Content-Length": "0", **headers},
                    body=b"",
                    timeout=BLOB_PUT_TIMEOUT,
                    what=what,
                )
            else:
                reply = self._push(
                    ref,
                    "PUT",
                    with_query(location, "digest", desc.digest),
                    headers={"Content-Length": str(desc.size), **headers},
                    # bytes from a verifying source are checked there (and by the registry
                    # against ?digest=): hashing them twice costs ~15 % of a big copy
                    upload=chunks
                    if chunks.verified
                    else _verified(chunks, desc, f"{what} to {ref.repo()}"),
                    timeout=BLOB_PUT_TIMEOUT,
                    what=what,
                )
            stored = reply.headers.get("docker-content-digest", "")
            if stored and stored != desc.digest:
                raise DigestMismatchError(f"{what}: registry stored {stored}", ref=where)
        except BaseException:
            self._cancel_upload(ref, location)
            raise

    def _put_chunks(
        self,
        ref: ImageRef,
        desc: Descriptor,
        chunks: Iterable[bytes],
        location: httpx.URL,
        chunk_size: int,
    ) -> httpx.URL:
        """PATCH the blob in `chunk_size` pieces; returns the location for the final PUT."""
        what = f"blob put {desc.digest}"
        verifier = digests.Verifier(desc.digest, desc.size, what=f"{what} to {ref.repo()}")
        offset = 0
        for piece in _rechunk(chunks, chunk_size):
            verifier.update(piece)
            location = self._patch(ref, location, piece, offset)
            offset += len(piece)
        verifier.verify()
        return location

    def _patch(self, ref: ImageRef, location: httpx.URL, piece: bytes, offset: int) -> httpx.URL:
        """Send one chunk; when the registry kept only part of it (its `Range` says so),
        send the rest. The chunk is in memory, so it can be resent."""
        what = "blob chunk upload"
        where = str(ref.repo())
        sent = 0
        for _ in range(4):
            data = piece[sent:]
            start = offset + sent
            reply = self._push(
                ref,
                "PATCH",
                location,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{start}-{start + len(data) - 1}",
                    "Content-Length": str(len(data)),
                },
                body=data,
                expect=frozenset({202, 416}),
                what=what,
            )
            if reply.status == 416:  # our offset is not where the registry is: ask it
                status = self._push(ref, "GET", location, expect=ANY, what=what)
                if status.status != 204:
                    raise status_error(reply, what, where)
                reply = status
            if reply.headers.get("location"):
                location = reply.url.join(reply.headers["location"])
            m = _RANGE.match(reply.headers.get("range", "").strip())
            have = int(m.group(2)) + 1 if m else offset + len(piece)
            if have == offset + len(piece):
                return location
            if not offset <= have < offset + len(piece):
                raise RegistryError(
                    f"{what}: registry holds {have} bytes, expected {offset + len(piece)}",
                    ref=where,
                )
            sent = have - offset
        raise RegistryError(f"{what}: registry keeps accepting only part of a chunk", ref=where)

    def _cancel_upload(self, ref: ImageRef, location: httpx.URL) -> None:
        try:
            self._push(ref, "DELETE", location, retries=False, expect=ANY)
        except (RegistryError, httpx.HTTPError) as e:
            log.debug("Failed to cancel upload", target=str(ref.repo()), error=str(e))


class _HTTPBlobStream(BlobStream):
    """A blob body being read; a connection that breaks mid-body is resumed with a `Range`
    request (or re-read and skipped when the registry ignores Range)."""

    def __init__(self, ht: HostTransport, reply: Reply, desc: Descriptor, *, where: str) -> None:
        assert reply.request is not None and reply.response is not None
        self.size = desc.size
        self._ht = ht
        # the host that answered, the URL and scope it was asked with
        self._request = dataclasses.replace(
            reply.request, registry=reply.host, url=reply.sent, scope=reply.scope
        )
        self._reply = reply
        self._desc = desc
        self._where = where
        self._started = False
        length = reply.headers.get("content-length", "")
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
        ht = self._ht
        verifier = digests.Verifier(
            self._desc.digest, self._desc.size, what=f"blob {self._desc.digest}"
        )
        skip = 0  # bytes of a restarted body already delivered
        resumes = 0
        window = ht.limits.blob_stall_timeout
        watch = StallWatch(window, time.monotonic())
        while True:
            response = self._reply.response
            assert response is not None
            try:
                for chunk in response.iter_raw():
                    if watch.stalled(len(chunk), time.monotonic()):
                        raise RegistryError(
                            f"blob {self._desc.digest}: {ht.name} sent less than "
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
                if resumes > ht.policy.max_retries:
                    raise RegistryError(
                        f"blob {self._desc.digest}: connection to {ht.name} broke after "
                        f"{verifier.size} bytes: {type(e).__name__}",
                        ref=self._where,
                    ) from None
                delay = ht.policy.backoff(resumes)
                log.warn(
                    "Sleeping for backoff",
                    registry=ht.name,
                    method="GET",
                    reason=f"blob read broke after {verifier.size} bytes",
                    seconds=round(delay, 3),
                    attempt=resumes,
                )
                ht.pause(delay)
                self._reply.close()
                self._reply, skip = self._resume(verifier.size)
        try:
            verifier.verify()
        except DigestMismatchError as e:
            raise DigestMismatchError(e.message, ref=self._where) from None

    def _resume(self, offset: int) -> tuple[Reply, int]:
        headers = dict(_IDENTITY)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = dataclasses.replace(
            self._request, headers=headers, expect=ANY, retries=True, what=""
        )
        try:
            reply = self._ht.send(request)
        except TransportFailure as e:
            raise RegistryError(f"blob {self._desc.digest}: {e.message}", ref=self._where) from None
        if reply.status == 206:
            m = _CONTENT_RANGE_START.match(reply.headers.get("content-range", ""))
            if m and int(m.group(1)) == offset:
                return reply, 0
            reply.close()
            raise RegistryError(
                f"blob {self._desc.digest}: registry resumed at the wrong offset", ref=self._where
            )
        if reply.status == 200:
            return reply, offset
        reply.close()
        raise RegistryError(
            f"blob {self._desc.digest}: resuming the download failed",
            ref=self._where,
            status=reply.status,
        )

    def close(self) -> None:
        self._reply.close()
