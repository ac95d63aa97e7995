"""Per-registry settings (regsync `creds` entries, docker config imports), as plain values.

The config loader builds these from the YAML `creds` list; the registry layer consumes them.
Secrets (`password`, `token`) are never printed: `redacted()` gives a safe copy for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from regplan.durations import DurationError, parse_duration
from regplan.errors import RegistryError


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

# Bounds a host's `apiOpts` may set (the registry layer applies them; see `host_limits`).
REQUEST_TIMEOUT = "requestTimeout"
BLOB_STALL_TIMEOUT = "blobStallTimeout"
MAX_LIST_ENTRIES = "maxListEntries"
DEFAULT_REQUEST_TIMEOUT = 300.0
DEFAULT_BLOB_STALL_TIMEOUT = 60.0
DEFAULT_MAX_LIST_ENTRIES = 100_000


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


@dataclass(frozen=True)
class HostLimits:
    """Per-host bounds on time and listing size, read from `apiOpts`: `requestTimeout` (whole
    request read at once), `blobStallTimeout` (a blob transfer that stops moving) and
    `maxListEntries` (entries one tag/catalog/referrers listing may hold)."""

    request_timeout: float = DEFAULT_REQUEST_TIMEOUT  # seconds
    blob_stall_timeout: float = DEFAULT_BLOB_STALL_TIMEOUT  # seconds
    max_list_entries: int = DEFAULT_MAX_LIST_ENTRIES


def _seconds(host: Host, key: str, default: float) -> float:
    text = host.api_opt(key).strip()
    if not text:
        return default
    try:
        seconds = parse_duration(text)
    except DurationError:
        seconds = -1.0
    if seconds <= 0:
        raise RegistryError(
            f"apiOpts.{key}: must be a positive duration such as 5m or 30s, not {text!r}",
            ref=host.name,
        )
    return seconds


def host_limits(host: Host) -> HostLimits:
    """The bounds for `host`; RegistryError naming the host and option for a bad value.
    The loader calls it so a bad value is refused at load time, not mid-run."""
    entries_text = host.api_opt(MAX_LIST_ENTRIES).strip()
    entries = DEFAULT_MAX_LIST_ENTRIES
    if entries_text:
        if not entries_text.isdigit() or int(entries_text) <= 0:
            raise RegistryError(
                f"apiOpts.{MAX_LIST_ENTRIES}: must be a positive number, not {entries_text!r}",
                ref=host.name,
            )
        entries = int(entries_text)
    return HostLimits(
        request_timeout=_seconds(host, REQUEST_TIMEOUT, DEFAULT_REQUEST_TIMEOUT),
        blob_stall_timeout=_seconds(host, BLOB_STALL_TIMEOUT, DEFAULT_BLOB_STALL_TIMEOUT),
        max_list_entries=entries,
    )
