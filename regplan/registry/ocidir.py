"""OCI Image Layout directories (`ocidir://path`) as a registry backend.

One layout directory is one repository (regsync's model): `oci-layout`, `index.json` whose
`manifests[]` carry tags as `org.opencontainers.image.ref.name` annotations, and content under
`blobs/<alg>/<hex>`. Child manifests (index members, referrers) are stored as blobs only;
referrers are found through the `sha256-<hex>` fallback tag (and, with `slow`, by scanning).

Safety: digests are validated before they become paths, blob files must be regular files
inside the layout (no symlinks out), blobs are written to a temporary file, verified, then
renamed into place, and index.json is replaced atomically.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
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

REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"
LAYOUT_VERSION = "1.0.0"
_READ_CHUNK = 1024 * 1024
log = logs.get(__name__)


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


class OCIDirBackend(Backend):
    """Every `ocidir://` path, each a layout directory (created on first write)."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._written: set[str] = set()

    # -- paths and index ----------------------------------------------------------------------
    @staticmethod
    def _root(ref: ImageRef) -> Path:
        if not ref.is_ocidir:
            raise RegistryError("not an OCI Layout reference", ref=str(ref))
        return Path(ref.path)

    def _lock(self, root: Path) -> threading.RLock:
        key = str(root.resolve())
        with self._locks_guard:
            return self._locks.setdefault(key, threading.RLock())

    def _blob_path(self, root: Path, digest: str) -> Path:
        algorithm, hexpart = digests.split(digest)  # refuses anything that is not alg:hex
        return root / "blobs" / algorithm / hexpart

    def _open_blob(self, root: Path, digest: str, ref: ImageRef) -> Any:
        path = self._blob_path(root, digest)
        try:
            # O_NOFOLLOW: a blob that is a symlink could point outside the layout
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found", ref=ref.repo_name) from None
        except OSError as e:
            raise RegistryError(
                f"cannot open blob {digest}: {e.strerror}", ref=ref.repo_name
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RegistryError(f"blob {digest} is not a regular file", ref=ref.repo_name)
        return os.fdopen(fd, "rb")

    def _check_layout(self, root: Path, ref: ImageRef) -> None:
        try:
            layout = orjson.loads((root / "oci-layout").read_bytes())
        except FileNotFoundError:
            raise NotFoundError(
                "not an OCI Layout (no oci-layout file)", ref=ref.repo_name
            ) from None
        except orjson.JSONDecodeError:
            raise RegistryError("oci-layout file is not valid JSON", ref=ref.repo_name) from None
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if version != LAYOUT_VERSION:
            raise RegistryError(f"unsupported OCI Layout version {version!r}", ref=ref.repo_name)

    def _read_index(self, root: Path, ref: ImageRef) -> dict[str, Any]:
        """index.json as a dict; NotFoundError when the layout does not exist."""
        if not root.is_dir():
            raise NotFoundError("OCI Layout directory does not exist", ref=ref.repo_name)
        self._check_layout(root, ref)
        path = root / "index.json"
        if path.is_symlink():
            raise RegistryError("index.json is a symlink", ref=ref.repo_name)
        try:
            index = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        except orjson.JSONDecodeError as e:
            raise ManifestError(f"index.json is not valid JSON: {e}", ref=ref.repo_name) from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
            raise ManifestError("index.json is not an OCI index", ref=ref.repo_name)
        index.setdefault("manifests", [])
        return index

    def _entries(self, root: Path, ref: ImageRef) -> list[Descriptor]:
        index = self._read_index(root, ref)
        return [
            Descriptor.from_json(entry, where=f"{ref.repo_name} index.json manifests[{i}]")
            for i, entry in enumerate(index["manifests"])
        ]

    def _write_index(self, root: Path, index: dict[str, Any]) -> None:
        data = orjson.dumps(index, option=orjson.OPT_INDENT_2)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".index.json.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, root / "index.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _ensure_layout(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        layout = root / "oci-layout"
        if not layout.exists():
            layout.write_bytes(orjson.dumps({"imageLayoutVersion": LAYOUT_VERSION}))
        if not (root / "index.json").exists():
            self._write_index(
                root, {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
            )

    @staticmethod
    def _tag_matches(desc: Descriptor, tag: str) -> bool:
        name = desc.annotations.get(REF_NAME, "")
        return name == tag or name.endswith(f":{tag}")

    def _resolve(self, ref: ImageRef) -> Descriptor | None:
        root = self._root(ref)
        try:
            entries = self._entries(root, ref)
        except NotFoundError:
            return None
        if ref.digest:
            for desc in entries:
                if desc.digest == ref.digest:
                    return desc
            path = self._blob_path(root, ref.digest)
            if path.is_file() and not path.is_symlink():
                # a child manifest stored as a blob only: its type comes from its body
                raw = self._read_small(root, ref.digest, ref)
                manifest = parse(raw, digest=ref.digest, where=str(ref))
                return manifest.descriptor()
            return None
        tag = ref.tag or "latest"
        for desc in entries:
            if desc.annotations.get(REF_NAME) == tag:
                return desc
        for desc in entries:
            if self._tag_matches(desc, tag):
                return desc
        return None

    def _read_small(self, root: Path, digest: str, ref: ImageRef) -> bytes:
        with self._open_blob(root, digest, ref) as f:
            raw = f.read(mt.MAX_MANIFEST_SIZE + 1)
        if len(raw) > mt.MAX_MANIFEST_SIZE:
            raise ManifestError(
                f"manifest {digest} is over the {mt.MAX_MANIFEST_SIZE} byte limit",
                ref=ref.repo_name,
            )
        return raw

    # -- manifests ----------------------------------------------------------------------------
    def manifest_head(self, ref: ImageRef) -> ManifestHead | None:
        desc = self._resolve(ref)
        if desc is None:
            return None
        if not self._blob_path(self._root(ref), desc.digest).is_file():
            return None
        return ManifestHead(digest=desc.digest, media_type=desc.media_type, size=desc.size)

    def manifest_get(self, ref: ImageRef) -> Manifest:
        desc = self._resolve(ref)
        if desc is None:
            raise NotFoundError("manifest not found", ref=str(ref))
        raw = self._read_small(self._root(ref), desc.digest, ref)
        return parse(raw, desc.media_type, digest=desc.digest, where=str(ref))

    def manifest_put(self, ref: ImageRef, manifest: Manifest) -> bool:
        root = self._root(ref)
        with self._lock(root):
            self._ensure_layout(root)
            self._write_blob_bytes(root, manifest.digest, manifest.raw)
            if ref.tag:
                index = self._read_index(root, ref)
                kept = [
                    e
                    for e in index["manifests"]
                    if not (
                        isinstance(e, dict)
                        and (e.get("annotations") or {}).get(REF_NAME) == ref.tag
                    )
                ]
                desc = manifest.descriptor().to_json()
                desc["annotations"] = {REF_NAME: ref.tag, CREATED: _created_time()}
                index["manifests"] = [*kept, desc]
                self._write_index(root, index)
            self._written.add(str(root))
        return False

    def manifest_delete(self, ref: ImageRef) -> None:
        root = self._root(ref)
        with self._lock(root):
            index = self._read_index(root, ref)
            before = len(index["manifests"])

            def keep(entry: Any) -> bool:
                if not isinstance(entry, dict):
                    return True
                if ref.tag:
                    return (entry.get("annotations") or {}).get(REF_NAME) != ref.tag
                return entry.get("digest") != ref.digest

            index["manifests"] = [e for e in index["manifests"] if keep(e)]
            if len(index["manifests"]) == before:
                raise NotFoundError("manifest not found", ref=str(ref))
            self._write_index(root, index)
            self._written.add(str(root))

    # -- blobs --------------------------------------------------------------------------------
    def blob_head(self, ref: ImageRef, digest: str) -> int | None:
        path = self._blob_path(self._root(ref), digest)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def blob_get(self, ref: ImageRef, desc: Descriptor) -> AbstractContextManager[BlobStream]:
        @contextmanager
        def opened() -> Iterator[BlobStream]:
            with self._open_blob(self._root(ref), desc.digest, ref) as f:
                yield _FileBlobStream(f, desc, ref.repo_name)

        return opened()

    def blob_put(self, ref: ImageRef, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        root = self._root(ref)
        with self._lock(root):
            self._ensure_layout(root)
        target = self._blob_path(root, desc.digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        verifier = digests.Verifier(desc.digest, desc.size, what=f"blob for {ref.repo_name}")
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    verifier.update(chunk)
                    f.write(chunk)
                verifier.verify()
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._written.add(str(root))

    def _write_blob_bytes(self, root: Path, digest: str, data: bytes) -> None:
        target = self._blob_path(root, digest)
        if target.is_file() and not target.is_symlink():
            return
        desc = Descriptor(media_type=mt.OCTET_STREAM, digest=digest, size=len(data))
        self.blob_put(ImageRef(scheme="ocidir", path=str(root)), desc, [data])

    def blob_mount(self, ref: ImageRef, digest: str, from_ref: ImageRef) -> bool:
        if from_ref.is_ocidir and Path(from_ref.path).resolve() == Path(ref.path).resolve():
            return self.blob_head(ref, digest) is not None
        return False

    # -- listings -----------------------------------------------------------------------------
    def tag_list(self, ref: ImageRef) -> list[str]:
        entries = self._entries(self._root(ref), ref)
        tags = {
            desc.annotations[REF_NAME].rsplit(":", 1)[-1]
            for desc in entries
            if desc.annotations.get(REF_NAME)
        }
        return sorted(tags)

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
                entries = self._entries(root, ref)
            except NotFoundError:
                entries = []
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
    def close(self, ref: ImageRef) -> None:
        """Garbage-collect blobs no tag reaches, after this process wrote to the layout."""
        root = self._root(ref)
        if str(root) not in self._written:
            return
        with self._lock(root):
            removed = self.garbage_collect(ref)
            self._written.discard(str(root))
        if removed:
            log.debug("Removed unreferenced blobs", layout=ref.repo_name, count=removed)

    def garbage_collect(self, ref: ImageRef) -> int:
        root = self._root(ref)
        reachable: set[str] = set()
        pending = list(self._entries(root, ref))
        while pending:
            desc = pending.pop()
            if desc.digest in reachable:
                continue
            reachable.add(desc.digest)
            # only manifests can reach further; layers and configs are never read here
            if not mt.is_manifest(desc.media_type) and (
                desc.media_type or desc.size > mt.MAX_MANIFEST_SIZE
            ):
                continue
            try:
                manifest = parse(
                    self._read_small(root, desc.digest, ref), desc.media_type, digest=desc.digest
                )
            except (NotFoundError, ManifestError, RegistryError):
                continue
            pending.extend(manifest.manifests)
            pending.extend(manifest.blobs())
        removed = 0
        blobs = root / "blobs"
        for algorithm_dir in blobs.iterdir() if blobs.is_dir() else ():
            for path in algorithm_dir.iterdir():
                if path.name.startswith("."):
                    continue
                if f"{algorithm_dir.name}:{path.name}" not in reachable:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed


def _created_time() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOC")
    when = float(epoch) if epoch and epoch.isdigit() else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
