"""The bundled example (fixtures/example) is reproducible, valid, small, and readable by skopeo."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import strictyaml

from regplan.config.model import TagFilter
from regplan.filters import filter_tags
from tests.servers import rawpush, skopeo
from tests.servers.distribution import RegistryServer
from tests.servers.ociregistry import OCIRegistry
from tests.servers.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "fixtures" / "example"
SOURCE = EXAMPLE / "source"
MANIFEST_TYPES = rawpush.MANIFEST_TYPES


def generate(out: Path) -> None:
    """Run the generator as users do: a script, in its own process."""
    script = REPO_ROOT / "fixtures" / "make_example.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, capture_output=True)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()
    }


def test_generator_reproduces_the_committed_example_byte_for_byte(tmp_path: Path) -> None:
    generate(tmp_path / "one")
    generate(tmp_path / "two")
    first = tree_bytes(tmp_path / "one")
    assert first == tree_bytes(tmp_path / "two")
    assert first == tree_bytes(SOURCE), (
        "fixtures/example/source is stale: run fixtures/make_example.py"
    )


def walk(layout: Path, descriptor: dict[str, Any], seen: dict[str, dict[str, Any]]) -> None:
    """Check one descriptor's blob (digest, size) and recurse into manifests."""
    digest = descriptor["digest"]
    data = (layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    assert len(data) == descriptor["size"], digest
    if descriptor["mediaType"] not in MANIFEST_TYPES:
        return
    doc = json.loads(data)
    assert doc["mediaType"] == descriptor["mediaType"]
    seen[digest] = doc
    for child in [*doc.get("manifests", []), doc.get("config"), *doc.get("layers", [])]:
        if child:
            walk(layout, child, seen)


def test_layouts_are_valid_and_small() -> None:
    total = sum(f.stat().st_size for f in EXAMPLE.rglob("*") if f.is_file())
    assert total < 200 * 1024
    manifests: dict[str, dict[str, dict[str, Any]]] = {}
    for repo in ("app", "tools"):
        layout = SOURCE / repo
        assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
        seen: dict[str, dict[str, Any]] = {}
        for descriptor in json.loads((layout / "index.json").read_bytes())["manifests"]:
            walk(layout, descriptor, seen)
        manifests[repo] = seen
        # Nothing unreferenced: every blob is reachable from index.json.
        reachable = set(seen) | {
            d["digest"]
            for doc in seen.values()
            for d in [doc.get("config"), *doc.get("layers", [])]
            if d
        }
        assert {f"sha256:{p.name}" for p in (layout / "blobs/sha256").iterdir()} == reachable
    app_platforms = {
        (p["platform"]["os"], p["platform"]["architecture"])
        for doc in manifests["app"].values()
        for p in doc.get("manifests", [])
    }
    assert app_platforms == {("linux", "amd64"), ("linux", "arm64")}


def test_tools_sbom_is_a_referrer_listed_under_the_fallback_tag() -> None:
    layout = rawpush.Layout(SOURCE / "tools")
    tags = {e.tag: e for e in layout.entries()}
    latest = tags["latest"].digest
    fallback = tags["sha256-" + latest.removeprefix("sha256:")]
    [listed] = json.loads(layout.blob(fallback.digest))["manifests"]
    assert listed["artifactType"] == "application/spdx+json"
    sbom = json.loads(layout.blob(listed["digest"]))
    assert sbom["subject"]["digest"] == latest
    assert sbom["artifactType"] == "application/spdx+json"
    assert json.loads(layout.blob(sbom["layers"][0]["digest"]))["spdxVersion"] == "SPDX-2.3"


def test_config_filters_select_the_releases() -> None:
    config = strictyaml.dirty_load(
        (EXAMPLE / "regplan.yml").read_text(), allow_flow_style=True
    ).data
    assert config["defaults"] == {"parallel": "2", "interval": "1h"}
    repository, image = config["sync"]
    assert repository["type"] == "repository" and repository["target"] == "ocidir://demo-target/app"
    assert (image["type"], image["referrers"], image["digestTags"]) == ("image", "true", "true")
    assert image["source"].startswith("ocidir://fixtures/example/source/tools")
    tags = rawpush.Layout(SOURCE / "app").tags()
    assert sorted(tags) == ["1.0", "1.1", "1.2-rc1", "dev"]
    tag_filter = TagFilter(
        deny=tuple(repository["tags"]["deny"]),
        semver_range=tuple(repository["tags"]["semverRange"]),
    )
    assert filter_tags(tags, (tag_filter,)) == ["1.0", "1.1"]


def test_skopeo_reads_every_tag_and_copies_the_example(
    registry: RegistryServer, referrers_registry: OCIRegistry
) -> None:
    for repo in ("app", "tools"):
        report = skopeo.seed_layout(SOURCE / repo, registry, f"example/{repo}")
        # Only the fallback index (its descriptor carries artifactType) needs the raw pusher.
        assert report.by_raw_pusher == [t for t in report.all if t.startswith("sha256-")]
    latest = skopeo.inspect_digest(f"oci:{SOURCE / 'tools'}:latest")
    # On a registry with the referrers API, the SBOM shows up as a referrer of tools:latest.
    skopeo.seed_layout(SOURCE / "tools", referrers_registry, "tools", use_skopeo=False)
    referrers = httpx.get(f"{referrers_registry.url}/v2/tools/referrers/{latest}").json()
    assert [m["artifactType"] for m in referrers["manifests"]] == ["application/spdx+json"]


@pytest.mark.parametrize("tag", ["1.0", "1.1", "1.2-rc1", "dev"])
def test_skopeo_inspects_app_tags(tag: str) -> None:
    entry = next(e for e in rawpush.Layout(SOURCE / "app").entries() if e.tag == tag)
    assert skopeo.inspect_digest(f"oci:{SOURCE / 'app'}:{tag}") == entry.digest
