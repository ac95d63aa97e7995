"""Manifests and indexes: parse raw bytes into typed values, verify digests, walk children."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from regplan.errors import DigestMismatchError, ManifestError
from regplan.oci import digest as digests
from regplan.oci import mediatypes as mt
from regplan.oci.descriptor import Descriptor


@dataclass(frozen=True, eq=False)
class Manifest:
    """A manifest or index exactly as its bytes say; `raw` is what gets pushed."""

    media_type: str
    digest: str
    raw: bytes = field(repr=False)
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()  # index children
    subject: Descriptor | None = None
    artifact_type: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_TYPES

    def descriptor(self) -> Descriptor:
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size)

    def blobs(self) -> tuple[Descriptor, ...]:
        """Config then layers: the blobs an image manifest needs (none for an index)."""
        return ((self.config,) if self.config else ()) + self.layers

    def referrer_artifact_type(self) -> str:
        """What the referrers API reports as artifactType: the field, else the config type."""
        if self.artifact_type:
            return self.artifact_type
        return self.config.media_type if self.config else ""

    def json(self) -> dict[str, Any]:
        return orjson.loads(self.raw)


def parse(
    raw: bytes, media_type: str = "", *, digest: str = "", where: str = "manifest"
) -> Manifest:
    """Parse manifest bytes.

    `media_type` is what the registry said (Content-Type); the body's own `mediaType` wins when
    present. When `digest` is given the bytes must hash to it (a registry that lies is caught).
    """
    if len(raw) > mt.MAX_MANIFEST_SIZE:
        raise ManifestError(
            f"{where}: {len(raw)} bytes is over the {mt.MAX_MANIFEST_SIZE} byte manifest limit"
        )
    if digest:
        algorithm, _ = digests.split(digest)
        actual = digests.of(raw, algorithm)
        if actual != digest:
            raise DigestMismatchError(f"{where}: content digest {actual} does not match {digest}")
    else:
        digest = digests.of(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ManifestError(f"{where}: invalid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ManifestError(f"{where}: not a JSON object")
    body_type = body.get("mediaType")
    declared = mt.base(media_type) if media_type else ""
    if isinstance(body_type, str) and body_type:
        kind = body_type
    elif declared and declared not in (mt.OCTET_STREAM, "application/json"):
        kind = declared
    elif "manifests" in body:
        kind = mt.OCI_INDEX
    elif "config" in body or "layers" in body:
        kind = mt.OCI_MANIFEST
    elif body.get("schemaVersion") == 1:
        kind = mt.DOCKER_SCHEMA1_SIGNED if "signatures" in body else mt.DOCKER_SCHEMA1
    else:
        raise ManifestError(f"{where}: unknown manifest type")
    if kind not in mt.MANIFEST_TYPES:
        raise ManifestError(f"{where}: unsupported media type {kind}")

    def desc(value: Any, label: str) -> Descriptor:
        return Descriptor.from_json(value, where=f"{where} {label}")

    def desc_list(key: str) -> tuple[Descriptor, ...]:
        items = body.get(key) or []
        if not isinstance(items, list):
            raise ManifestError(f"{where}: {key} must be a list")
        return tuple(desc(v, f"{key}[{i}]") for i, v in enumerate(items))

    annotations = body.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ManifestError(f"{where}: annotations must be an object")
    artifact_type = body.get("artifactType") or ""
    subject = body.get("subject")
    if kind in mt.INDEX_TYPES:
        manifests = desc_list("manifests")
        return Manifest(
            media_type=kind,
            digest=digest,
            raw=raw,
            manifests=manifests,
            subject=desc(subject, "subject") if subject else None,
            artifact_type=artifact_type if isinstance(artifact_type, str) else "",
            annotations={str(k): str(v) for k, v in annotations.items()},
        )
    if kind in mt.SCHEMA1_TYPES:
        # schema1 carries blobSums but no config; copied as-is, layers by blobSum
        layers = tuple(
            Descriptor(
                media_type="application/vnd.docker.image.rootfs.diff.tar.gzip",
                digest=layer["blobSum"],
                size=-1,
            )
            for layer in body.get("fsLayers") or []
            if isinstance(layer, dict) and digests.is_valid(layer.get("blobSum", ""))
        )
        return Manifest(
            media_type=kind, digest=digest, raw=raw, layers=tuple(dict.fromkeys(layers))
        )
    config = body.get("config")
    return Manifest(
        media_type=kind,
        digest=digest,
        raw=raw,
        config=desc(config, "config") if config is not None else None,
        layers=desc_list("layers"),
        subject=desc(subject, "subject") if subject else None,
        artifact_type=artifact_type if isinstance(artifact_type, str) else "",
        annotations={str(k): str(v) for k, v in annotations.items()},
    )


def build_index(
    media_type: str,
    manifests: list[dict[str, Any]],
    *,
    annotations: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """Serialise a new index (a filtered `platforms` index, a referrers fallback index)."""
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if extra:
        body.update(extra)
    body["manifests"] = manifests
    if annotations:
        body["annotations"] = annotations
    raw = orjson.dumps(body)
    return parse(raw, media_type)
