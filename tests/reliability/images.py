"""Deterministic test images: an OCI Layout written from a seed, pushed into a source registry
with the independent raw pusher (tests/servers/rawpush.py), and checks of a target's state.

Layers are random bytes (registries never look inside them), so a fault that corrupts or cuts
a blob is always visible in its digest.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.servers import rawpush, skopeo

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"
KIB = 1024


@dataclass
class ImageSet:
    """What was generated: tag -> top-level digest, and every blob's bytes by digest."""

    layout: Path
    tags: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict, repr=False)
    layer_digests: set[str] = field(default_factory=set)

    def blob_sizes(self) -> dict[str, int]:
        return {d: len(b) for d, b in self.blobs.items()}


class _Writer:
    def __init__(self, layout: Path, rng: random.Random, images: ImageSet) -> None:
        self.layout = layout
        self.rng = rng
        self.images = images
        (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(self, data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.layout / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        self.images.blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def image(self, name: str, layers: int, min_size: int, max_size: int, arch: str) -> dict:
        config = json.dumps(
            {"architecture": arch, "os": "linux", "config": {"Labels": {"name": name}}},
            sort_keys=True,
        ).encode()
        layer_descs = []
        for _ in range(layers):
            size = self.rng.randint(min_size, max_size)
            desc = {"mediaType": OCI_LAYER, **self.blob(self.rng.randbytes(size))}
            self.images.layer_digests.add(desc["digest"])
            layer_descs.append(desc)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **self.blob(config)},
            "layers": layer_descs,
        }
        raw = json.dumps(manifest, sort_keys=True).encode()
        return {"mediaType": OCI_MANIFEST, **self.blob(raw)}

    def index(self, children: list[dict]) -> dict:
        raw = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, sort_keys=True
        ).encode()
        return {"mediaType": OCI_INDEX, **self.blob(raw)}


def make_images(
    layout: Path,
    *,
    seed: int,
    images: int = 2,
    layers: int = 2,
    min_size: int = 16 * KIB,
    max_size: int = 64 * KIB,
    index_every: int = 2,
) -> ImageSet:
    """`images` tags v1..vN; every `index_every`-th one (v2, v4, ...) is a two-platform index
    (0: none). Same seed, same digests."""
    rng = random.Random(seed)
    result = ImageSet(layout)
    writer = _Writer(layout, rng, result)
    entries = []
    for n in range(1, images + 1):
        tag = f"v{n}"
        if index_every and n % index_every == 0:
            children = []
            for arch in ("amd64", "arm64"):
                desc = writer.image(f"{tag}-{arch}", layers, min_size, max_size, arch)
                desc["platform"] = {"architecture": arch, "os": "linux"}
                children.append(desc)
            top = writer.index(children)
        else:
            top = writer.image(tag, layers, min_size, max_size, "amd64")
        result.tags[tag] = top["digest"]
        entries.append({**top, "annotations": {REF_NAME: tag}})
    (layout / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    )
    return result


def push_images(images: ImageSet, server: rawpush.Target, repo: str) -> None:
    rawpush.push_layout(images.layout, server, repo)


# -- checking a target ------------------------------------------------------------------------


class _Plain:
    def skopeo_args(self, prefix: str = "") -> list[str]:
        return [f"--{prefix}tls-verify=false"]


PLAIN = _Plain()


def tag_digests(host: str, repo: str) -> dict[str, str]:
    """tag -> manifest digest in `host/repo`, read with skopeo ({} when the repo is absent)."""
    try:
        tags = skopeo.list_tags(f"docker://{host}/{repo}", server=PLAIN)
    except skopeo.SkopeoError as e:
        if "unknown" in e.stderr.lower() or "not found" in e.stderr.lower():
            return {}
        raise
    return {t: skopeo.inspect_digest(f"docker://{host}/{repo}:{t}", server=PLAIN) for t in tags}


def missing_content(url: str, repo: str, digest: str) -> list[str]:
    """What the image `digest` lacks in the registry at `url`: every manifest in its tree is
    fetched and verified, every blob HEADed and its size compared. [] means complete."""
    problems: list[str] = []
    accept = ", ".join(sorted(rawpush.MANIFEST_TYPES))
    with httpx.Client(base_url=url, timeout=30) as client:
        pending = [digest]
        while pending:
            current = pending.pop()
            response = client.get(f"/v2/{repo}/manifests/{current}", headers={"Accept": accept})
            if response.status_code != 200:
                problems.append(f"manifest {current}: {response.status_code}")
                continue
            if "sha256:" + hashlib.sha256(response.content).hexdigest() != current:
                problems.append(f"manifest {current}: content does not match its digest")
                continue
            doc = response.json()
            pending.extend(m["digest"] for m in doc.get("manifests") or [])
            for blob in [doc.get("config"), *(doc.get("layers") or [])]:
                if not blob:
                    continue
                head = client.head(f"/v2/{repo}/blobs/{blob['digest']}")
                if head.status_code != 200:
                    problems.append(f"blob {blob['digest']}: {head.status_code}")
                elif int(head.headers.get("content-length", -1)) != blob["size"]:
                    problems.append(f"blob {blob['digest']}: size {head.headers['content-length']}")
    return problems


def assert_mirrored(url: str, host: str, repo: str, expected: dict[str, str]) -> None:
    """The target holds exactly `expected` tags at those digests (skopeo) and every image is
    complete (the tree walked directly, not through any proxy)."""
    assert tag_digests(host, repo) == expected
    for tag, digest in expected.items():
        assert missing_content(url, repo, digest) == [], tag


def assert_tags_consistent(
    url: str, host: str, repo: str, before: dict[str, str], planned: dict[str, str]
) -> dict[str, str]:
    """After a failed run: every tag is either untouched (as `before`) or finished (at its
    `planned` digest with the whole image present). Returns the tags it found."""
    now = tag_digests(host, repo)
    for tag, digest in now.items():
        if before.get(tag) == digest:
            continue
        assert planned.get(tag) == digest, f"{tag} moved to {digest}, neither before nor planned"
        assert missing_content(url, repo, digest) == [], f"{tag} points at an incomplete image"
    for tag in before:
        assert tag in now, f"{tag} was removed"
    return now
