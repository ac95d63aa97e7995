"""Per-registry settings (regsync `creds` entries, docker config imports), as plain values.

The config loader builds these from the YAML `creds` list; the registry layer consumes them.
Secrets (`password`, `token`) are never printed: `redacted()` gives a safe copy for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class TLSMode(StrEnum):
    ENABLED = "enabled"  # https, certificate verified (default)
    INSECURE = "insecure"  # https, certificate not verified
    DISABLED = "disabled"  # plain http


DOCKER_HUB = "docker.io"
DOCKER_HUB_HOSTNAME = "registry-1.docker.io"
DEFAULT_REQ_CONCURRENT = 3
DEFAULT_BLOB_CHUNK = 1024 * 1024
DEFAULT_CRED_EXPIRE = 3600.0
REDACTED = "<redacted>"


@dataclass(frozen=True)
class Host:
    """Settings for one registry name as it appears in image references."""

    name: str  # "docker.io", "registry.example.org", "localhost:5000"
    hostname: str = ""  # where to connect; "" means `name` (docker.io → registry-1.docker.io)
    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)  # identity / refresh token
    cred_helper: str = ""  # "docker-credential-ecr-login"
    cred_expire: float = DEFAULT_CRED_EXPIRE  # seconds
    cred_host: str = ""  # what to ask the helper for; "" means hostname
    tls: TLSMode = TLSMode.ENABLED
    regcert: str = ""  # PEM CA bundle added to the system roots
    client_cert: str = ""  # PEM, for mTLS
    client_key: str = field(default="", repr=False)  # PEM, for mTLS
    path_prefix: str = ""  # inserted after /v2/
    mirrors: tuple[str, ...] = ()  # other Host names, used for pulls only
    priority: int = 0  # mirrors are tried highest priority first
    repo_auth: bool = False  # separate token per repository (gcr.io)
    api_opts: tuple[tuple[str, str], ...] = ()  # e.g. (("disableHead", "true"),)
    blob_chunk: int = 0  # bytes per PATCH; 0 → DEFAULT_BLOB_CHUNK
    blob_max: int = 0  # bytes; above it uploads are chunked; 0 → no limit, -1 → never chunk
    req_per_sec: float = 0.0  # 0 → no throttle
    req_concurrent: int = 0  # 0 → DEFAULT_REQ_CONCURRENT

    @property
    def connect_hostname(self) -> str:
        if self.hostname:
            return self.hostname
        if self.name == DOCKER_HUB:
            return DOCKER_HUB_HOSTNAME
        return self.name

    @property
    def concurrency(self) -> int:
        return self.req_concurrent if self.req_concurrent > 0 else DEFAULT_REQ_CONCURRENT

    @property
    def chunk_size(self) -> int:
        return self.blob_chunk if self.blob_chunk > 0 else DEFAULT_BLOB_CHUNK

    def api_opt(self, key: str) -> str:
        return dict(self.api_opts).get(key, "")

    def redacted(self) -> Host:
        """A copy safe to print: secrets replaced by a marker (empty stays empty)."""
        return replace(
            self,
            password=REDACTED if self.password else "",
            token=REDACTED if self.token else "",
            client_key=REDACTED if self.client_key else "",
        )
