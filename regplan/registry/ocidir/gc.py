"""Layout garbage collection: which blobs no index.json entry reaches, and their removal.

What GC cannot read it keeps, with everything below it: when any manifest on the way cannot be
read or parsed (too large, not JSON, not a regular file), nothing is collected at all, because
what it would have kept is unknown.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from regplan.registry.ocidir import files
from regplan.registry.ocidir.tree import references

# manifests over regplan's 4 MiB copy limit still exist in layouts (big indexes); GC reads them
READ_LIMIT = 64 * 1024 * 1024
# a temporary file this old belongs to a killed run (only looked at with no other writer active)
STALE_AFTER_SECONDS = 3600


class Unreadable(Exception):
    def __init__(self, digest: str, why: str) -> None:
        super().__init__(f"{digest}: {why}")
        self.digest = digest
        self.why = why


@dataclass(frozen=True)
class Outcome:
    removed: int = 0
    stale_temporaries: int = 0
    kept_because: str = ""  # set when nothing was collected because something was unreadable


def reachable(roots: Iterable[str], read: Callable[[str], bytes | None]) -> set[str]:
    """Every digest reachable from `roots`; `read` gives a manifest's bytes or None when the
    blob is absent. Raises Unreadable when a manifest cannot be understood."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        digest = pending.pop()
        if digest in seen:
            continue
        seen.add(digest)
        raw = read(digest)
        if raw is None:
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Unreadable(digest, "not JSON") from None
        if not isinstance(doc, dict):
            raise Unreadable(digest, "not a JSON object")
        refs = references(doc)
        seen.update(refs.blobs)
        seen.update(refs.external)
        pending.extend(refs.manifests)
        if refs.subject:
            pending.append(refs.subject)
    return seen


def collect(root: Path, roots: list[str], where: str, now: float | None = None) -> Outcome:
    """Remove unreachable blobs and stale temporaries. The caller holds the index lock and
    the exclusive writers lock."""
    now = time.time() if now is None else now
    stale = _remove_stale(root, [], now, where)
    with files.directory(root, ["blobs"], create=True, where=where) as blobs_fd:
        algorithms = [
            name
            for name in os.listdir(blobs_fd)
            if stat.S_ISDIR(os.stat(name, dir_fd=blobs_fd, follow_symlinks=False).st_mode)
        ]
    with _BlobReader(root, where) as read:
        try:
            keep = reachable(roots, read)
        except Unreadable as e:
            return Outcome(stale_temporaries=stale, kept_because=str(e))
    removed = 0
    for algorithm in algorithms:
        stale += _remove_stale(root, ["blobs", algorithm], now, where)
        with files.directory(root, ["blobs", algorithm], create=False, where=where) as fd:
            for name in os.listdir(fd):
                if name.startswith(".") or f"{algorithm}:{name}" in keep:
                    continue
                os.unlink(name, dir_fd=fd)
                removed += 1
    return Outcome(removed=removed, stale_temporaries=stale)


class _BlobReader:
    """Manifests read for one collection, each `blobs/<alg>/` opened once (safely, as
    files.open_dir does) rather than three directories opened per manifest."""

    def __init__(self, root: Path, where: str) -> None:
        self._root = root
        self._where = where
        self._fds: dict[str, int | None] = {}

    def __enter__(self) -> Callable[[str], bytes | None]:
        return self.read

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            if fd is not None:
                os.close(fd)

    def _dir(self, algorithm: str) -> int | None:
        if algorithm not in self._fds:
            try:
                parts = ["blobs", algorithm]
                self._fds[algorithm] = files.open_dir(
                    self._root, parts, create=False, where=self._where
                )
            except FileNotFoundError:
                self._fds[algorithm] = None
        return self._fds[algorithm]

    def read(self, digest: str) -> bytes | None:
        algorithm, hexpart = digest.split(":", 1)
        try:
            fd = self._dir(algorithm)
            if fd is None:
                return None
            raw = files.read_file(fd, hexpart, READ_LIMIT)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise Unreadable(digest, e.strerror or str(e)) from None
        if len(raw) > READ_LIMIT:
            raise Unreadable(digest, f"over {READ_LIMIT} bytes")
        return raw


def _remove_stale(root: Path, parts: list[str], now: float, where: str) -> int:
    """Temporary files (`.upload-*`, `.index.json.*.tmp`, ...) left by killed runs."""
    removed = 0
    with files.directory(root, parts, create=False, where=where) as fd:
        for name in os.listdir(fd):
            if not (name.startswith(files.UPLOAD_PREFIX) or _is_temp(name)):
                continue
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_AFTER_SECONDS:
                os.unlink(name, dir_fd=fd)
                removed += 1
    return removed


def _is_temp(name: str) -> bool:
    # ours (`.index.json.<hex>.tmp`) and earlier releases' (`.index.json.<random>`)
    return name.startswith((".index.json.", ".oci-layout."))
