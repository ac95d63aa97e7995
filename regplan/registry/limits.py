"""Watching a blob transfer for stalls (pure). The per-host bounds themselves (`apiOpts`)
are read by regplan.config.hosts.

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

STALL_BYTES = 64 * 1024  # a blob transfer moving less than this per stall window is stalled


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
