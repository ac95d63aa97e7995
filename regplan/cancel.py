"""Cancellation tokens: a run's "stop now", checked between requests and images.

A token wraps a `threading.Event`. Code that does a long series of requests calls `check()`
between them (it raises `Cancelled`); code that sleeps (backoff, rate-limit waits) calls
`wait(seconds)`, which returns early and raises once the token is cancelled. Whoever owns
the run (the watch server: shutdown, run deadline) calls `cancel()`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from regplan.errors import CancelledError

__all__ = ["CancelToken", "Cancelled"]


class Cancelled(CancelledError):
    """The run was cancelled (regsync: `task was canceled`)."""


@dataclass(frozen=True)
class CancelToken:
    _event: threading.Event = field(default_factory=threading.Event, repr=False)
    reason: list[str] = field(default_factory=list, repr=False, compare=False)

    def cancel(self, reason: str = "task was canceled") -> None:
        if not self._event.is_set():
            self.reason.append(reason)
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `Cancelled` once the token is cancelled."""
        if self._event.is_set():
            raise Cancelled(self.reason[0] if self.reason else "task was canceled")

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`; raise `Cancelled` as soon as the token is cancelled."""
        self._event.wait(max(0.0, seconds))
        self.check()
