"""Deterministic benchmark content, pushed straight into a registry with plain httpx.

Every byte comes from a PRNG seeded with the blob's name, so two runs of the benchmark push
the same digests. Layers are random bytes wrapped in gzip's *stored* mode (level 0, mtime 0):
real gzip streams, so skopeo sniffs them as already compressed and copies them unchanged (it
would gzip an uncompressed layer for a registry destination, changing every digest), yet cheap
to make.

A `DatasetSpec` describes repositories × tags; every `multi_every`-th tag is an OCI index of two
platform manifests. With `attachments` some tags get a cosign-style signature digest tag
(`sha256-<hex>.sig`) and some an SBOM referrer, listed under the referrers fallback tag
(`sha256-<hex>`) since distribution 2.8 has no referrers API.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

MIB = 1024 * 1024

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
COSIGN_SIGNATURE = "application/vnd.dev.cosign.simplesigning.v1+json"
SPDX = "application/spdx+json"

PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))
_CHUNK = 4 * MIB


def seeded_bytes(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(doc: dict[str, Any]) -> bytes:
    """Compact JSON with a fixed key order: the same document always has the same digest."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def stored_gzip_chunks(seed: str, size: int) -> Iterator[bytes]:
    """A gzip stream (level 0: stored blocks, header mtime 0) of `size` seeded random bytes,
    produced a few MiB at a time so a 512 MiB layer never sits in memory."""
    rng = random.Random(seed)
    compressor = zlib.compressobj(level=0, wbits=31)  # wbits 31: gzip wrapper
    left = size
    while left > 0:
        piece = rng.randbytes(min(_CHUNK, left))
        left -= len(piece)
        if out := compressor.compress(piece):
            yield out
    yield compressor.flush()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def json(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class DatasetSpec:
    """`repos` repositories of `tags` tags each; layers of `layer_size` bytes (before gzip).

    `shared_layers` of an image's `layers` are the same in every tag of a repository (a base
    image), per platform; the others are unique to the image. With `shared_config` every tag
    of a repository uses one config per platform and the manifests differ by an annotation
    only: cheap to push thousands of them for the planning-cost runs."""

    name: str
    repos: int
    tags: int
    layers: int = 3
    layer_size: int = MIB
    shared_layers: int = 1
    multi_every: int = 5  # tag i is a two-platform index when i % multi_every == 0
    attachments: bool = False
    shared_config: bool = False

    def repo_names(self, prefix: str) -> list[str]:
        return [f"{prefix}/app{r}" for r in range(self.repos)]

    def tag_names(self) -> list[str]:
        return [f"v1.0.{i}" for i in range(self.tags)]


@dataclass
class Dataset:
    """What was pushed: enough to know the sizes of every digest a tool moves."""

    spec: DatasetSpec
    repos: list[str]
    tags: dict[str, dict[str, Descriptor]] = field(default_factory=dict)  # repo → tag → desc
    blobs: dict[str, int] = field(default_factory=dict)  # digest → size (layers and configs)
    repo_blobs: dict[str, set[str]] = field(default_factory=dict)  # repo → its blob digests
    manifests: dict[str, int] = field(default_factory=dict)  # digest → size
    tag_sizes: dict[str, int] = field(default_factory=dict)  # "app0:tag" → manifest size
    image_manifests: int = 0  # platform images (an index counts its children)
    attachments: int = 0  # signature digest tags + referrer fallback tags

    @property
    def tag_count(self) -> int:
        return sum(len(t) for t in self.tags.values())

    @property
    def blob_bytes(self) -> int:
        return sum(self.blobs.values())

    @property
    def blob_count(self) -> int:
        """Blobs a cold copy uploads: per repository (a registry links blobs per repository)."""
        return sum(len(b) for b in self.repo_blobs.values())

    def sizes(self) -> dict[str, int]:
        return {**self.blobs, **self.manifests}

    def first_tags(self, count: int, prefix: str) -> Dataset:
        """This dataset cut to its first `count` tags per repository, renamed under `prefix`
        (see storage.copy_repository, which makes the registry side of it)."""
        spec = self.spec
        cut = Dataset(spec=replace(spec, tags=count), repos=spec.repo_names(prefix))
        cut.blobs, cut.manifests, cut.tag_sizes = self.blobs, self.manifests, self.tag_sizes
        cut.repo_blobs = dict(zip(cut.repos, self.repo_blobs.values(), strict=True))
        for old, new in zip(self.repos, cut.repos, strict=True):
            cut.tags[new] = {tag: self.tags[old][tag] for tag in spec.tag_names()[:count]}
        per_repo = sum(
            2 if spec.multi_every and i % spec.multi_every == 0 else 1 for i in range(count)
        )
        cut.image_manifests = per_repo * len(cut.repos)
        return cut


class Pusher:
    """Blobs by POST + one monolithic PUT, manifests by PUT: the OCI distribution spec's
    simplest path. Thread-safe (one httpx client, one lock for bookkeeping)."""

    def __init__(self, base_url: str) -> None:
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        self.client = httpx.Client(base_url=base_url, timeout=300, limits=limits)
        self._lock = threading.Lock()
        # (repo, digest) → set once the upload finished; a second pusher of the same blob
        # waits for it, or its manifest could reach the registry before the blob does.
        self._pushed: dict[tuple[str, str], threading.Event] = {}

    def close(self) -> None:
        self.client.close()

    def blob(self, repo: str, data: bytes, media_type: str = OCI_LAYER_GZIP) -> Descriptor:
        desc = Descriptor(media_type, sha256(data), len(data))
        with self._lock:
            done = self._pushed.get((repo, desc.digest))
            first = done is None
            if done is None:
                done = self._pushed[(repo, desc.digest)] = threading.Event()
        if first:
            try:
                self._upload(repo, desc.digest, data)
            finally:
                done.set()
        else:
            done.wait()
        return desc

    def blob_file(self, repo: str, path: Path, digest: str) -> None:
        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(MIB):
                    yield chunk

        size = path.stat().st_size
        self._upload(repo, digest, chunks(), {"Content-Length": str(size)})

    def _upload(
        self, repo: str, digest: str, content: Any, headers: dict[str, str] | None = None
    ) -> None:
        start = self.client.post(f"/v2/{repo}/blobs/uploads/")
        _expect(start, 202)
        location = start.headers["Location"]
        separator = "&" if "?" in location else "?"
        done = self.client.put(
            f"{location}{separator}digest={digest}",
            content=content,
            headers={"Content-Type": "application/octet-stream", **(headers or {})},
        )
        _expect(done, 201)

    def manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> Descriptor:
        reply = self.client.put(
            f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
        )
        _expect(reply, 201)
        return Descriptor(media_type, sha256(body), len(body))


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: expected {status}, "
            f"got {response.status_code}: {response.text[:300]}"
        )


