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
import typing
from collections.abc import Iterable, Iterator

import httpcore
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


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(
            self._inner.start_tls(
                ssl_context, server_hostname, left(timeout, httpcore.ConnectTimeout)
            )
        )

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, left(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _Stream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, left(timeout, httpcore.ConnectTimeout), socket_options
        )
        return _Stream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bound(client: httpx.Client) -> None:
    """Put every connection pool of `client` (direct and proxied) under the deadlines.

    httpx builds its pools without a way to pass a network backend, so the pool's backend is
    wrapped after the fact; a pool of another shape (a test's MockTransport) is left alone,
    and the transport's own checks between body chunks still apply to it."""
    transports: list[object] = [getattr(client, "_transport", None)]
    transports += list(getattr(client, "_mounts", {}).values())
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
