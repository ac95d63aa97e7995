"""Group commit of index.json changes: concurrent tag writes into one layout share one write.

Every tag write of a process queues its change and then waits for the layout's commit turn.
Whoever gets the turn takes the layout's cross-process lock, then takes every change queued
by then (those that queued while it waited for another process's lock included), and writes
them all with one read-merge-write of index.json. A writer returns only once its own change
is in the file that was written (or with the error that refused it), so a tag is visible in
index.json before its write returns, exactly as with one rewrite per tag; with `parallel`
writers at most one rewrite is in flight per layout and the others' changes wait for the
next one, instead of each rewriting the whole index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)  # compared by identity: two writes of one tag are two writes
class TagWrite:
    """One queued change: `entry` becomes the plain index.json entry of `tag` when every
    digest in `needed` is present. Mutable: the committer fills in the outcome."""

    tag: str
    entry: dict[str, Any]
    needed: tuple[str, ...]
    where: str
    done: bool = False
    error: BaseException | None = field(default=None, repr=False)


# The committer: called with the layout's turn held; it takes the batch (under the layout's
# cross-process lock, so changes queued meanwhile join it) and settles every write it took.
Commit = Callable[[Callable[[], list[TagWrite]]], None]


@dataclass
class _Layout:
    turn: threading.Lock = field(default_factory=threading.Lock)
    queued: list[TagWrite] = field(default_factory=list)


class GroupCommits:
    """The queues of this process, one per layout (keyed by its resolved path)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._layouts: dict[str, _Layout] = {}

    def _layout(self, key: str) -> _Layout:
        with self._guard:
            return self._layouts.setdefault(key, _Layout())

    def queued(self, key: str) -> int:
        """How many writes wait for the next commit of `key` (for tests)."""
        layout = self._layout(key)
        with self._guard:
            return len(layout.queued)

    def write(self, key: str, change: TagWrite, commit: Commit) -> None:
        """Queue `change` and return once a commit settled it; raises its error if refused."""
        layout = self._layout(key)
        with self._guard:
            layout.queued.append(change)
        with layout.turn:
            if not change.done:
                try:
                    commit(lambda: self._take(layout))
                finally:
                    self._forget(layout, change)
        if change.error is not None:
            raise change.error

    def _take(self, layout: _Layout) -> list[TagWrite]:
        with self._guard:
            batch, layout.queued = layout.queued, []
        return batch

    def _forget(self, layout: _Layout, change: TagWrite) -> None:
        # a commit that failed before taking the batch leaves it queued: the next turn's
        # writer takes the others, this one's caller sees the failure
        with self._guard:
            if not change.done:
                layout.queued = [c for c in layout.queued if c is not change]