class _Builder:
    """Pushes one dataset; `run` fans the tags out over a few threads."""

    def __init__(self, spec: DatasetSpec, pusher: Pusher, dataset: Dataset) -> None:
        self.spec = spec
        self.pusher = pusher
        self.data = dataset
        self._lock = threading.Lock()

    def _record_blob(self, repo: str, desc: Descriptor) -> Descriptor:
        with self._lock:
            self.data.blobs[desc.digest] = desc.size
            self.data.repo_blobs.setdefault(repo, set()).add(desc.digest)
        return desc

    def _record_manifest(self, repo: str, reference: str, desc: Descriptor) -> Descriptor:
        with self._lock:
            self.data.manifests[desc.digest] = desc.size
            if not reference.startswith("sha256:"):
                self.data.tag_sizes[f"{repo.rsplit('/', 1)[-1]}:{reference}"] = desc.size
        return desc

    def _manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> Descriptor:
        desc = self.pusher.manifest(repo, reference, body, media_type)
        return self._record_manifest(repo, reference, desc)

    def layer(self, repo: str, seed: str) -> tuple[Descriptor, str]:
        """A layer descriptor and its diff ID (digest of the uncompressed bytes)."""
        raw = seeded_bytes(seed, self.spec.layer_size)
        data = zlib.compress(raw, level=0, wbits=31)
        return self._record_blob(repo, self.pusher.blob(repo, data)), sha256(raw)

    def image(self, repo: str, tag: str, os_: str, arch: str, *, tagged: bool) -> Descriptor:
        """A platform image, pushed under `tag` when `tagged`, else by digest (index child)."""
        spec = self.spec
        layers, diff_ids = [], []
        for n in range(spec.layers):
            shared = n < spec.shared_layers
            seed = f"{spec.name}/{repo}/{arch}/base{n}" if shared else f"{repo}:{tag}/{arch}/{n}"
            desc, diff_id = self.layer(repo, seed)
            layers.append(desc.json())
            diff_ids.append(diff_id)
        label = f"{repo}/{arch}" if spec.shared_config else f"{repo}:{tag}/{arch}"
        config = {
            "architecture": arch,
            "os": os_,
            "config": {"Labels": {"bench.image": label}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        config_desc = self._record_blob(repo, self.pusher.blob(repo, dumps(config), OCI_CONFIG))
        body = dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config_desc.json(),
                "layers": layers,
                "annotations": {"org.opencontainers.image.version": f"{tag}/{arch}"},
            }
        )
        with self._lock:
            self.data.image_manifests += 1
        reference = tag if tagged else sha256(body)
        return self._manifest(repo, reference, body, OCI_MANIFEST)

    def tag(self, repo: str, index: int) -> tuple[str, str, Descriptor]:
        tag = f"v1.0.{index}"
        if self.spec.multi_every and index % self.spec.multi_every == 0:
            children = [
                self.image(repo, tag, os_, arch, tagged=False).json(
                    platform={"os": os_, "architecture": arch}
                )
                for os_, arch in PLATFORMS
            ]
            body = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
            desc = self._manifest(repo, tag, body, OCI_INDEX)
        else:
            os_, arch = PLATFORMS[0]
            desc = self.image(repo, tag, os_, arch, tagged=True)
        if self.spec.attachments:
            self.attach(repo, tag, index, desc)
        return repo, tag, desc

    def attach(self, repo: str, tag: str, index: int, subject: Descriptor) -> None:
        """Every 4th tag from 1 gets a signature digest tag, every 4th from 2 an SBOM referrer."""
        hex_ = subject.digest.removeprefix("sha256:")
        if index % 4 == 1:
            payload = dumps({"critical": {"image": {"docker-manifest-digest": subject.digest}}})
            layer = self._record_blob(repo, self.pusher.blob(repo, payload, COSIGN_SIGNATURE))
            config = self._record_blob(repo, self.pusher.blob(repo, b"{}", OCI_CONFIG))
            body = dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": config.json(),
                    "layers": [layer.json()],
                }
            )
            self._manifest(repo, f"sha256-{hex_}.sig", body, OCI_MANIFEST)
        elif index % 4 == 2:
            sbom = dumps({"spdxVersion": "SPDX-2.3", "name": f"{repo}:{tag}"})
            layer = self._record_blob(repo, self.pusher.blob(repo, sbom, SPDX))
            empty = self._record_blob(repo, self.pusher.blob(repo, b"{}", OCI_EMPTY))
            body = dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "artifactType": SPDX,
                    "config": empty.json(),
                    "layers": [layer.json()],
                    "subject": subject.json(),
                }
            )
            referrer = self._manifest(repo, sha256(body), body, OCI_MANIFEST)
            fallback = dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_INDEX,
                    "manifests": [referrer.json(artifactType=SPDX)],
                }
            )
            self._manifest(repo, f"sha256-{hex_}", fallback, OCI_INDEX)
        else:
            return
        with self._lock:
            self.data.attachments += 1


