"""A total deadline for a request, enforced at every socket operation.

httpx's timeouts bound each socket read on its own: a server that sends one byte every few
seconds (status line and headers included) never trips them. The transport marks the thread
that sends a request with the monotonic time its answer must be complete by (`until`), and
the network backend every host's connection pool uses (`bound`) gives each connect, read and
write at most what is left, failing once nothing is; the transport regplan's clients send
through (`wire`) asks `left` before each socket operation itself. Requests run on the calling thread
(sync httpx), so a thread-local is exactly the request in flight; a request made while
another waits (a token fetch inside an auth flow) gets the earlier of both deadlines.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx

_local = threading.local()


def current() -> float | None:
    """The deadline (time.monotonic) of the request this thread is sending, if any."""
    at: float | None = getattr(_local, "at", None)
    return at


def passed() -> bool:
    at = current()
    return at is not None and time.monotonic() >= at


@contextlib.contextmanager
def until(at: float) -> Iterator[None]:
    outer = current()
    _local.at = at if outer is None else min(outer, at)
    try:
        yield
    finally:
        _local.at = outer


def left(timeout: float | None, error: type[Exception]) -> float | None:
    """What a socket operation may wait: `timeout`, or less when the deadline is closer;
    raises `error` once the deadline has passed."""
    at = current()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


def bound(client: httpx.Client) -> None:
    """Put every connection pool of `client` (direct and proxied) under the deadlines.

    Our own transport checks the deadline itself; httpx's pools (the proxy transports mounted
    from the environment) are wrapped by `deadline_pools`, loaded only when there is one."""
    transports: list[object] = [getattr(client, "_transport", None)]
    transports += list(getattr(client, "_mounts", {}).values())
    pools = [p for p in (getattr(t, "_pool", None) for t in transports) if p is not None]
    if pools:
        from regplan.registry.deadline_pools import bound_pools

        bound_pools(pools)
