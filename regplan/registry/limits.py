"""Per-host bounds on time and listing size, read from a host's `apiOpts` (pure).

A hostile or broken registry must not hang a run or fill memory:

- `requestTimeout` (Go duration, default 5m): the whole of a request whose answer is read at
  once — manifests, tag lists, catalog and referrers pages, upload control, tokens — from
  sending it to its last byte. Each socket read waits at most what is left of it.
- `blobStallTimeout` (default 1m): a blob download or upload fails when it moves less than
  `STALL_BYTES` in that long (a registry dripping a byte every few seconds), or when a single
  read waits that long.
- `maxListEntries` (default 100000): tags, repositories or referrers one listing may hold,
  de-duplicated as pages arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

from regplan.durations import DurationError, parse_duration
from regplan.errors import RegistryError
from regplan.registry.hosts import Host

DEFAULT_REQUEST_TIMEOUT = 300.0
DEFAULT_BLOB_STALL_TIMEOUT = 60.0
DEFAULT_MAX_LIST_ENTRIES = 100_000
STALL_BYTES = 64 * 1024  # a blob transfer moving less than this per stall window is stalled

REQUEST_TIMEOUT = "requestTimeout"
BLOB_STALL_TIMEOUT = "blobStallTimeout"
MAX_LIST_ENTRIES = "maxListEntries"


@dataclass(frozen=True)
class HostLimits:
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
    """The bounds for `host`; RegistryError naming the host and option for a bad value."""
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


class StallWatch:
    """Tells whether a transfer stalled: moved less than STALL_BYTES within `window` seconds
    since it last moved that much. The caller passes the clock, so this only decides."""

    def __init__(self, window: float, now: float) -> None:
        self._window = window
        self._since = now
        self._moved = 0

    def stalled(self, moved: int, now: float) -> bool:
        self._moved += moved
        if self._moved >= STALL_BYTES:
            self._since, self._moved = now, 0
            return False
        return now - self._since > self._window
