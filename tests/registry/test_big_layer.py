"""A layer bigger than any reply-body limit: re-applying a plan after the layer already landed.

The documented recovery for an interrupted `apply` is to run the same plan again. The blob
check (HEAD) of a 200 MiB layer answers with `Content-Length: 209715200`; a HEAD has no body,
so no body limit may apply to it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.regplan_cli import regplan, write_config
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIB = 1024 * 1024
LAYER_SIZE = 200 * MIB


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def big_layout(layout: Path) -> str:
    """An OCI Layout with one image tagged v1 whose layer is LAYER_SIZE incompressible bytes;
    returns the layer's digest. Written in pieces so the test holds one piece at a time."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    hasher = hashlib.sha256()
    partial = blobs / "partial"
    with partial.open("wb") as out:
        for _ in range(LAYER_SIZE // MIB):
            piece = os.urandom(MIB)
            hasher.update(piece)
            out.write(piece)
    layer = hasher.hexdigest()
    partial.rename(blobs / layer)
    config = _blob(layout, b'{"architecture":"amd64","os":"linux","config":{}}')
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{layer}",
                    "size": LAYER_SIZE,
                }
            ],
        }
    ).encode()
    top = _blob(layout, manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **top,
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return f"sha256:{layer}"


def test_reapply_after_a_200_mib_layer_landed_does_not_send_it_again(
    registry: RegistryServer, tmp_path: Path
) -> None:
    layer = big_layout(tmp_path / "layout")
    with FaultProxy(registry.host) as proxy:
        config = write_config(
            tmp_path,
            f"""
            version: 1
            creds:
              - registry: {proxy.host}
                tls: disabled
            defaults:
              skipDockerConfig: true
            sync:
              - source: ocidir://{tmp_path / "layout"}:v1
                target: {proxy.host}/big:v1
                type: image
            """,
        )
        plan = tmp_path / "plan.json"
        made = regplan("plan", "-c", str(config), "-o", str(plan), cwd=tmp_path)
        assert made.code == 0, str(made)

        # the first apply is cut off after the layer landed: every manifest PUT fails
        proxy.add(Fault("status", path=r"/manifests/", method="PUT", times=-1, status=503))
        first = regplan("apply", str(plan), cwd=tmp_path, timeout=600)
        assert first.code == 1, str(first)
        landed = [s for s in proxy.requests("PUT", r"/blobs/uploads/") if layer[7:] in s.query]
        assert [s.status for s in landed] == [201]

        proxy.clear()
        second = regplan("apply", str(plan), cwd=tmp_path, timeout=600)
        assert second.code == 0, str(second)
        assert "over the" not in second.stderr
        assert not proxy.requests("POST", r"/blobs/uploads/"), "an upload was started again"
        assert not proxy.requests("PUT", r"/blobs/uploads/")
        assert [s.status for s in proxy.requests("PUT", r"/manifests/v1$")] == [201]
