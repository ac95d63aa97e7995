"""The planner's read-only view of the registries: every distinct question asked once.

Many images share children, blobs and repositories; memoising here keeps planning to one
request per distinct fact even when checks run concurrently (a second asker waits for the
first answer instead of sending the same request again). Only reads: the planner never writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar, cast

from regplan.cancel import CancelToken
from regplan.errors import NotFoundError, RegplanError
from regplan.oci.descriptor import Descriptor
from regplan.oci.manifest import Manifest
from regplan.refs import ImageRef
from regplan.registry.api import Backend, ManifestHead

T = TypeVar("T")


class _Once:
    """Compute each key once; concurrent askers share the same future (errors included)."""

    def __init__(self, cancel: CancelToken | None = None) -> None:
        self._lock = threading.Lock()
        self._futures: dict[Hashable, Future[Any]] = {}
        # Finished computations by outcome. Most questions are asked again after they are
        # answered (a shared blob, the index of every image, `failed` before most requests),
        # and a dict read needs neither the lock the planning threads share nor the
        # future's own condition.
        self._values: dict[Hashable, Any] = {}
        self._errors: dict[Hashable, BaseException] = {}
        self._cancel = cancel

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        value = self._values.get(key, _UNANSWERED)
        if value is not _UNANSWERED:
            return cast(T, value)
        with self._lock:
            # answered between the read above and the lock: the future is gone by now
            if key in self._values:
                return cast(T, self._values[key])
            if key in self._errors:
                raise self._errors[key].with_traceback(None)
            future = self._futures.get(key)
            owner = future is None
            if owner:
                future = Future()
                self._futures[key] = future
        assert future is not None
        if owner:
            try:
                if self._cancel is not None:
                    self._cancel.check()  # a cancelled plan sends no further request
                value = compute()
            except BaseException as e:
                # Kept for the whole plan: without its traceback, which would keep every
                # frame of the failed request (and what they held) alive with it.
                e.__traceback__ = None
                with self._lock:
                    self._errors[key] = e  # before the future: whoever it wakes sees both
                    del self._futures[key]
                future.set_exception(e)
            else:
                with self._lock:
                    self._values[key] = value
                    del self._futures[key]  # a finished question is a dict read from now on
                future.set_result(value)
        return future.result()

    def failed(self, key: Hashable) -> BaseException | None:
        """The error a finished computation of `key` ended with (never computes, never waits)."""
        return self._errors.get(key)


_UNANSWERED = object()


class RegistryView:
    def __init__(self, client: Backend, cancel: CancelToken | None = None) -> None:
        self.client = client
        self._once = _Once(cancel)

    def head(self, ref: ImageRef) -> ManifestHead | None:
        if self._known_missing(ref):
            return None
        return self._once.get(("head", ref), lambda: self.client.manifest_head(ref))

    def manifest(self, ref: ImageRef) -> Manifest:
        """A manifest by digest (pinned refs are what the planner reads bodies of)."""
        return self._once.get(
            ("manifest", ref.repo_key, ref.digest or ref.tag), lambda: self.client.manifest_get(ref)
        )

    def has_manifest(self, repo: ImageRef, digest: str) -> bool:
        if self._known_missing(repo):
            return False
        ref = repo.with_digest(digest)
        return self._once.get(
            ("has-manifest", ref), lambda: self.client.manifest_head(ref) is not None
        )

    def has_blob(self, repo: ImageRef, digest: str) -> bool:
        if self._known_missing(repo):
            return False
        return self._once.get(
            ("blob", repo.repo_key, digest), lambda: self.client.blob_head(repo, digest) is not None
        )

    def tags(self, repo: ImageRef) -> list[str]:
        return self._once.get(("tags", repo.repo_key), lambda: self.client.tag_list(repo.repo()))

    def tags_or_empty(self, repo: ImageRef) -> list[str]:
        """Tags of a repository that may not exist yet (a new target)."""
        try:
            return self.tags(repo)
        except NotFoundError:
            return []

    def repo_missing(self, repo: ImageRef) -> bool:
        """Whether the repository does not exist at all (its tag list is unknown to the
        registry). Asked once, after a first 404 from it: then nothing in it needs a request —
        a cold target would otherwise cost a HEAD for every manifest and blob it will get."""
        try:
            self.tags(repo)
        except NotFoundError:
            return True
        except RegplanError:
            # an account may push and pull but not list (regsync never lists for an image
            # step): then only the requests it would have saved are sent
            return False
        return False

    def _known_missing(self, repo: ImageRef) -> bool:
        return isinstance(self._once.failed(("tags", repo.repo_key)), NotFoundError)

    def catalog(self, registry: ImageRef) -> list[str]:
        return self._once.get(("catalog", registry.repo_key), lambda: self.client.catalog(registry))

    def referrers_api(self, repo: ImageRef) -> bool:
        return self._once.get(
            ("referrers-api", repo.repo_key), lambda: self.client.referrers_api(repo.repo())
        )

    def referrers(self, repo: ImageRef, digest: str, *, slow: bool = False) -> list[Descriptor]:
        return self._once.get(
            ("referrers", repo.repo_key, digest, slow),
            lambda: self.client.referrers(repo.repo(), digest, slow=slow),
        )
