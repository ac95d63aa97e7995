"""Listings over HTTP: tags and the catalog, every page (`Link: rel="next"` on the same
origin), de-duplicated and capped as pages arrive."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import orjson

from regplan.errors import RegistryError
from regplan.refs import ImageRef
from regplan.registry.auth import Scope
from regplan.registry.transport import HostTransport, Reply, Request, Transports

CATALOG_PAGE = 1000
MAX_PAGES = 10_000  # a registry whose Link pages never end is refused, not followed forever
PULL = ("pull",)
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?\brel="?next"?', re.IGNORECASE)
_OK = frozenset({200})


class ListingError(RegistryError):
    """A paged listing that loops, leaves the registry, or holds more than the cap."""


def next_link(reply: Reply) -> httpx.URL | None:
    """The `Link: <...>; rel="next"` target, resolved against the URL that answered."""
    for value in reply.headers.get_list("link"):
        m = _LINK_NEXT.search(value)
        if m:
            return reply.url.join(m.group(1).strip())
    return None


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def pages(net: Transports, first: Reply, what: str, where: str) -> Iterator[Reply]:
    """Every page of a listing, following `Link: rel="next"` on the same origin from the
    host that answered the first; a link back to a page already read is a loop, refused
    rather than followed for ever."""
    assert first.request is not None
    kind = first.request.kind
    reply = first
    seen = {str(first.url)}
    for _ in range(MAX_PAGES):
        yield reply
        link = next_link(reply)
        if link is None:
            return
        if not _same_origin(link, reply.url):
            raise ListingError(f"{what}: pagination link leaves the registry", ref=where)
        if str(link) in seen:
            raise ListingError(f"{what}: pagination loops back to a page already read", ref=where)
        seen.add(str(link))
        reply = net.send(
            Request(
                "GET",
                registry=first.host,
                url=link,
                kind=kind,
                scope=first.scope,
                expect=_OK,
                what=what,
                where=where,
            )
        )
    raise ListingError(f"{what}: more than {MAX_PAGES} pages", ref=where)


def capped(
    found: dict[Any, None], new: Iterable[Any], ht: HostTransport, what: str, where: str
) -> None:
    """Add a page's entries, de-duplicated as they arrive, up to the host's cap."""
    cap = ht.limits.max_list_entries
    for item in new:
        found[item] = None
        if len(found) > cap:
            raise ListingError(
                f"{what}: more than {cap} entries (raise apiOpts maxListEntries for"
                f" {ht.name} in creds to allow more)",
                ref=where,
            )


def _json(reply: Reply, what: str, where: str) -> dict[str, Any]:
    try:
        data = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise RegistryError(f"{what}: invalid JSON", ref=where)
    return data


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


class Listings:
    """Tag lists and catalogs of every registry. Thread-safe."""

    def __init__(self, net: Transports) -> None:
        self._net = net

    def tags(self, ref: ImageRef) -> list[str]:
        what = "tag list"
        where = str(ref.repo())
        first = self._net.send(
            Request(
                "GET",
                registry=ref.registry,
                repository=ref.repository,
                path="tags/list",
                kind="tags",
                actions=PULL,
                mirrors=True,
                expect=_OK,
                what=what,
                where=where,
            )
        )
        ht = self._net.get(first.host)
        tags: dict[str, None] = {}
        for page in pages(self._net, first, what, where):
            items = _json(page, what, where).get("tags") or []
            if not isinstance(items, list):
                raise RegistryError(f"{what}: invalid JSON", ref=where)
            capped(tags, (t for t in items if isinstance(t, str)), ht, what, where)
        return list(tags)

    def catalog(self, ref: ImageRef) -> list[str]:
        what = "catalog"
        where = ref.registry
        ht = self._net.get(ref.registry)
        first = self._net.send(
            Request(
                "GET",
                registry=ref.registry,
                url=f"{ht.base_url}/v2/_catalog?n={CATALOG_PAGE}",
                kind="catalog",
                scope=Scope.catalog(),
                expect=_OK,
                what=what,
                where=where,
            )
        )
        prefix = ht.host.path_prefix.strip("/")
        repos: dict[str, None] = {}
        for page in pages(self._net, first, what, where):
            items = _json(page, what, where).get("repositories") or []
            if not isinstance(items, list):
                raise RegistryError(f"{what}: invalid JSON", ref=where)
            capped(repos, _in_prefix(items, prefix), ht, what, where)
        return list(repos)
