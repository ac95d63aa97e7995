"""`RegistryClient`: the one object the planner and applier use for every store.

It routes each reference to its backend (HTTP registry or OCI Layout). It writes nothing of
its own accord: a referrers fallback tag is a plan action like every other tag.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from regplan import __version__
from regplan.cancel import CancelToken
from regplan.config.hosts import Host
from regplan.oci.descriptor import Descriptor
from regplan.oci.manifest import Manifest
from regplan.refs import ImageRef
from regplan.registry.api import (
    Backend,
    BlobStream,
    DeleteSupport,
    ManifestHead,
    RateLimitInfo,
    RequestCounter,
)

if TYPE_CHECKING:
    from regplan.config.model import Config
    from regplan.registry.ocidir import OCIDirBackend

DEFAULT_USER_AGENT = f"regplan/{__version__}"


class RegistryClient(Backend):
    """Routes by scheme; each backend is created on first use (keeps start-up cheap)."""

    def __init__(
        self,
        hosts: Sequence[Host] = (),
        *,
        user_agent: str = "",
        blob_limit: int = 0,
        cache_count: int = 0,
        cache_time: float = 0.0,
        counter: RequestCounter | None = None,
        http_factory: Callable[[], Backend] | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.hosts = tuple(hosts)
        # the run's stop: every request and every wait of the HTTP layer honours it
        self.cancel = cancel
        self.counter = counter or RequestCounter()
        self._user_agent = user_agent or DEFAULT_USER_AGENT
        self._blob_limit = blob_limit
        self._cache_count = cache_count
        self._cache_time = cache_time
        self._http_factory = http_factory
        self._http: Backend | None = None
        self._ocidir: OCIDirBackend | None = None
        self._backend_lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        counter: RequestCounter | None = None,
        cancel: CancelToken | None = None,
    ) -> RegistryClient:
        """Hosts from the config's `creds` merged over docker's config.json (unless skipped)."""
        from regplan.registry.credentials import load_hosts

        hosts = load_hosts(config.creds, skip_docker_config=config.defaults.skip_docker_config)
        d = config.defaults
        return cls(
            hosts,
            user_agent=d.user_agent,
            blob_limit=d.blob_limit,
            cache_count=d.cache_count,
            cache_time=d.cache_time,
            counter=counter,
            cancel=cancel,
        )

    # -- routing ------------------------------------------------------------------------------
    @property
    def http(self) -> Backend:
        backend = self._http  # asked on every request: no lock once it exists
        if backend is not None:
            return backend
        with self._backend_lock:
            if self._http is None:
                if self._http_factory is not None:
                    self._http = self._http_factory()
                else:
                    from regplan.registry.http import HTTPBackend

                    self._http = HTTPBackend(
                        self.hosts,
                        user_agent=self._user_agent,
                        blob_limit=self._blob_limit,
                        cache_count=self._cache_count,
                        cache_time=self._cache_time,
                        counter=self.counter,
                        cancel=self.cancel,
                    )
            return self._http

    @property
    def ocidir(self) -> OCIDirBackend:
        backend = self._ocidir
        if backend is not None:
            return backend
        with self._backend_lock:
            if self._ocidir is None:
                from regplan.registry.ocidir import OCIDirBackend

                self._ocidir = OCIDirBackend()
            return self._ocidir

    def backend(self, ref: ImageRef) -> Backend:
        return self.ocidir if ref.is_ocidir else self.http

    def rate_limits(self) -> dict[str, RateLimitInfo]:
        return {} if self._http is None else self._http.rate_limits()

    def close_all(self) -> None:
        if self._http is not None:
            self._http.close_all()

    # -- Backend, delegated -------------------------------------------------------------------
    def manifest_head(self, ref: ImageRef) -> ManifestHead | None:
        return self.backend(ref).manifest_head(ref)

    def manifest_digest(self, ref: ImageRef) -> str | None:
        return self.backend(ref).manifest_digest(ref)

    def manifest_get(self, ref: ImageRef) -> Manifest:
        return self.backend(ref).manifest_get(ref)

    def manifest_put(self, ref: ImageRef, manifest: Manifest) -> bool:
        # No referrers fallback tag is written here: every tag apply writes is an action of
        # the plan (the planner plans the fallback index as a digest tag), so nothing changes
        # that the plan did not show and the stale check did not cover.
        return self.backend(ref).manifest_put(ref, manifest)

    def manifest_delete(self, ref: ImageRef) -> None:
        self.backend(ref).manifest_delete(ref)

    def delete_support(self, ref: ImageRef) -> DeleteSupport:
        return self.backend(ref).delete_support(ref)

    def blob_head(self, ref: ImageRef, digest: str) -> int | None:
        return self.backend(ref).blob_head(ref, digest)

    def blob_get(self, ref: ImageRef, desc: Descriptor) -> AbstractContextManager[BlobStream]:
        return self.backend(ref).blob_get(ref, desc)

    def blob_put(self, ref: ImageRef, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        self.backend(ref).blob_put(ref, desc, chunks)

    def blob_mount(self, ref: ImageRef, digest: str, from_ref: ImageRef) -> bool:
        if not ref.same_registry(from_ref):
            return False
        return self.backend(ref).blob_mount(ref, digest, from_ref)

    def tag_list(self, ref: ImageRef) -> list[str]:
        return self.backend(ref).tag_list(ref)

    def catalog(self, ref: ImageRef) -> list[str]:
        return self.backend(ref).catalog(ref)

    def referrers_api(self, ref: ImageRef) -> bool:
        return self.backend(ref).referrers_api(ref)

    def referrers(
        self, ref: ImageRef, digest: str, *, artifact_type: str = "", slow: bool = False
    ) -> list[Descriptor]:
        return self.backend(ref).referrers(ref, digest, artifact_type=artifact_type, slow=slow)

    def begin_writes(self, ref: ImageRef) -> None:
        self.backend(ref).begin_writes(ref)

    def end_writes(self, ref: ImageRef, *, collect: bool) -> None:
        self.backend(ref).end_writes(ref, collect=collect)

    def close(self, ref: ImageRef) -> None:
        self.backend(ref).close(ref)
