"""What one manifest document points at, read generically from its JSON.

Garbage collection and the completeness check must understand every manifest a layout may
hold, including ones regplan never copies itself (the OCI artifact manifest older ORAS wrote,
schema1 `fsLayers`): anything shaped like a descriptor under a known key counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regplan.oci import digest as digests


@dataclass(frozen=True)
class Refs:
    manifests: tuple[str, ...] = ()  # index children: manifests, read further
    blobs: tuple[str, ...] = ()  # config, layers, artifact blobs: leaves
    external: tuple[str, ...] = ()  # layers with `urls`: may legitimately be absent
    subject: str = ""


def _digest(value: Any) -> str:
    if isinstance(value, dict):
        digest = value.get("digest")
        if isinstance(digest, str) and digests.is_valid(digest):
            return digest
    return ""


def _items(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def references(doc: Any) -> Refs:
    """The digests `doc` (a parsed manifest, index or artifact manifest) refers to."""
    if not isinstance(doc, dict):
        return Refs()
    manifests = [d for d in map(_digest, _items(doc, "manifests")) if d]
    blobs: list[str] = []
    external: list[str] = []
    config = _digest(doc.get("config"))
    if config:
        blobs.append(config)
    for item in [*_items(doc, "layers"), *_items(doc, "blobs")]:
        digest = _digest(item)
        if digest:
            (external if isinstance(item, dict) and item.get("urls") else blobs).append(digest)
    for item in _items(doc, "fsLayers"):  # schema1
        blob_sum = item.get("blobSum") if isinstance(item, dict) else None
        if isinstance(blob_sum, str) and digests.is_valid(blob_sum):
            blobs.append(blob_sum)
    return Refs(tuple(manifests), tuple(blobs), tuple(external), _digest(doc.get("subject")))
