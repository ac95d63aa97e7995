"""Helpers for unit tests that need what no real registry can be made to do (lying digests,
resets mid-body, 500 storms): an `HTTPBackend` over `httpx.MockTransport`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from regplan.config.hosts import Host
from regplan.oci.descriptor import Descriptor
from regplan.registry.api import RequestCounter
from regplan.registry.http import HTTPBackend

Handler = Callable[[httpx.Request], httpx.Response]
REG = "reg.test"


def backend(
    handler: Handler, *hosts: Host, counter: RequestCounter | None = None, **kwargs: Any
) -> HTTPBackend:
    options: dict[str, Any] = {"retry_delay": 0.001, "retry_max_delay": 0.01, "max_retries": 3}
    options.update(kwargs)
    return HTTPBackend(
        hosts or (Host(name=REG),),
        transport=httpx.MockTransport(handler),
        counter=counter,
        **options,
    )


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_desc(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", sha(data), len(data))


class BreakingStream(httpx.SyncByteStream):
    """A body that sends `data[:cut]` and then fails like a reset connection."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut = data, cut

    def __iter__(self) -> Iterator[bytes]:
        yield self.data[: self.cut]
        raise httpx.ReadError("connection reset by peer")


class Recorder:
    """Wraps a handler and keeps every request it saw (with the body read)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.handler(request)

    def lines(self) -> list[str]:
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests]
