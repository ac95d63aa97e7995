"""Descriptors: the (mediaType, digest, size) triple and what travels with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from regplan.errors import ManifestError
from regplan.frozen import filled
from regplan.oci import digest as digests
from regplan.oci.platform import Platform


@dataclass(frozen=True, eq=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    platform: Platform | None = None
    artifact_type: str = ""
    urls: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return hash((self.media_type, self.digest, self.size))

    @classmethod
    def from_json(cls, data: Any, *, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: not an object")
        digest = data.get("digest")
        size = data.get("size")
        media_type = data.get("mediaType", "")
        if not isinstance(digest, str) or not digests.is_valid(digest):
            raise ManifestError(f"{where}: invalid digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}: invalid size {size!r}")
        if not isinstance(media_type, str):
            raise ManifestError(f"{where}: invalid mediaType")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ManifestError(f"{where}: annotations must map strings to strings")
        plat = data.get("platform")
        if plat is not None and not isinstance(plat, dict):
            raise ManifestError(f"{where}: invalid platform")
        urls = data.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ManifestError(f"{where}: invalid urls")
        artifact_type = data.get("artifactType", "")
        return filled(
            cls,
            {
                "media_type": media_type,
                "digest": digest,
                "size": size,
                "annotations": dict(annotations),
                "platform": Platform.from_json(plat) if plat else None,
                "artifact_type": artifact_type if isinstance(artifact_type, str) else "",
                "urls": tuple(urls),
            },
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out
