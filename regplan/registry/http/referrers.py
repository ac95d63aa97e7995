"""Referrers over HTTP: the OCI referrers API where a repository answers it (probed once per
`REFERRERS_SUPPORT_TTL`), else the `sha256-<hex>` fallback tag index."""

from __future__ import annotations

import threading
import time

import httpx
import orjson

from regplan import logs
from regplan.errors import RegistryError
from regplan.oci import digest as digests
from regplan.oci import manifest as manifests
from regplan.oci import mediatypes as mt
from regplan.oci.descriptor import Descriptor
from regplan.refs import ImageRef
from regplan.registry import referrers as fallback
from regplan.registry.api import Backend
from regplan.registry.http.cache import TTLCache
from regplan.registry.http.listings import ListingError, capped, pages
from regplan.registry.transport import ANY, Reply, Request, Transports, with_query

log = logs.get(__name__)

REFERRERS_SUPPORT_TTL = 300.0  # seconds a referrers-API probe result is trusted
PULL = ("pull",)


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


class Referrers:
    """Referrer lists of every registry; `backend` reads fallback tag indexes. Thread-safe."""

    def __init__(self, net: Transports, cache: TTLCache, backend: Backend) -> None:
        self._net = net
        self.cache = cache
        self._backend = backend
        self._lock = threading.Lock()
        self._support: dict[tuple[str, str], tuple[float, bool]] = {}

    def _known_support(self, ref: ImageRef) -> tuple[float, bool] | None:
        """What the last probe said for this repository, or for the whole registry when the
        registry has no referrers route at all (then no repository of it needs a probe)."""
        now = time.monotonic()
        with self._lock:
            for key in ((ref.registry, ref.repository), (ref.registry, "")):
                known = self._support.get(key)
                if known is not None and now - known[0] < REFERRERS_SUPPORT_TTL:
                    return known
        return None

    def api(self, ref: ImageRef) -> bool:
        known = self._known_support(ref)
        if known is not None:
            return known[1]
        # any digest does for the probe: the answer's shape is what matters
        probe = "sha256:" + "0" * 64
        return self._probe(ref, probe, "") is not None

    def _probe(self, ref: ImageRef, digest: str, artifact_type: str) -> list[Descriptor] | None:
        """Ask the referrers API once (no retries): the descriptors, or None if unsupported."""
        what = "referrers"
        where = str(ref.repo())
        ht = self._net.get(ref.registry)
        url = ht.url_for(Request("GET", repository=ref.repository, path=f"referrers/{digest}"))
        if artifact_type:
            url = with_query(url, "artifactType", artifact_type)
        result: list[Descriptor] | None = None
        try:
            reply = self._net.send(
                Request(
                    "GET",
                    registry=ref.registry,
                    url=url,
                    repository=ref.repository,
                    kind="referrers",
                    actions=PULL,
                    retries=False,
                    limit=mt.MAX_MANIFEST_SIZE,
                    expect=ANY,
                    what=what,
                    where=where,
                )
            )
            if _route_missing(reply):
                with self._lock:  # e.g. distribution 2.8: "404 page not found", not an OCI error
                    self._support[(ref.registry, "")] = (time.monotonic(), False)
            if reply.status == 200:
                found: dict[Descriptor, None] | None = {}
                for page in pages(self._net, reply, what, where):
                    index = manifests.parse(
                        page.body,
                        page.headers.get("content-type", ""),
                        where=f"{ref.repo()} referrers",
                    )
                    if not index.is_index or found is None:
                        found = None
                        break
                    capped(found, index.manifests, ht, what, where)
                result = None if found is None else list(found)
        except ListingError:
            raise  # an API that answers with endless or looping pages is hostile, not absent
        except (RegistryError, httpx.HTTPError) as e:
            log.debug("Referrers API probe failed", repository=where, error=str(e))
            result = None
        key = (ref.registry, ref.repository)
        with self._lock:
            known = self._support.get(key)
            # an API that answered before and fails now is failing, not unsupported
            if result is not None or known is None or not known[1]:
                self._support[key] = (time.monotonic(), result is not None)
        return result

    def find(self, ref: ImageRef, digest: str, *, artifact_type: str = "") -> list[Descriptor]:
        digests.split(digest)
        key = (ref.registry, ref.repository, digest)
        found: list[Descriptor] | None = self.cache.get(key)
        if found is None:
            found = self._list(ref, digest, artifact_type)
            if not artifact_type:
                self.cache.put(key, found)
        return [d for d in found if fallback.matches_artifact_type(d, artifact_type)]

    def _list(self, ref: ImageRef, digest: str, artifact_type: str) -> list[Descriptor]:
        known = self._known_support(ref)
        fresh = known is not None
        if not fresh or (known is not None and known[1]):
            listed = self._probe(ref, digest, artifact_type)
            if listed is not None:
                return listed
            if fresh:  # it answered before: a failure now is an error, not "unsupported"
                raise RegistryError(
                    "referrers: the referrers API stopped answering", ref=str(ref.repo())
                )
        return fallback.read_fallback(self._backend, ref.repo(), digest)

    def forget(self, ref: ImageRef) -> None:
        """A manifest was pushed to `ref`'s repository: its referrer lists may have changed."""
        self.cache.drop(lambda k: k[:2] == (ref.registry, ref.repository))  # type: ignore[index]
