"""File operations inside one layout directory.

Below the layout root no symlink is followed: each directory component is opened with
O_NOFOLLOW relative to its parent (O_NOFOLLOW on the last component alone would let a
symlinked `blobs/` or `blobs/sha256/` read or write anywhere on the host). Files are created
mode 0666 and directories 0777, less the umask, as other OCI tools do, and replaced
atomically (temporary file, fsync, rename), so a full disk never leaves a half-written file.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from regplan.errors import RegistryError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
UPLOAD_PREFIX = ".upload-"
TEMP_SUFFIX = ".tmp"


def open_dir(root: Path, parts: Sequence[str], *, create: bool, where: str) -> int:
    """A descriptor for `root/parts...`, refusing a symlink at any component below `root`."""
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | CLOEXEC)
    try:
        for i, part in enumerate(parts):
            flags = os.O_RDONLY | _DIRECTORY | NOFOLLOW | CLOEXEC
            try:
                try:
                    child = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with suppress(FileExistsError):
                        os.mkdir(part, 0o777, dir_fd=fd)
                    child = os.open(part, flags, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise RegistryError(
                        f"{'/'.join(parts[: i + 1])} in the layout is a symlink or not a "
                        "directory; refusing to follow it",
                        ref=where,
                    ) from None
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def directory(root: Path, parts: Sequence[str], *, create: bool, where: str) -> Iterator[int]:
    fd = open_dir(root, parts, create=create, where=where)
    try:
        yield fd
    finally:
        os.close(fd)


def read_file(dir_fd: int, name: str, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file `name` (never through a symlink)."""
    fd = os.open(name, os.O_RDONLY | NOFOLLOW | CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", name)
        return read_at_most(f, st.st_size, limit)


def read_at_most(f: BinaryIO, size: int, limit: int) -> bytes:
    """At most `limit` + 1 bytes of `f`, a regular file of `size` bytes. Asking for no more
    than the file holds matters: read(n) allocates n bytes up front, and a 4 MiB (or 64 MiB)
    buffer for a 400-byte manifest tripled the cost of reading it."""
    return f.read(min(size, limit) + 1)


def read_with_stat(dir_fd: int, name: str) -> tuple[bytes, os.stat_result]:
    """The whole regular file `name` and the status of exactly the file read."""
    fd = os.open(name, os.O_RDONLY | NOFOLLOW | CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", name)
        return f.read(), st


def create_temp(dir_fd: int, prefix: str) -> tuple[int, str]:
    """A new file (mode 0666 less the umask) with a unique name starting with `prefix`."""
    while True:
        name = f"{prefix}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        try:
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC,
                0o666,
                dir_fd=dir_fd,
            )
        except FileExistsError:
            continue
        return fd, name


def write_atomic(dir_fd: int, name: str, data: bytes) -> None:
    """Replace `name` with `data` all at once: readers see the old file or the new one."""
    fd, tmp = create_temp(dir_fd, f".{name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
