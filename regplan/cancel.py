"""Cancellation tokens: a run's "stop now", checked between requests and images.

A token wraps a `threading.Event`. Code that does a long series of requests calls `check()`
between them (it raises `Cancelled`); code that sleeps (backoff, rate-limit waits) calls
`wait(seconds)`, which returns early and raises once the token is cancelled. Whoever owns
the run (the watch server: shutdown, run deadline) calls `cancel()`.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from regplan.errors import CancelledError

__all__ = ["CancelToken", "Cancelled", "bind", "bound", "run_pool"]


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


# The token of the run a thread works for. Watch's runs share one registry client (its
# connections and caches), so the client cannot carry a run's token: each run's worker pools
# bind it to their threads instead, and the request path looks at it in every wait.
_bound = threading.local()


def bind(token: CancelToken | None) -> None:
    """Make `token` the calling thread's run token (a worker pool's initializer)."""
    _bound.token = token


def bound() -> CancelToken | None:
    """The calling thread's run token, if a run bound one."""
    token: CancelToken | None = getattr(_bound, "token", None)
    return token


def run_pool(workers: int, name: str, token: CancelToken | None) -> ThreadPoolExecutor:
    """A worker pool whose threads carry the run's token into the request path."""
    return ThreadPoolExecutor(
        max_workers=max(1, workers), thread_name_prefix=name, initializer=bind, initargs=(token,)
    )
