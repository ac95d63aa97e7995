"""Push a generated single-layer image of any size into a test registry, streaming.

The layer is made of 1 MiB blocks, each a shared random block with its index written in front,
so no two blocks are equal and nothing large is ever held in memory. The blob goes up as one
streamed PATCH and a closing PUT `?digest=`, computed on the way (distribution accepts that).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

MiB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class PushedImage:
    digest: str  # manifest digest
    layer: str  # layer digest
    size: int  # layer size
    config_size: int

    @property
    def blob_bytes(self) -> int:
        return self.size + self.config_size


def _blocks(size: int, seed: bytes) -> Iterator[bytes]:
    block = hashlib.shake_256(seed).digest(MiB)
    full, rest = divmod(size, MiB)
    for i in range(full):
        yield i.to_bytes(8, "big") + block[8:]
    if rest:
        yield block[:rest]


def _push_blob(client: httpx.Client, repo: str, chunks: Iterator[bytes]) -> tuple[str, int]:
    start = client.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    hasher = hashlib.sha256()
    total = 0

    def body() -> Iterator[bytes]:
        nonlocal total
        for chunk in chunks:
            hasher.update(chunk)
            total += len(chunk)
            yield chunk

    patch = client.patch(
        start.headers["Location"],
        content=body(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert patch.status_code == 202, patch.text
    digest = "sha256:" + hasher.hexdigest()
    location = patch.headers["Location"]
    separator = "&" if "?" in location else "?"
    done = client.put(f"{location}{separator}digest={digest}")
    assert done.status_code == 201, done.text
    return digest, total


def push_image(url: str, repo: str, tag: str, *, size: int, seed: str = "") -> PushedImage:
    """A one-layer OCI image of `size` layer bytes at `repo:tag`; `seed` makes it distinct."""
    with httpx.Client(base_url=url, timeout=120) as client:
        layer, layer_size = _push_blob(client, repo, _blocks(size, f"{seed}:{size}".encode()))
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer]},
                "config": {"Labels": {"seed": seed}},
            }
        ).encode()
        config_digest, _ = _push_blob(client, repo, iter([config]))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": layer_size}],
            }
        ).encode()
        put = client.put(
            f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert put.status_code == 201, put.text
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        return PushedImage(digest, layer, layer_size, len(config))


def small_image(url: str, repo: str, tag: str, seed: str) -> PushedImage:
    """A distinct tiny image (a few KiB), for retag tests."""
    return push_image(url, repo, tag, size=4096 + len(seed), seed=seed)
