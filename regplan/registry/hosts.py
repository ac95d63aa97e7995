"""Moved to regplan.config.hosts (the config package produces Host values); this re-export
goes once every caller imports from there."""

from regplan.config.hosts import (  # noqa: F401
    DEFAULT_BLOB_CHUNK,
    DEFAULT_CRED_EXPIRE,
    DEFAULT_REQ_CONCURRENT,
    DOCKER_HUB,
    DOCKER_HUB_HOSTNAME,
    REDACTED,
    Host,
    TLSMode,
)
