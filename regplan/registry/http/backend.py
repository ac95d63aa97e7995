"""`HTTPBackend`: the OCI distribution API over httpx, as a thin facade.

The resource modules say *what* to ask a registry (`manifests`, `blobs`, `listings`,
`referrers`: paths, headers, how answers are read and verified); `transport` says *how* a
request travels (one request value, one send: mirrors, TLS, retries, limits, counting,
logging) and `auth` how it is authorised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager

import httpx

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
from regplan.registry.credentials import CredentialStore
from regplan.registry.http.blobs import Blobs
from regplan.registry.http.cache import TTLCache
from regplan.registry.http.listings import Listings
from regplan.registry.http.manifests import Manifests
from regplan.registry.http.referrers import Referrers
from regplan.registry.transport import HostTransport, RetryPolicy, Transports

DEFAULT_USER_AGENT = f"regplan/{__version__}"


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
        cancel: CancelToken | None = None,
    ) -> None:
        self.net = Transports(
            hosts,
            user_agent=user_agent or DEFAULT_USER_AGENT,
            policy=RetryPolicy(retry_delay, retry_max_delay, max_retries),
            counter=counter,
            credentials=credentials or CredentialStore(),
            transport=transport,
            cancel=cancel,
        )
        self._manifests = Manifests(self.net, TTLCache(cache_count, cache_time))
        self._blobs = Blobs(self.net, blob_limit)
        self._listings = Listings(self.net)
        self._referrers = Referrers(self.net, TTLCache(cache_count, cache_time), self)

    def __repr__(self) -> str:
        return f"<HTTPBackend {self.net.names}>"

    def host(self, name: str) -> Host:
        return self.net.host(name)

    def transport_for(self, name: str) -> HostTransport:
        return self.net.get(name)

    def rate_limits(self) -> dict[str, RateLimitInfo]:
        return self._manifests.rate_limits()

    def close_all(self) -> None:
        self.net.close_all()

    # -- manifests ----------------------------------------------------------------------------
    def manifest_head(self, ref: ImageRef) -> ManifestHead | None:
        return self._manifests.head(ref)

    def manifest_get(self, ref: ImageRef) -> Manifest:
        return self._manifests.get_with_rate(ref)[0]

    def manifest_put(self, ref: ImageRef, manifest: Manifest) -> bool:
        indexed = self._manifests.put(ref, manifest)
        self._referrers.forget(ref)
        return indexed

    def manifest_delete(self, ref: ImageRef) -> None:
        self._manifests.delete(ref)

    def delete_support(self, ref: ImageRef) -> DeleteSupport:
        return self._manifests.delete_support(ref)

    # -- blobs --------------------------------------------------------------------------------
    def blob_head(self, ref: ImageRef, digest: str) -> int | None:
        return self._blobs.head(ref, digest)

    def blob_get(self, ref: ImageRef, desc: Descriptor) -> AbstractContextManager[BlobStream]:
        return self._blobs.get(ref, desc)

    def blob_put(self, ref: ImageRef, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        self._blobs.put(ref, desc, chunks)

    def blob_mount(self, ref: ImageRef, digest: str, from_ref: ImageRef) -> bool:
        return self._blobs.mount(ref, digest, from_ref)

    # -- listings -----------------------------------------------------------------------------
    def tag_list(self, ref: ImageRef) -> list[str]:
        return self._listings.tags(ref)

    def catalog(self, ref: ImageRef) -> list[str]:
        return self._listings.catalog(ref)

    # -- referrers ----------------------------------------------------------------------------
    def referrers_api(self, ref: ImageRef) -> bool:
        return self._referrers.api(ref)

    def referrers(
        self, ref: ImageRef, digest: str, *, artifact_type: str = "", slow: bool = False
    ) -> list[Descriptor]:
        return self._referrers.find(ref, digest, artifact_type=artifact_type)
