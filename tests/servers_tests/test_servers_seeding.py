"""Seeding reproduces regclient's OCI Layouts exactly, and the fixtures around them hold up."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.servers import rawpush, skopeo
from tests.servers.distribution import RegistryServer
from tests.servers.paths import REGCLIENT_REPOS
from tests.servers.skopeo import SeededStorage

ACCEPT = ", ".join(sorted(rawpush.MANIFEST_TYPES))


def layout_entries(testdata: Path, repo: str) -> list[rawpush.LayoutEntry]:
    return rawpush.Layout(testdata / repo).entries()


def test_seeded_registry_holds_every_entry_at_its_layout_digest(
    seeded_registry: RegistryServer, regclient_testdata: Path
) -> None:
    with httpx.Client(base_url=seeded_registry.url, headers={"Accept": ACCEPT}) as client:
        for repo in REGCLIENT_REPOS:
            entries = layout_entries(regclient_testdata, repo)
            for entry in entries:
                head = client.head(f"/v2/{repo}/manifests/{entry.tag or entry.digest}")
                assert head.status_code == 200, (repo, entry)
                assert head.headers["Docker-Content-Digest"] == entry.digest, (repo, entry)
            tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
            assert sorted(tags) == sorted(e.tag for e in entries if e.tag)
    # Independent check through skopeo of a multi-platform index and a digest tag.
    v1 = f"docker://{seeded_registry.ref('testrepo', 'v1')}"
    assert skopeo.inspect_digest(v1, server=seeded_registry) == next(
        e.digest for e in layout_entries(regclient_testdata, "testrepo") if e.tag == "v1"
    )


def test_what_skopeo_could_not_seed(
    seeded_storage: SeededStorage, regclient_testdata: Path
) -> None:
    """skopeo 1.9 copies plain images, indexes, artifacts, `subject` manifests and the `loop`
    index; the referrers fallback indexes (descriptors with artifactType), the index of an index
    and untagged entries need the raw pusher."""
    testrepo = seeded_storage.reports["testrepo"]
    external = seeded_storage.reports["external"]
    entries = layout_entries(regclient_testdata, "testrepo")
    untagged = {f"@{e.digest}" for e in entries if not e.tag}
    fallback_indexes = {
        e.tag
        for e in entries
        if e.tag.startswith("sha256-")
        and "." not in e.tag
        and e.media_type.endswith("index.v1+json")
    }
    assert set(testrepo.by_raw_pusher) == fallback_indexes | untagged
    assert len(fallback_indexes) == 6 and len(untagged) == 2
    assert {"v1", "v2", "v3", "a1", "ai", "loop", "child", "mirror", "a-docker"} <= set(
        testrepo.by_skopeo
    )
    assert external.by_raw_pusher == [
        "sha256-dfae8f425735a5e3a72e40d6609e03079995511d48157c74d54801ff4430491e"
    ]
    assert sorted(external.by_skopeo) == ["a3", "a4"]


def test_seeded_registry_is_a_private_copy(
    seeded_registry: RegistryServer, seeded_storage: SeededStorage
) -> None:
    assert seeded_registry.root != seeded_storage.root
    v1 = _digest(seeded_registry, "v1")
    assert httpx.delete(f"{seeded_registry.url}/v2/testrepo/manifests/{v1}").status_code == 202
    assert httpx.head(f"{seeded_registry.url}/v2/testrepo/manifests/v1").status_code == 404
    revisions = (
        seeded_storage.root / "docker/registry/v2/repositories/testrepo/_manifests/revisions"
    )
    assert (revisions / "sha256" / v1.removeprefix("sha256:") / "link").is_file()


def test_seed_subset_with_auth_and_token(
    auth_registry: RegistryServer, token_registry: RegistryServer, regclient_testdata: Path
) -> None:
    """A fallback tag alone brings its referrers along (the raw pusher pushes children first)."""
    fallback = "sha256-dfae8f425735a5e3a72e40d6609e03079995511d48157c74d54801ff4430491e"
    for server in (auth_registry, token_registry):
        report = skopeo.seed_layout(
            regclient_testdata / "testrepo", server, "sub", tags=["v2", fallback]
        )
        assert report.by_skopeo == ["v2"] and report.by_raw_pusher == [fallback]
        assert skopeo.list_tags(f"docker://{server.host}/sub", server=server) == sorted(
            ["v2", fallback]
        )
    with pytest.raises(KeyError):
        skopeo.seed_layout(regclient_testdata / "testrepo", auth_registry, "sub", tags=["nope"])


def test_ocidir_copy_is_a_writable_copy(ocidir_copy: Path, regclient_testdata: Path) -> None:
    for repo in REGCLIENT_REPOS:
        copy = ocidir_copy / repo
        assert json.loads((copy / "index.json").read_bytes()) == json.loads(
            (regclient_testdata / repo / "index.json").read_bytes()
        )
        assert sorted(p.name for p in (copy / "blobs/sha256").iterdir()) == sorted(
            p.name for p in (regclient_testdata / repo / "blobs/sha256").iterdir()
        )
        assert os.access(copy / "index.json", os.W_OK) and os.access(copy / "blobs/sha256", os.W_OK)
    (ocidir_copy / "testrepo" / "index.json").write_text("{}")  # the shared data is untouched
    assert (regclient_testdata / "testrepo" / "index.json").read_text() != "{}"


def _digest(server: RegistryServer, tag: str) -> str:
    head = httpx.head(f"{server.url}/v2/testrepo/manifests/{tag}", headers={"Accept": ACCEPT})
    return head.headers["Docker-Content-Digest"]
