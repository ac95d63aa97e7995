"""An OCI Layout RegistryClient with test hooks: pretend rate-limit headers, watch uploads."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from regplan.oci.descriptor import Descriptor
from regplan.refs import ImageRef
from regplan.registry.api import ManifestHead, RateLimitInfo
from regplan.registry.client import RegistryClient


def layout_tags(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text()) if layout.exists() else {}
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index.get("manifests", [])
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
        and not m["annotations"]["org.opencontainers.image.ref.name"].startswith("sha256-")
    }  # referrers fallback tags (sha256-<hex>) left out: they come with the image


class HookedClient(RegistryClient):
    """OCI Layout client with hooks: pretend rate-limit headers, watch blob uploads."""

    def __init__(self) -> None:
        super().__init__()
        self.remaining: dict[str, int] = {}  # manifest digest -> pretend RateLimit-Remaining
        self.on_blob_put: list[Callable[[ImageRef], None]] = []  # run before each blob upload

    def manifest_head(self, ref: ImageRef) -> ManifestHead | None:
        head = super().manifest_head(ref)
        if head is not None and head.digest in self.remaining:
            info = RateLimitInfo(limit=100, remaining=self.remaining[head.digest])
            head = dataclasses.replace(head, rate_limit=info)
        return head

    def blob_put(self, ref: ImageRef, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        for hook in self.on_blob_put:
            hook(ref)
        super().blob_put(ref, desc, chunks)
