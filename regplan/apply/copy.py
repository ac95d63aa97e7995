"""Copy primitives: one blob, one manifest, one tag. Each is a single, verified transfer.

The applier decides nothing about *what* to copy (the plan did); these only do the *how*:
mount when the registry can, stream otherwise (constant memory, digest and size verified on
the way), and push manifests exactly as their pinned bytes say.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from regplan import logs
from regplan.apply.status import ActionStatus
from regplan.cancel import CancelToken
from regplan.errors import (
    CancelledError,
    DigestMismatchError,
    ManifestError,
    RateLimitedError,
    RegistryError,
    TagMovedError,
    UnauthorizedError,
)
from regplan.oci.descriptor import Descriptor
from regplan.oci.manifest import Manifest, parse
from regplan.plan import model
from regplan.plan.model import Action
from regplan.refs import ImageRef
from regplan.registry.api import Backend, ReopenableChunks
from regplan.registry.transport import TransportFailure

log = logs.get(__name__)


@dataclass(frozen=True)
class Transfer:
    """What one action did."""

    status: ActionStatus  # DONE or SKIPPED: a failure raises
    detail: str = ""  # "mounted", "exists", ...
    bytes: int = 0


def pinned_manifest(action: Action) -> Manifest:
    """The manifest bytes the plan pinned, re-verified (a plan file is data from outside)."""
    if action.manifest is None:
        raise DigestMismatchError(
            f"plan action {action.id} carries no manifest for {action.target}"
        )
    return parse(
        action.manifest,
        action.media_type,
        digest=action.digest,
        where=f"plan action {action.id} ({action.target})",
    )


def _guarded(
    chunks: Iterable[bytes], cancel: CancelToken | None, progress: Callable[[int], None] | None
) -> Iterator[bytes]:
    for chunk in chunks:
        if cancel is not None and cancel.cancelled:
            raise CancelledError("task was canceled")
        if progress is not None:
            progress(len(chunk))
        yield chunk


class BlobCopier:
    """Copies blobs into target repositories, once per (target registry, digest) in a run:
    a blob already pushed to another repository of the same registry is mounted from there
    instead of being read from the source again."""

    def __init__(self, client: Backend, *, cancel: CancelToken | None = None) -> None:
        self.client = client
        self.cancel = cancel
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._landed: dict[tuple[str, str], ImageRef] = {}  # (registry, digest) -> repo holding it

    def _lock_for(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def copy(
        self, action: Action, *, check_target: bool, progress: Callable[[int], None] | None = None
    ) -> Transfer:
        target = ImageRef.parse(action.target).repo()
        source = ImageRef.parse(action.source).repo()
        if action.size < 0:
            # the planner never plans one; a plan file is data from outside
            raise ManifestError(f"plan action {action.id}: blob {action.digest} has no size")
        desc = Descriptor(media_type=action.media_type, digest=action.digest, size=action.size)
        registry_key = (target.registry or f"ocidir:{target.path}", action.digest)
        with self._lock_for(registry_key):
            if check_target and self.client.blob_head(target, action.digest) is not None:
                self._remember(registry_key, target)
                return Transfer(ActionStatus.SKIPPED, "exists")
            if action.mount_from:
                mount_from = ImageRef.parse(action.mount_from)
                if self.client.blob_mount(target, action.digest, mount_from):
                    self._remember(registry_key, target)
                    return Transfer(ActionStatus.DONE, "mounted")
            landed = self._landed.get(registry_key)
            if (
                landed is not None
                and not target.is_ocidir
                and self.client.blob_mount(target, action.digest, landed)
            ):
                return Transfer(ActionStatus.DONE, "mounted")
            log.info(
                "Copy config" if "config" in action.media_type else "Copy layer",
                source=str(source),
                target=str(target),
                layer=action.digest,
                size=action.size,
            )

            def read() -> Iterator[bytes]:
                with self.client.blob_get(source, desc) as stream:
                    yield from _guarded(stream, self.cancel, progress)

            # re-readable: a backend may retry a failed upload in a fresh session
            self.client.blob_put(target, desc, ReopenableChunks(read, verified=True))
            self._remember(registry_key, target)
            return Transfer(ActionStatus.DONE, "copied", bytes=max(action.size, 0))

    def _remember(self, key: tuple[str, str], repo: ImageRef) -> None:
        with self._guard:
            self._landed.setdefault(key, repo)


def push_manifest(
    client: Backend, action: Action, *, check_target: bool, cancel: CancelToken | None = None
) -> Transfer:
    """A manifest by digest (index child, referrer). Referrers also update the fallback tag
    (RegistryClient does that for stores without the referrers API)."""
    manifest = pinned_manifest(action)
    target = ImageRef.parse(action.target).repo().with_digest(action.digest)
    if check_target:
        if action.subject:
            listed = {d.digest for d in client.referrers(target.repo(), action.subject)}
            if action.digest in listed:
                return Transfer(ActionStatus.SKIPPED, "listed")
        elif client.manifest_head(target) is not None:
            return Transfer(ActionStatus.SKIPPED, "exists")
    put_manifest(client, action, target, manifest, cancel)
    return Transfer(ActionStatus.DONE, "pushed")


def blob_unknown(error: RegistryError) -> bool:
    """Whether a manifest PUT was refused for a blob the registry says it lacks. distribution
    2.8 does this when concurrent writers upload the same blob: one upload's link can go
    missing although the blob was uploaded (400 MANIFEST_BLOB_UNKNOWN)."""
    return error.status == 400 and "MANIFEST_BLOB_UNKNOWN" in error.message


def put_manifest(
    client: Backend,
    action: Action,
    target: ImageRef,
    manifest: Manifest,
    cancel: CancelToken | None = None,
) -> None:
    """PUT the manifest; refused for an unknown blob, copy the blobs the target lacks again
    and PUT once more (a second refusal stands)."""
    try:
        client.manifest_put(target, manifest)
        return
    except RegistryError as e:
        if not blob_unknown(e):
            raise
        log.warn(
            "Registry refused the manifest for a blob it lacks; copying it again",
            target=str(target),
            error=str(e),
        )
    _recopy_missing(client, action, manifest, cancel)
    client.manifest_put(target, manifest)


def _recopy_missing(
    client: Backend, action: Action, manifest: Manifest, cancel: CancelToken | None
) -> None:
    target = ImageRef.parse(action.target).repo()
    source = ImageRef.parse(action.source).repo()
    for desc in manifest.blobs():
        if client.blob_head(target, desc.digest) is not None:
            continue

        def read(desc: Descriptor = desc) -> Iterator[bytes]:
            with client.blob_get(source, desc) as stream:
                yield from _guarded(stream, cancel, None)

        client.blob_put(target, desc, ReopenableChunks(read, verified=True))


# `sha256-<hex>`: a referrers fallback tag, rewritten by this very run's referrer pushes
_FALLBACK_TAG = re.compile(r"[a-z0-9]+-[0-9a-f]{32,}")


def _short(digest: str | None) -> str:
    return digest[:19] if digest else "absent"


def moved_tag(action: Action, current: str | None) -> str | None:
    """Why a tag or backup action must not run, given what its tag holds right now; None
    when it may. A backup is checked against the tag it saves (it must still hold the
    digest being saved); a tag against what the plan found there (or already its digest)."""
    if action.kind == model.BACKUP:
        original = f"{action.source.split('@', 1)[0]}:{action.source_tag}"
        if current == action.digest:
            return None
        return (
            f"{original} moved since the plan: planned to back up {_short(action.digest)}, "
            f"now {_short(current)} (another writer pushed it); not backed up, not overwritten"
        )
    if current in (action.before, action.digest):
        return None
    return (
        f"{action.target} moved since the plan: planned over {_short(action.before)}, "
        f"now {_short(current)} (another writer pushed it); not overwritten"
    )


def push_tag(client: Backend, action: Action, *, cancel: CancelToken | None = None) -> Transfer:
    """Point a tag at the pinned manifest: the last write of an image, after its content.

    Registries have no conditional PUT, so the tag (for a backup: the tag it saves) is read
    once more right before the write: a writer that moved it since the plan wins, and this
    image fails as stale instead of overwriting it unseen. Digest tags name their content
    and referrers fallback tags are merged by the run itself: neither is checked."""
    manifest = pinned_manifest(action)
    target = ImageRef.parse(action.target)
    fallback = action.kind == model.TAG and _FALLBACK_TAG.fullmatch(target.tag or "")
    if action.kind in (model.TAG, model.BACKUP) and not fallback:
        watched = (
            ImageRef.parse(action.source).repo().with_tag(action.source_tag)
            if action.kind == model.BACKUP
            else target
        )
        head = client.manifest_head(watched)
        current = head.digest if head else None
        why = moved_tag(action, current)
        if why is not None:
            raise TagMovedError(why)
        if action.kind == model.TAG and current == action.digest:
            return Transfer(ActionStatus.SKIPPED, "already there")
    try:
        put_manifest(client, action, target, manifest, cancel)
    except RegistryError as e:
        if isinstance(e, TransportFailure | UnauthorizedError | RateLimitedError):
            raise
        # registries with immutable tags refuse a PUT to an existing tag ("tag already
        # exists"): when the tag already holds the planned digest, that is what was wanted
        head = client.manifest_head(target)
        if head is None or head.digest != action.digest:
            raise
        return Transfer(ActionStatus.DONE, "already tagged (the registry refused the overwrite)")
    return Transfer(ActionStatus.DONE, "tagged")
