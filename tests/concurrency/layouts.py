"""Generated OCI Layouts for multi-writer tests, and an independent checker of a layout.

The checker does not use regplan: it reads index.json and follows every descriptor it finds
(index children, config, layers), checking that each blob exists and hashes to its digest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# The example generator's blob value and names serve here too.
from fixtures.make_example import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, REF_NAME, Blob

__all__ = ["OCI_CONFIG", "OCI_INDEX", "OCI_MANIFEST", "REF_NAME", "Blob"]

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _put(layout: Path, blob: Blob) -> dict[str, Any]:
    path = layout / "blobs" / "sha256" / blob.digest.split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob.data)
    return blob.descriptor()


def _layer(seed: str, size: int) -> Blob:
    return Blob(OCI_LAYER, hashlib.shake_256(seed.encode()).digest(size))


def image(layout: Path, tag: str, *, layer_size: int = 32 * 1024) -> dict[str, Any]:
    """A two-platform index for `tag`: per platform a config, a shared base and its own layer."""
    children = []
    for arch in ("amd64", "arm64"):
        base = _put(layout, _layer(f"base-{arch}", layer_size))
        own = _put(layout, _layer(f"{tag}-{arch}", layer_size))
        config = Blob(
            OCI_CONFIG,
            json.dumps({"architecture": arch, "os": "linux", "tag": tag}).encode(),
        )
        manifest = Blob(
            OCI_MANIFEST,
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": _put(layout, config),
                    "layers": [base, own],
                }
            ).encode(),
        )
        desc = _put(layout, manifest)
        desc["platform"] = {"architecture": arch, "os": "linux"}
        children.append(desc)
    index = Blob(
        OCI_INDEX,
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode(),
    )
    return _put(layout, index)


def write_layout(layout: Path, entries: list[dict[str, Any]]) -> None:
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    (layout / "index.json").write_text(json.dumps(index))


def make_source(layout: Path, tags: list[str], *, layer_size: int = 32 * 1024) -> None:
    entries = []
    for tag in tags:
        desc = image(layout, tag, layer_size=layer_size)
        entries.append({**desc, "annotations": {REF_NAME: tag}})
    write_layout(layout, entries)


def tags(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {
        m["annotations"][REF_NAME]: m["digest"]
        for m in index["manifests"]
        if REF_NAME in m.get("annotations", {})
    }


def problems(layout: Path) -> list[str]:
    """Everything wrong with the content under the layout's tags (empty: all complete)."""
    found: list[str] = []
    checked: set[str] = set()

    def check(desc: dict[str, Any], where: str) -> None:
        digest = desc["digest"]
        if digest in checked:
            return
        checked.add(digest)
        path = layout / "blobs" / "sha256" / digest.split(":")[1]
        if not path.is_file():
            found.append(f"{where}: {digest} missing")
            return
        data = path.read_bytes()
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest or len(data) != desc["size"]:
            found.append(f"{where}: {digest} corrupt")
            return
        if desc.get("mediaType") in (OCI_INDEX, OCI_MANIFEST):
            body = json.loads(data)
            for child in body.get("manifests", []):
                check(child, where)
            for blob in [body["config"], *body["layers"]] if "config" in body else []:
                check(blob, where)

    index = json.loads((layout / "index.json").read_text())
    for entry in index["manifests"]:
        check(entry, entry.get("annotations", {}).get(REF_NAME, entry["digest"]))
    return found
