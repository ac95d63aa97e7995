"""Cross-process locks for one layout (flock(2) on files inside the layout).

`.regplan.lock`: held exclusively around every read-modify-write of `index.json` and around
garbage collection.

`.regplan.writers`: every process applying into the layout holds a shared lock on it, from
the start of its apply (or its first write, for a new layout) until its last apply into the
layout ends. Garbage collection runs only when it can
take this lock exclusively, that is when no other writer is registered: content another writer
has written but not yet tagged is therefore never collected. A killed writer's lock goes with
its process.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from regplan.registry.ocidir.files import CLOEXEC, NOFOLLOW

LOCK_FILE = ".regplan.lock"
WRITERS_FILE = ".regplan.writers"


def _open(root: Path, name: str) -> int:
    # read-only is enough for flock; 0666 less the umask lets other accounts lock a shared mirror
    return os.open(root / name, os.O_RDONLY | os.O_CREAT | NOFOLLOW | CLOEXEC, 0o666)


@contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """The layout's index lock. Not re-entrant: never nest it."""
    fd = _open(root, LOCK_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass
class _Registration:
    sessions: int = 0
    fd: int | None = None
    wrote: bool = False


class Writers:
    """This process's writer registrations, one per layout, shared by all its sessions."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._layouts: dict[str, _Registration] = {}

    def begin(self, key: str) -> None:
        with self._guard:
            self._layouts.setdefault(key, _Registration()).sessions += 1

    def register(self, key: str, root: Path, *, writing: bool) -> None:
        """Before a session relies on the layout's content, and before every write: blocks
        while another process collects garbage."""
        with self._guard:
            reg = self._layouts.setdefault(key, _Registration())
            if reg.fd is None:
                fd = _open(root, WRITERS_FILE)
                fcntl.flock(fd, fcntl.LOCK_SH)
                reg.fd = fd
            reg.wrote = reg.wrote or writing

    def end(self, key: str) -> tuple[int, bool] | None:
        """Close one session; when it was the last, hand back the registration's descriptor
        (which the caller must close) and whether anything was written."""
        with self._guard:
            reg = self._layouts.get(key)
            if reg is None:
                return None
            reg.sessions = max(0, reg.sessions - 1)
            if reg.sessions:
                return None
            del self._layouts[key]
            return None if reg.fd is None else (reg.fd, reg.wrote)


def sole_writer(fd: int) -> bool:
    """Trade our shared registration for an exclusive one if no other writer holds one.
    Call under `exclusive()`; on True the caller may collect garbage until it closes `fd`."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
