"""OCI Image Layout directories (`ocidir://path`) as a registry backend.

One layout directory is one repository (regsync's model): `oci-layout`, `index.json` whose
`manifests[]` carry tags as `org.opencontainers.image.ref.name` annotations, and content under
`blobs/<alg>/<hex>`. Child manifests (index members, referrers) are stored as blobs only;
referrers are found through the `sha256-<hex>` fallback tag (and, with `slow`, by scanning).

Safety: digests are validated before they become paths; no symlink below the layout root is
followed (files.py); blobs are written to a temporary file, verified, then renamed into place,
always before the tag that needs them; index.json is changed only under the layout's
cross-process lock and replaced atomically; garbage collection runs only when no other writer
is registered (locks.py, gc.py). A tag whose content is incomplete reads as absent, so the
planner plans its repair.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import orjson

from regplan import logs
from regplan.errors import ManifestError, NotFoundError, RegistryError
from regplan.oci import digest as digests
from regplan.oci import mediatypes as mt
from regplan.oci.descriptor import Descriptor
from regplan.oci.manifest import Manifest, parse
from regplan.refs import ImageRef
from regplan.registry import referrers
from regplan.registry.api import Backend, BlobStream, ManifestHead
from regplan.registry.ocidir import files, gc, locks
from regplan.registry.ocidir.commit import GroupCommits, TagWrite
from regplan.registry.ocidir.index import REF_NAME, LayoutIndex
from regplan.registry.ocidir.tree import references

CREATED = "org.opencontainers.image.created"
LAYOUT_VERSION = "1.0.0"
_READ_CHUNK = 1024 * 1024
_REFS_CACHE_MAX = 100_000  # parsed manifests' references, by digest (content never changes)
_KEYS_CACHE_MAX = 100_000  # layout paths as given -> resolved
log = logs.get(__name__)

# (device, inode, size, mtime, ctime) of index.json: a different file or a rewrite changes it
_StatKey = tuple[int, int, int, int, int]


class _FileBlobStream(BlobStream):
    def __init__(self, handle: Any, desc: Descriptor, where: str) -> None:
        self._handle = handle
        self._desc = desc
        self._where = where
        self.size = desc.size

    def __iter__(self) -> Iterator[bytes]:
        verifier = digests.Verifier(
            self._desc.digest, self._desc.size, what=f"blob in {self._where}"
        )
        while chunk := self._handle.read(_READ_CHUNK):
            verifier.update(chunk)
            yield chunk
        verifier.verify()


@contextmanager
def _write_errors(where: str) -> Iterator[None]:
    """A full disk or a permission problem is one clear line, not a traceback."""
    try:
        yield
    except RegistryError:
        raise
    except OSError as e:
        name = f" {Path(e.filename).name}" if e.filename else ""
        raise RegistryError(
            f"cannot write the OCI Layout{name}: {e.strerror or e}", ref=where
        ) from None


class _BlobDirs:
    """`blobs/<alg>/` opened once for a walk over many blobs (each opened safely, as
    files.open_dir does, and closed at the end): one stat per blob, not seven system calls."""

    def __init__(self, backend: OCIDirBackend, root: Path, where: str) -> None:
        self._backend = backend
        self._root = root
        self._where = where
        self._fds: dict[str, int | None] = {}

    def __enter__(self) -> Callable[[str], bool]:
        return self.present

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            if fd is not None:
                os.close(fd)

    def present(self, digest: str) -> bool:
        algorithm, hexpart = digests.split(digest)
        if algorithm not in self._fds:
            try:
                self._fds[algorithm] = self._backend._blob_dir(self._root, algorithm, self._where)
            except FileNotFoundError:
                self._fds[algorithm] = None
        dir_fd = self._fds[algorithm]
        if dir_fd is None:
            return False
        try:
            st = os.stat(hexpart, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode)


class OCIDirBackend(Backend):
    """Every `ocidir://` path, each a layout directory (created on first write)."""

    def __init__(self) -> None:
        self._writers = locks.Writers()
        self._cache_guard = threading.Lock()
        self._indexes: dict[str, tuple[_StatKey, LayoutIndex, bytes]] = {}
        self._commits = GroupCommits()
        self._refs: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._keys: dict[str, str] = {}
        self._roots: dict[str, Path] = {}
        self._parse_locks: dict[str, threading.Lock] = {}
        self.index_parses = 0  # how often index.json was parsed (tests keep this at one per change)
        self.index_writes = 0  # how often this process rewrote an index.json (tests count them)

    # -- paths and index ----------------------------------------------------------------------
    def _root(self, ref: ImageRef) -> Path:
        if not ref.is_ocidir:
            raise RegistryError("not an OCI Layout reference", ref=str(ref))
        # one Path per layout, not per call: building one (and joining below it) cost more
        # than the stat of index.json a look-up needs
        root = self._roots.get(ref.path)
        if root is None:
            if len(self._roots) >= _KEYS_CACHE_MAX:
                self._roots.clear()
            root = self._roots[ref.path] = Path(ref.path)
        return root

    def _key(self, root: Path) -> str:
        # resolving walks every path component: a walk of 100,000 actions spent an eighth of
        # its time here. A layout moved under a running process keeps its first key, which
        # only names caches and registrations (the index cache still checks index.json itself).
        key = self._keys.get(str(root))
        if key is None:
            if len(self._keys) >= _KEYS_CACHE_MAX:
                self._keys.clear()
            key = self._keys[str(root)] = str(root.resolve())
        return key

    def _blob_dir(self, root: Path, algorithm: str, where: str, *, create: bool = False) -> int:
        return files.open_dir(root, ["blobs", algorithm], create=create, where=where)

    def _open_blob(self, root: Path, digest: str, ref: ImageRef) -> Any:
        algorithm, hexpart = digests.split(digest)  # refuses anything that is not alg:hex
        try:
            dir_fd = self._blob_dir(root, algorithm, ref.repo_name)
            try:
                fd = os.open(hexpart, os.O_RDONLY | files.NOFOLLOW | files.CLOEXEC, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found", ref=ref.repo_name) from None
        except RegistryError:
            raise
        except OSError as e:
            raise RegistryError(
                f"cannot open blob {digest}: {e.strerror}", ref=ref.repo_name
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RegistryError(f"blob {digest} is not a regular file", ref=ref.repo_name)
        return os.fdopen(fd, "rb")

    def _blob_size(self, root: Path, digest: str, where: str) -> int | None:
        algorithm, hexpart = digests.split(digest)
        try:
            dir_fd = self._blob_dir(root, algorithm, where)
        except FileNotFoundError:
            return None
        try:
            st = os.stat(hexpart, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(dir_fd)
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def _check_layout(self, root: Path, ref: ImageRef) -> None:
        try:
            with files.directory(root, [], create=False, where=ref.repo_name) as fd:
                data = files.read_file(fd, "oci-layout", 64 * 1024)
            layout = orjson.loads(data)
        except FileNotFoundError:
            raise NotFoundError(
                "not an OCI Layout (no oci-layout file)", ref=ref.repo_name
            ) from None
        except orjson.JSONDecodeError:
            raise RegistryError("oci-layout file is not valid JSON", ref=ref.repo_name) from None
        except OSError as e:
            raise RegistryError(
                f"cannot read oci-layout: {e.strerror}", ref=ref.repo_name
            ) from None
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if version != LAYOUT_VERSION:
            raise RegistryError(f"unsupported OCI Layout version {version!r}", ref=ref.repo_name)

    def _index(self, root: Path, ref: ImageRef, *, fresh: bool = False) -> LayoutIndex:
        """index.json, parsed once per change: NotFoundError when the layout does not exist.
        `fresh` (under the index lock, before a write) never trusts the cache."""
        try:
            st = os.stat(os.path.join(str(root), "index.json"), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            if not root.is_dir():  # asked only now: a present index.json answers it
                raise NotFoundError(
                    "OCI Layout directory does not exist", ref=ref.repo_name
                ) from None
            self._check_layout(root, ref)
            return LayoutIndex.empty()
        key = self._key(root)
        if stat.S_ISLNK(st.st_mode):
            raise RegistryError("index.json is a symlink", ref=ref.repo_name)
        stat_key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if not fresh:
            with self._cache_guard:
                cached = self._indexes.get(key)
            if cached is not None and cached[0] == stat_key:
                return cached[1]
        with self._parsing(key):  # threads that missed the cache together parse once
            return self._read_index(root, ref, key)

    def _parsing(self, key: str) -> threading.Lock:
        with self._cache_guard:
            return self._parse_locks.setdefault(key, threading.Lock())

    def _read_index(self, root: Path, ref: ImageRef, key: str) -> LayoutIndex:
        self._check_layout(root, ref)
        try:
            with files.directory(root, [], create=False, where=ref.repo_name) as fd:
                data, st = files.read_with_stat(fd, "index.json")
        except FileNotFoundError:
            return LayoutIndex.empty()
        except OSError as e:
            raise RegistryError(
                f"cannot read index.json: {e.strerror}", ref=ref.repo_name
            ) from None
        with self._cache_guard:
            cached = self._indexes.get(key)
        if cached is not None and cached[2] == data:
            # byte for byte the file we last parsed or wrote (another thread, our own write)
            self._remember(key, st, cached[1], data)
            return cached[1]
        index = LayoutIndex.parse(data, ref.repo_name)
        self._remember(key, st, index, data, parsed=True)
        return index

    def _remember(
        self, key: str, st: os.stat_result, index: LayoutIndex, data: bytes, *, parsed: bool = False
    ) -> None:
        stat_key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self._cache_guard:
            self._indexes[key] = (stat_key, index, data)
            self.index_parses += parsed

    def _write_index(self, root: Path, index: LayoutIndex) -> None:
        data = orjson.dumps(index.raw, option=orjson.OPT_INDENT_2)
        with files.directory(root, [], create=False, where=str(root)) as fd:
            files.write_atomic(fd, "index.json", data)
            st = os.stat("index.json", dir_fd=fd)
        self.index_writes += 1
        self._remember(self._key(root), st, index, data)

    def _ensure_layout(self, root: Path, where: str) -> None:
        """Create the layout if needed and register as its writer (before any write)."""
        with _write_errors(where):
            root.mkdir(parents=True, exist_ok=True)
            self._writers.register(self._key(root), root, writing=True)
            with files.directory(root, [], create=False, where=where) as fd:
                if not _exists(fd, "oci-layout"):
                    layout = orjson.dumps({"imageLayoutVersion": LAYOUT_VERSION})
                    files.write_atomic(fd, "oci-layout", layout)
                if not _exists(fd, "index.json"):
                    with locks.exclusive(root):
                        if not _exists(fd, "index.json"):
                            files.write_atomic(
                                fd, "index.json", orjson.dumps(LayoutIndex.empty().raw)
                            )

    def _resolve(self, ref: ImageRef) -> Descriptor | None:
        found = self._resolve_read(ref)
        return None if found is None else found[0]

    def _resolve_read(self, ref: ImageRef) -> tuple[Descriptor, Manifest | None] | None:
        """The descriptor `ref` names, with the manifest itself when finding the descriptor
        meant reading it (a child stored as a blob only), so it is not read twice."""
        root = self._root(ref)
        try:
            index = self._index(root, ref)
        except NotFoundError:
            return None
        if ref.digest:
            desc = index.by_digest.get(ref.digest)
            if desc is not None:
                return desc, None
            if self._blob_size(root, ref.digest, ref.repo_name) is not None:
                # a child manifest stored as a blob only: its type comes from its body
                raw = self._read_small(root, ref.digest, ref)
                manifest = parse(raw, digest=ref.digest, where=str(ref))
                return manifest.descriptor(), manifest
            return None
        desc = index.lookup(ref.tag or "latest", ref.repo_name)
        return None if desc is None else (desc, None)

    def _read_small(self, root: Path, digest: str, ref: ImageRef) -> bytes:
        with self._open_blob(root, digest, ref) as f:
            raw = files.read_at_most(f, os.fstat(f.fileno()).st_size, mt.MAX_MANIFEST_SIZE)
        if len(raw) > mt.MAX_MANIFEST_SIZE:
            raise ManifestError(
                f"manifest {digest} is over the {mt.MAX_MANIFEST_SIZE} byte limit",
                ref=ref.repo_name,
            )
        return raw

    def _references(
        self, root: Path, digest: str, ref: ImageRef
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(child manifests, blobs) of the manifest `digest`; None when it cannot be read."""
        with self._cache_guard:
            cached = self._refs.get(digest)
        if cached is not None:
            return cached
        try:
            raw = self._read_small(root, digest, ref)
            doc = orjson.loads(raw)
        except (RegistryError, orjson.JSONDecodeError):
            return None
        if digests.of(raw, digests.split(digest)[0]) != digest:
            return None
        refs = references(doc)
        found = (refs.manifests, refs.blobs)
        with self._cache_guard:
            if len(self._refs) >= _REFS_CACHE_MAX:
                self._refs.clear()
            self._refs[digest] = found
        return found

    def _missing_below(self, ref: ImageRef, digest: str) -> str:
        root = self._root(ref)
        seen: set[str] = set()
        manifests = [digest]
        with _BlobDirs(self, root, ref.repo_name) as present:
            while manifests:
                current = manifests.pop()
                if current in seen:
                    continue
                seen.add(current)
                if not present(current):
                    return current
                found = self._references(root, current, ref)
                if found is None:
                    continue  # unreadable here: the copy itself reports it
                children, blobs = found
                for blob in blobs:
                    if blob not in seen:
                        seen.add(blob)
                        if not present(blob):
                            return blob
                manifests.extend(children)
        return ""

    # -- manifests ----------------------------------------------------------------------------
    def manifest_head(self, ref: ImageRef) -> ManifestHead | None:
        desc = self._resolve(ref)
        if desc is None:
            return None
        missing = self._missing_below(ref, desc.digest)
        if missing:
            # a tag on incomplete content is not there: the planner plans its repair
            log.warn(
                "Layout content is incomplete; treating it as absent",
                ref=str(ref),
                digest=desc.digest,
                missing=missing,
            )
            return None
        return ManifestHead(digest=desc.digest, media_type=desc.media_type, size=desc.size)

    def manifest_digest(self, ref: ImageRef) -> str | None:
        # what the tag points at, read from index.json alone: the walk of the content below
        # it was most of the drift check's cost, and a copy reports missing content itself
        desc = self._resolve(ref)
        return None if desc is None else desc.digest

    def manifest_get(self, ref: ImageRef) -> Manifest:
        found = self._resolve_read(ref)
        if found is None:
            raise NotFoundError("manifest not found", ref=str(ref))
        desc, manifest = found
        if manifest is not None:
            return manifest
        raw = self._read_small(self._root(ref), desc.digest, ref)
        return parse(raw, desc.media_type, digest=desc.digest, where=str(ref))

    def manifest_put(self, ref: ImageRef, manifest: Manifest) -> bool:
        root = self._root(ref)
        self._ensure_layout(root, ref.repo_name)
        self._write_blob_bytes(root, manifest.digest, manifest.raw, ref.repo_name)
        if not ref.tag:
            return False
        entry = manifest.descriptor().to_json()
        entry["annotations"] = {REF_NAME: ref.tag, CREATED: _created_time()}
        # blobs before the tag that needs them: the commit refuses a tag on missing content
        needed = (*(d.digest for d in manifest.manifests), *_local_blobs(manifest))
        change = TagWrite(ref.tag, entry, needed, ref.repo_name)
        with _write_errors(ref.repo_name):
            self._commits.write(
                self._key(root), change, lambda take: self._commit_tags(root, ref, take)
            )
        return False

    def _commit_tags(self, root: Path, ref: ImageRef, take: Callable[[], list[TagWrite]]) -> None:
        """One read-merge-write of index.json for every tag write queued for this layout."""
        with locks.exclusive(root):
            batch = take()
            try:
                accepted = [c for c in batch if self._refusal(root, c) is None]
                if accepted:
                    index = self._index(root, ref, fresh=True)
                    self._write_index(root, index.with_tags([(c.tag, c.entry) for c in accepted]))
            except BaseException as e:
                for change in batch:
                    change.error = change.error or e
                raise
            finally:
                for change in batch:
                    change.done = True

    def _refusal(self, root: Path, change: TagWrite) -> RegistryError | None:
        """Refuse (and record on the change) a tag whose content is not all in the layout."""
        for needed in change.needed:
            if self._blob_size(root, needed, change.where) is None:
                change.error = RegistryError(
                    f"cannot tag {change.tag}: {needed} is missing from the layout",
                    ref=change.where,
                )
                return change.error
        return None

    def manifest_delete(self, ref: ImageRef) -> None:
        root = self._root(ref)
        self._ensure_layout(root, ref.repo_name)
        with _write_errors(ref.repo_name), locks.exclusive(root):
            index = self._index(root, ref, fresh=True).raw
            before = len(index["manifests"])

            def keep(entry: Any) -> bool:
                if not isinstance(entry, dict):
                    return True
                if ref.tag:
                    return (entry.get("annotations") or {}).get(REF_NAME) != ref.tag
                return entry.get("digest") != ref.digest

            kept = [e for e in index["manifests"] if keep(e)]
            if len(kept) == before:
                raise NotFoundError("manifest not found", ref=str(ref))
            self._write_index(root, LayoutIndex.from_json({**index, "manifests": kept}))

    # -- blobs --------------------------------------------------------------------------------
    def blob_head(self, ref: ImageRef, digest: str) -> int | None:
        return self._blob_size(self._root(ref), digest, ref.repo_name)

    def blob_get(self, ref: ImageRef, desc: Descriptor) -> AbstractContextManager[BlobStream]:
        @contextmanager
        def opened() -> Iterator[BlobStream]:
            with self._open_blob(self._root(ref), desc.digest, ref) as f:
                yield _FileBlobStream(f, desc, ref.repo_name)

        return opened()

    def blob_put(self, ref: ImageRef, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        root = self._root(ref)
        self._ensure_layout(root, ref.repo_name)
        self._put_blob(root, desc, chunks, ref.repo_name)

    def _put_blob(self, root: Path, desc: Descriptor, chunks: Iterable[bytes], where: str) -> None:
        algorithm, hexpart = digests.split(desc.digest)
        verifier = digests.Verifier(desc.digest, desc.size, what=f"blob for {where}")
        with _write_errors(where):
            dir_fd = self._blob_dir(root, algorithm, where, create=True)
            try:
                fd, tmp = files.create_temp(dir_fd, files.UPLOAD_PREFIX)
                try:
                    with os.fdopen(fd, "wb") as f:
                        for chunk in chunks:
                            verifier.update(chunk)
                            f.write(chunk)
                        verifier.verify()
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, hexpart, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                except BaseException:
                    try:
                        os.unlink(tmp, dir_fd=dir_fd)
                    except OSError:
                        pass
                    raise
            finally:
                os.close(dir_fd)

    def _write_blob_bytes(self, root: Path, digest: str, data: bytes, where: str) -> None:
        if self._blob_size(root, digest, where) is not None:
            return
        desc = Descriptor(media_type=mt.OCTET_STREAM, digest=digest, size=len(data))
        self._put_blob(root, desc, [data], where)

    def blob_mount(self, ref: ImageRef, digest: str, from_ref: ImageRef) -> bool:
        if from_ref.is_ocidir and Path(from_ref.path).resolve() == Path(ref.path).resolve():
            return self.blob_head(ref, digest) is not None
        return False

    # -- listings -----------------------------------------------------------------------------
    def tag_list(self, ref: ImageRef) -> list[str]:
        return self._index(self._root(ref), ref).tags(ref.repo_name)

    def catalog(self, ref: ImageRef) -> list[str]:
        raise RegistryError("an OCI Layout has no repository catalog", ref=ref.repo_name)

    # -- referrers ----------------------------------------------------------------------------
    def referrers_api(self, ref: ImageRef) -> bool:
        return False

    def referrers(
        self, ref: ImageRef, digest: str, *, artifact_type: str = "", slow: bool = False
    ) -> list[Descriptor]:
        found = referrers.read_fallback(self, ref.repo(), digest)
        if slow:
            # ORAS-style layouts list referrers in index.json without a fallback tag
            known = {d.digest for d in found}
            root = self._root(ref)
            try:
                entries: tuple[Descriptor, ...] = self._index(root, ref).entries
            except NotFoundError:
                entries = ()
            for desc in entries:
                if desc.digest in known or not mt.is_manifest(desc.media_type):
                    continue
                try:
                    manifest = parse(
                        self._read_small(root, desc.digest, ref),
                        desc.media_type,
                        digest=desc.digest,
                    )
                except (NotFoundError, ManifestError):
                    continue
                if manifest.subject is not None and manifest.subject.digest == digest:
                    found.append(referrers.referrer_descriptor(manifest))
                    known.add(desc.digest)
        return [d for d in found if referrers.matches_artifact_type(d, artifact_type)]

    # -- lifecycle ----------------------------------------------------------------------------
    def begin_writes(self, ref: ImageRef) -> None:
        """An apply into this layout starts: no garbage collection here until it ends."""
        root = self._root(ref)
        key = self._key(root)
        self._writers.begin(key)
        if (root / "oci-layout").is_file():
            # register now, not at the first write: a blob this apply finds present and so
            # does not copy must not be collected by another process before the tag lands
            try:
                self._writers.register(key, root, writing=False)
            except OSError:
                pass  # a layout we cannot write to: registration waits for the first write

    def end_writes(self, ref: ImageRef, *, collect: bool) -> None:
        """An apply into this layout ended. The last one in this process collects garbage
        when `collect` and no other process is writing (otherwise a later writer will)."""
        root = self._root(ref)
        ended = self._writers.end(self._key(root))
        if ended is None:
            return
        fd, wrote = ended
        try:
            if collect and wrote:  # nothing written here: nothing new to collect
                with locks.exclusive(root):
                    if locks.sole_writer(fd):
                        self._collect(root, ref)
                    else:
                        log.debug("Another writer is active; leaving GC to it", layout=str(root))
        finally:
            os.close(fd)

    def close(self, ref: ImageRef) -> None:
        """Garbage-collect blobs no tag reaches, after this process wrote to the layout."""
        self.end_writes(ref, collect=True)

    def _collect(self, root: Path, ref: ImageRef) -> None:
        index = self._index(root, ref, fresh=True)
        outcome = gc.collect(root, [e.digest for e in index.entries], ref.repo_name)
        if outcome.kept_because:
            log.warn(
                "Layout garbage collection skipped: a manifest cannot be read, so nothing "
                "below it is known",
                layout=ref.repo_name,
                manifest=outcome.kept_because,
            )
        if outcome.removed or outcome.stale_temporaries:
            log.debug(
                "Removed unreferenced blobs",
                layout=ref.repo_name,
                count=outcome.removed,
                temporaries=outcome.stale_temporaries,
            )

    def garbage_collect(self, ref: ImageRef) -> int:
        """Collect now (the caller makes sure no other writer is active)."""
        root = self._root(ref)
        with locks.exclusive(root):
            index = self._index(root, ref, fresh=True)
            return gc.collect(root, [e.digest for e in index.entries], ref.repo_name).removed


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _local_blobs(manifest: Manifest) -> list[str]:
    # layers with `urls` live elsewhere and are copied only with includeExternal
    return [b.digest for b in manifest.blobs() if not b.urls and b.size >= 0]


def _created_time() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOC")
    when = float(epoch) if epoch and epoch.isdigit() else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
