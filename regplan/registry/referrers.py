"""The referrers fallback tag schema, shared by both backends.

A store without the OCI referrers API keeps, for each subject digest, an OCI index tagged
`sha256-<hex>` listing the manifests that refer to it (OCI distribution spec, "referrers tag
schema"). Reading it and merging into it is the same for an HTTP registry and an OCI Layout.
"""

from __future__ import annotations

from typing import Any

from regplan.errors import NotFoundError
from regplan.oci import digest as digests
from regplan.oci import mediatypes as mt
from regplan.oci.descriptor import Descriptor
from regplan.oci.manifest import Manifest, build_index
from regplan.refs import ImageRef
from regplan.registry.api import Backend


def referrer_descriptor(manifest: Manifest) -> Descriptor:
    """How a referrer is listed: its descriptor plus artifactType and annotations."""
    return Descriptor(
        media_type=manifest.media_type,
        digest=manifest.digest,
        size=manifest.size,
        annotations=dict(manifest.annotations),
        artifact_type=manifest.referrer_artifact_type(),
    )


def fallback_ref(ref: ImageRef, subject_digest: str) -> ImageRef:
    return ref.with_tag(digests.fallback_tag(subject_digest))


def read_fallback(backend: Backend, ref: ImageRef, subject_digest: str) -> list[Descriptor]:
    """The referrers listed under the subject's fallback tag ([] when there is none)."""
    try:
        index = backend.manifest_get(fallback_ref(ref, subject_digest))
    except NotFoundError:
        return []
    return list(index.manifests) if index.is_index else []


def merged_fallback_index(existing: Manifest | None, referrer: Manifest) -> Manifest | None:
    """The fallback index with `referrer` added, or None when it is listed already."""
    entries: list[dict[str, Any]] = []
    if existing is not None and existing.is_index:
        entries = list(existing.json().get("manifests") or [])
        if any(isinstance(e, dict) and e.get("digest") == referrer.digest for e in entries):
            return None
    entries.append(referrer_descriptor(referrer).to_json())
    return build_index(mt.OCI_INDEX, entries)


def add_to_fallback(backend: Backend, ref: ImageRef, referrer: Manifest) -> bool:
    """Merge `referrer` into its subject's fallback index in `ref`'s repository.

    A read-modify-write: entries another writer added since are kept. Returns True if the
    index changed."""
    assert referrer.subject is not None
    tag_ref = fallback_ref(ref, referrer.subject.digest)
    try:
        existing: Manifest | None = backend.manifest_get(tag_ref)
    except NotFoundError:
        existing = None
    merged = merged_fallback_index(existing, referrer)
    if merged is None:
        return False
    backend.manifest_put(tag_ref, merged)
    return True


def matches_artifact_type(desc: Descriptor, artifact_type: str) -> bool:
    return not artifact_type or desc.artifact_type == artifact_type
