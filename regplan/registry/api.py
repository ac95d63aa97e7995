"""The one interface every registry backend implements (HTTP registry, OCI Layout).

The planner and applier talk only to this interface (through `RegistryClient`, which routes a
reference to its backend), so copy logic never asks which kind of store it talks to.

Conventions shared by every backend:
- `ref` is an `ImageRef`; for manifest calls it carries a tag or a digest (digest wins).
- "Not there" is a value (`None` / `False`) for head-style calls and `NotFoundError` for gets.
- Every byte read is verified against the digest asked for; a mismatch raises
  `DigestMismatchError` and nothing unverified is handed on.
- Methods are safe to call from several threads at once.
"""

from __future__ import annotations

import enum
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from regplan.oci.descriptor import Descriptor
from regplan.oci.manifest import Manifest
from regplan.refs import ImageRef


@dataclass(frozen=True)
class RateLimitInfo:
    """Docker Hub style `RateLimit-*` headers of a manifest response."""

    limit: int | None = None
    remaining: int | None = None
    policy: str = ""  # what followed the number in RateLimit-Limit, e.g. "w=21600"


@dataclass(frozen=True)
class ManifestHead:
    digest: str
    media_type: str
    size: int
    rate_limit: RateLimitInfo | None = None


class DeleteMode(enum.Enum):
    """How a store removes a tag."""

    TAG = "tag"  # the tag itself (OCI `DELETE /v2/<name>/manifests/<tag>`, OCI Layouts)
    DIGEST = "digest"  # only the manifest by digest, which removes every tag on it
    NONE = "none"  # the store refuses deletes


@dataclass(frozen=True)
class DeleteSupport:
    mode: DeleteMode
    why: str = ""  # what the store answered, for the error when deletes are refused


class BlobStream(ABC):
    """A blob being read. Iterating yields chunks; the digest and size are checked when the
    last chunk has been read, and `DigestMismatchError` is raised instead of ending normally."""

    size: int

    @abstractmethod
    def __iter__(self) -> Iterator[bytes]: ...


class ReopenableChunks:
    """Blob chunks that can be read more than once: each iteration calls `open()` afresh.

    Passed to `Backend.blob_put`, it lets a backend retry a failed upload in a new session
    (re-reading from the source) instead of failing: a one-shot iterable cannot be replayed.
    `verified` says every read checks digest and size itself (a `BlobStream`), so an upload
    need not hash the bytes a second time."""

    def __init__(self, open: Callable[[], Iterable[bytes]], *, verified: bool = False) -> None:
        self.open = open
        self.verified = verified

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.open())


class RequestCounter:
    """Counts requests by (registry, method, kind) — for tests, benchmarks and metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, registry: str, method: str, kind: str) -> None:
        with self._lock:
            self.counts[(registry, method, kind)] += 1

    def total(self, *, registry: str = "", method: str = "", kind: str = "") -> int:
        with self._lock:
            return sum(
                n
                for (r, m, k), n in self.counts.items()
                if (not registry or r == registry)
                and (not method or m == method)
                and (not kind or k == kind)
            )

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f"{r} {m} {k}": n for (r, m, k), n in sorted(self.counts.items())}


class Backend(ABC):
    """Operations on one kind of store. See the module docstring for shared conventions."""

    # -- manifests ----------------------------------------------------------------------------
    @abstractmethod
    def manifest_head(self, ref: ImageRef) -> ManifestHead | None:
        """Digest, media type and size of the manifest `ref` names, or None if absent."""

    def manifest_digest(self, ref: ImageRef) -> str | None:
        """The digest `ref` names now, or None if absent, without vouching for the content
        below it (a store that checks completeness in `manifest_head` may skip that here)."""
        head = self.manifest_head(ref)
        return head.digest if head else None

    @abstractmethod
    def manifest_get(self, ref: ImageRef) -> Manifest:
        """The manifest bytes, verified against `ref.digest` (or the registry's advertised
        digest); raises NotFoundError, ManifestError (invalid / oversized / unknown type)."""

    @abstractmethod
    def manifest_put(self, ref: ImageRef, manifest: Manifest) -> bool:
        """Push `manifest` by `ref.tag` if set, else by its digest. Returns True when the
        store itself indexed the manifest's `subject` (OCI-Subject header), so no referrers
        fallback tag needs maintaining; False otherwise."""

    @abstractmethod
    def manifest_delete(self, ref: ImageRef) -> None:
        """Delete a tag (or a manifest by digest) where the store allows it."""

    def delete_support(self, ref: ImageRef) -> DeleteSupport:
        """How `ref`'s repository removes a tag, found without removing anything."""
        return DeleteSupport(DeleteMode.TAG)

    # -- blobs --------------------------------------------------------------------------------
    @abstractmethod
    def blob_head(self, ref: ImageRef, digest: str) -> int | None:
        """Size of blob `digest` in `ref`'s repository, or None if absent."""

    @abstractmethod
    def blob_get(self, ref: ImageRef, desc: Descriptor) -> AbstractContextManager[BlobStream]:
        """Open blob `desc` for streaming; digest and size are verified as it is read."""

    @abstractmethod
    def blob_put(self, ref: ImageRef, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        """Store blob `desc` from an iterable of chunks without holding it whole in memory.
        The stored blob must have `desc.digest` and `desc.size`, else DigestMismatchError."""

    @abstractmethod
    def blob_mount(self, ref: ImageRef, digest: str, from_ref: ImageRef) -> bool:
        """Cross-repository mount within one store; True if the blob is now in `ref`'s
        repository, False if the store declined (the caller then copies the bytes)."""

    # -- listings -----------------------------------------------------------------------------
    @abstractmethod
    def tag_list(self, ref: ImageRef) -> list[str]:
        """Every tag of `ref`'s repository (all pages). NotFoundError if the repo is absent."""

    @abstractmethod
    def catalog(self, ref: ImageRef) -> list[str]:
        """Repository names of `ref.registry` (`/v2/_catalog`, all pages)."""

    # -- referrers ----------------------------------------------------------------------------
    @abstractmethod
    def referrers_api(self, ref: ImageRef) -> bool:
        """Whether `ref`'s repository answers the OCI referrers API (detected once, cached)."""

    @abstractmethod
    def referrers(
        self, ref: ImageRef, digest: str, *, artifact_type: str = "", slow: bool = False
    ) -> list[Descriptor]:
        """Descriptors of manifests whose `subject` is `digest`, via the referrers API or the
        `sha256-<hex>` fallback tag index; `slow` also scans every manifest (OCI Layouts)."""

    # -- optional abilities: a backend without them keeps these defaults ----------------------
    def rate_limits(self) -> dict[str, RateLimitInfo]:
        """The last rate limit each registry announced (Docker Hub `RateLimit-*`)."""
        return {}

    def close_all(self) -> None:  # noqa: B027 - optional hook
        """Close every connection (a watch reload replacing its client, shutdown)."""

    # -- lifecycle ----------------------------------------------------------------------------
    def begin_writes(self, ref: ImageRef) -> None:  # noqa: B027 - optional hook
        """Called before an apply may write to `ref`'s repository (OCI Layout GC guard)."""

    def end_writes(self, ref: ImageRef, *, collect: bool) -> None:  # noqa: B027 - optional hook
        """Called when that apply ends; `collect` when everything landed (OCI Layout GC)."""

    def close(self, ref: ImageRef) -> None:  # noqa: B027 - optional hook
        """Called after writes to `ref`'s repository are finished (OCI Layout GC)."""