def push_dataset(spec: DatasetSpec, registry_url: str, prefix: str, *, threads: int = 4) -> Dataset:
    """Push `spec` under `prefix/app<N>` in the registry at `registry_url`."""
    dataset = Dataset(spec=spec, repos=spec.repo_names(prefix))
    pusher = Pusher(registry_url)
    builder = _Builder(spec, pusher, dataset)
    try:
        jobs: list[Callable[[], tuple[str, str, Descriptor]]] = [
            (lambda r=repo, i=i: builder.tag(r, i))
            for repo in dataset.repos
            for i in range(spec.tags)
        ]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for repo, tag, desc in pool.map(lambda job: job(), jobs):
                dataset.tags.setdefault(repo, {})[tag] = desc
    finally:
        pusher.close()
    return dataset


@dataclass(frozen=True)
class BigImage:
    """One image with one big layer, its layer kept in a file for the curl baseline."""

    repo: str
    tag: str
    layer_file: Path
    layer: Descriptor
    manifest: Descriptor
    config: Descriptor

    def sizes(self) -> dict[str, int]:
        return {d.digest: d.size for d in (self.layer, self.manifest, self.config)}

    @property
    def tag_sizes(self) -> dict[str, int]:
        return {f"{self.repo.rsplit('/', 1)[-1]}:{self.tag}": self.manifest.size}


def push_big_image(
    registry_url: str, repo: str, layer_size: int, workdir: Path, seed: str
) -> BigImage:
    """Write the layer to a file (hashing as it goes) and push the image from it."""
    layer_file = workdir / f"layer-{layer_size}.gz"
    digest = hashlib.sha256()
    raw_digest = hashlib.sha256()
    rng_chunks = stored_gzip_chunks(seed, layer_size)
    with layer_file.open("wb") as out:
        for chunk in rng_chunks:
            out.write(chunk)
            digest.update(chunk)
    # diff ID: the uncompressed bytes again (same seed), without holding them
    rng = random.Random(seed)
    left = layer_size
    while left > 0:
        piece = rng.randbytes(min(_CHUNK, left))
        raw_digest.update(piece)
        left -= len(piece)
    layer = Descriptor(OCI_LAYER_GZIP, "sha256:" + digest.hexdigest(), layer_file.stat().st_size)
    pusher = Pusher(registry_url)
    try:
        pusher.blob_file(repo, layer_file, layer.digest)
        config = dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + raw_digest.hexdigest()]},
            }
        )
        config_desc = pusher.blob(repo, config, OCI_CONFIG)
        body = dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config_desc.json(),
                "layers": [layer.json()],
            }
        )
        manifest = pusher.manifest(repo, "v1", body, OCI_MANIFEST)
    finally:
        pusher.close()
    return BigImage(repo, "v1", layer_file, layer, manifest, config_desc)
