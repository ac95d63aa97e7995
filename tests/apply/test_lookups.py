"""The look-ups before an apply writes: OCI Layout tags read on the calling thread, and the
drift check reading what a layout tag points at from index.json alone (operation counts, so a
return of the per-tag content walk fails here)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bench.walk import put_blob
from regplan.apply.drift import find_drift
from regplan.apply.lookups import look_up
from regplan.plan import model
from regplan.plan.model import Plan
from regplan.refs import ImageRef
from regplan.registry.ocidir.backend import OCIDirBackend

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _layout(root: Path, tags: int) -> dict[str, tuple[str, str]]:
    """A layout of `tags` one-layer images: tag -> (manifest digest, layer digest)."""
    root.mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entries, made = [], {}
    for i in range(tags):
        layer = put_blob(root, f"layer {i}".encode())
        config = put_blob(root, json.dumps({"rootfs": {"diff_ids": [layer]}}).encode())
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config,
                    "size": 1,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer,
                        "size": 1,
                    }
                ],
            }
        ).encode()
        digest = put_blob(root, manifest)
        entries.append(
            {
                "mediaType": MANIFEST,
                "digest": digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": f"t{i}"},
            }
        )
        made[f"t{i}"] = (digest, layer)
    index = {"schemaVersion": 2, "manifests": entries}
    (root / "index.json").write_text(json.dumps(index))
    return made


def _plan(source: Path, tags: dict[str, str]) -> Plan:
    actions = [
        SimpleNamespace(
            kind=model.TAG,
            source=f"ocidir://{source}@{digest}",
            source_tag=tag,
            source_digest=digest,
        )
        for tag, digest in tags.items()
    ]
    return cast(Plan, SimpleNamespace(actions=tuple(actions)))


def test_drift_reads_layout_tags_from_index_json_without_walking_their_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _layout(tmp_path / "src", 6)
    (tmp_path / "src" / "blobs" / "sha256" / made["t2"][1].split(":")[1]).unlink()
    planned = {tag: digest for tag, (digest, _) in made.items()}
    planned["t4"] = made["t5"][0]  # t4 moved since planning
    backend = OCIDirBackend()
    walks: list[str] = []
    walk = backend._missing_below

    def counted(ref: ImageRef, digest: str) -> str:
        walks.append(digest)
        return walk(ref, digest)

    monkeypatch.setattr(backend, "_missing_below", counted)
    drift = find_drift(_plan(tmp_path / "src", planned), backend)
    assert [(d.ref.rsplit(":", 1)[1], d.now) for d in drift] == [("t4", made["t4"][0])]
    assert walks == []  # t2's missing layer is the copy's to report, not drift's
    assert backend.index_parses == 1


def test_layout_refs_are_read_on_the_calling_thread_in_order() -> None:
    refs = [
        ImageRef.parse(r)
        for r in ("ocidir:///a:1", "registry.example.org/x:1", "ocidir:///b:2", "reg.io/y:2")
    ]
    threads: dict[str, str] = {}

    def read(ref: ImageRef) -> Any:
        threads[str(ref)] = threading.current_thread().name
        return str(ref)

    assert look_up(read, refs, 4, "test") == [str(r) for r in refs]
    here = threading.current_thread().name
    assert [threads[str(r)] == here for r in refs] == [True, False, True, False]
