"""One read per reference, for many references: the look-ups before an apply writes anything
(the stale check's HEADs, the drift check's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from regplan.refs import ImageRef

T = TypeVar("T")


def look_up(
    read: Callable[[ImageRef], T], refs: Sequence[ImageRef], workers: int, name: str
) -> list[T]:
    """`read` of each ref, in order. Registries are asked on a pool of `workers` threads (each
    answer is a round trip); OCI Layouts on this thread meanwhile, because a local read takes
    microseconds and handing it to a pool costs more CPU than the read (33,000 layout tags:
    4.6 s of CPU on eight threads, 3.0 s on one)."""
    remote = [ref for ref in refs if not ref.is_ocidir]
    if not remote:
        return [read(ref) for ref in refs]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name) as pool:
        asked = pool.map(read, remote)
        local = [read(ref) for ref in refs if ref.is_ocidir]
        remote_answers, local_answers = iter(list(asked)), iter(local)
    return [next(local_answers if ref.is_ocidir else remote_answers) for ref in refs]
