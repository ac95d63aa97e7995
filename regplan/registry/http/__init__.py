"""The HTTP backend, split by resource (manifests, blobs, listings, referrers)."""

from regplan.registry.api import ReopenableChunks
from regplan.registry.http.backend import DEFAULT_USER_AGENT, HTTPBackend
from regplan.registry.http.listings import ListingError, next_link
from regplan.registry.http.manifests import parse_rate_limit
from regplan.registry.transport import with_query

__all__ = [
    "DEFAULT_USER_AGENT",
    "HTTPBackend",
    "ListingError",
    "ReopenableChunks",
    "next_link",
    "parse_rate_limit",
    "with_query",
]
