"""Push tiny distinct images (one config, one layer) to a test registry over plain OCI
distribution calls — written from the spec, not with regplan's client, which is under test."""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

import httpx

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


class Target(Protocol):
    @property
    def url(self) -> str: ...


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(client: httpx.Client, repo: str, data: bytes) -> dict[str, object]:
    digest = _digest(data)
    start = client.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = start.headers["location"]
    sep = "&" if "?" in location else "?"
    done = client.put(
        f"{location}{sep}digest={digest}",
        content=data,
        headers={"content-type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


def manifest_for(seed: str) -> bytes:
    """The manifest `push` would write for `seed` (its blobs are not pushed)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    return one_layer_manifest(config, f"layer of {seed}\n".encode())


def one_layer_manifest(config: bytes, layer: bytes) -> bytes:
    """An OCI image manifest of `config` and one uncompressed tar layer."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()


def push(server: Target, repo: str, tags: list[str], seed: str) -> str:
    """Push the image made from `seed` under every tag in `tags`; return its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer of {seed}\n".encode()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        _blob(client, repo, config)
        _blob(client, repo, layer)
        body = manifest_for(seed)
        for tag in tags:
            put = client.put(
                f"/v2/{repo}/manifests/{tag}", content=body, headers={"content-type": MANIFEST_TYPE}
            )
            assert put.status_code == 201, put.text
    return _digest(body)


def tags(server: Target, repo: str) -> list[str]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        reply = client.get(f"/v2/{repo}/tags/list")
        if reply.status_code == 404:
            return []
        assert reply.status_code == 200, reply.text
        return sorted(reply.json().get("tags") or [])


def head(server: Target, repo: str, reference: str) -> str | None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        reply = client.head(f"/v2/{repo}/manifests/{reference}", headers={"accept": MANIFEST_TYPE})
        if reply.status_code == 404:
            return None
        assert reply.status_code == 200, reply.status_code
        return reply.headers["docker-content-digest"]


def delete(server: Target, repo: str, reference: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        reply = client.delete(f"/v2/{repo}/manifests/{reference}")
        assert reply.status_code == 202, reply.text
