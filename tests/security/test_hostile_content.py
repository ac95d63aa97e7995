"""Well-formed but hostile content from a source: each fails the image it belongs to, with a
clear line, while healthy steps in the same run are still mirrored.

The sources are real servers on 127.0.0.1: the hostile registry (tests/badinput/hostile.py)
serves manifests a real registry would not store; the spec-following registry
(tests/servers/ociregistry.py) serves the referrers API. Targets are real distribution 2.8.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.badinput.hostile import HostileRegistry, Repo, Served, beside_real_registries
from tests.regplan_cli import Result, regplan, sync_config, sync_step, write_plan
from tests.reliability.images import tag_digests
from tests.servers.distribution import RegistryServer
from tests.servers.ociregistry import OCIRegistry

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hostile-content")]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def doc(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class World:
    good: RegistryServer  # real source holding good:v1
    target: RegistryServer  # real target
    hostile: HostileRegistry
    base: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("hostile-content")
    with beside_real_registries(base, "good", seed=11, images=1) as (good, target, hostile, _):
        yield World(good, target, hostile, base)


NO_DOCKER_CONFIG = {"skipDockerConfig": True}


def config(w: World, tmp_path: Path, hostile_step: str) -> Path:
    """Two steps: the hostile source first, then a healthy image that must still land."""
    return sync_config(
        tmp_path,
        [w.good, w.target, w.hostile],
        hostile_step,
        sync_step(f"{w.good.host}/good:v1", f"{w.target.host}/healthy:v1"),
        defaults={"skipDockerConfig": True, "parallel": 2},
    )


def image_step(w: World, repo: str) -> str:
    return sync_step(f"{w.hostile.host}/{repo}:v1", f"{w.target.host}/{repo}:v1")


EMPTY_CONFIG = b"{}"


def config_only_image(note: str | None = None) -> bytes:
    """An image manifest of the empty config and no layers, told apart by its `note`."""
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(EMPTY_CONFIG), "size": 2},
        "layers": [],
    }
    if note is not None:
        body["annotations"] = {"note": note}
    return doc(body)


def assert_one_clean_error(result: Result, *needles: str) -> None:
    assert result.code == 1, str(result)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, str(result)
    for needle in needles:
        assert needle in result.stdout + result.stderr, f"{needle!r} not in\n{result}"


def test_schema1_child_of_an_index_fails_that_image_only(world: World, tmp_path: Path) -> None:
    # a schema1 manifest declares no blob sizes: planning it used to produce a blob of size -1
    # that apply streamed with no bound (a plan reading "0 B" filled the target's disk)
    schema1 = doc(
        {"schemaVersion": 1, "name": "s1", "tag": "v1", "architecture": "amd64",
         "fsLayers": [{"blobSum": sha(b"endless")}], "history": [{"v1Compatibility": "{}"}]}
    )  # fmt: skip
    index = doc(
        {"schemaVersion": 2, "mediaType": OCI_INDEX,
         "manifests": [{"mediaType": SCHEMA1, "digest": sha(schema1), "size": len(schema1),
                        "platform": {"architecture": "amd64", "os": "linux"}}]}
    )  # fmt: skip
    world.hostile.repos["s1"] = Repo(
        manifests={"v1": Served(index, OCI_INDEX), sha(schema1): Served(schema1, SCHEMA1)}
    )
    cfg = config(world, tmp_path, image_step(world, "s1"))
    planned = regplan("plan", "-c", str(cfg), "--format", "json", cwd=tmp_path)
    assert_one_clean_error(planned, "schema1 manifests are not supported", sha(schema1))
    actions = orjson.loads(planned.stdout)["actions"]
    assert all(a["size"] >= 0 for a in actions), actions
    assert not any("/s1" in a["target"] for a in actions), actions

    result = regplan("once", "-c", str(cfg), cwd=tmp_path)
    assert_one_clean_error(result, "schema1 manifests are not supported")
    assert "v1" in tag_digests(world.target.host, "healthy")
    assert tag_digests(world.target.host, "s1") == {}
    assert not any(r.startswith("GET /v2/s1/blobs") for r in world.hostile.requests)


def test_index_children_obey_media_types(world: World, tmp_path: Path) -> None:
    child = config_only_image()
    index = doc(
        {"schemaVersion": 2, "mediaType": OCI_INDEX,
         "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha(child), "size": len(child)}]}
    )  # fmt: skip
    world.hostile.repos["mt"] = Repo(
        manifests={"v1": Served(index, OCI_INDEX), sha(child): Served(child, OCI_MANIFEST)}
    )
    step = image_step(world, "mt") + f"    mediaTypes: [{OCI_INDEX}]\n"
    result = regplan("plan", "-c", str(config(world, tmp_path, step)), cwd=tmp_path)
    assert_one_clean_error(result, "which mediaTypes does not allow", sha(child))


def test_an_index_nested_400_deep_fails_that_image_only(world: World, tmp_path: Path) -> None:
    # honest digests all the way down: only the depth is hostile
    leaf = config_only_image()
    served = {sha(leaf): Served(leaf, OCI_MANIFEST)}
    below, below_type = leaf, OCI_MANIFEST
    for _ in range(400):
        index = doc(
            {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": below_type, "digest": sha(below), "size": len(below)}]}
        )  # fmt: skip
        served[sha(index)] = Served(index, OCI_INDEX)
        below, below_type = index, OCI_INDEX
    served["v1"] = Served(below, OCI_INDEX)
    world.hostile.repos["deep"] = Repo(manifests=served)
    result = regplan("once", "-c", str(config(world, tmp_path, image_step(world, "deep"))))
    assert_one_clean_error(result, "nested more than 16 levels deep")
    assert "v1" in tag_digests(world.target.host, "healthy")
    assert tag_digests(world.target.host, "deep") == {}


def test_a_fallback_tag_that_is_no_index_is_an_ordinary_tag(world: World, tmp_path: Path) -> None:
    # a registry without the referrers API, whose `sha256-<hex>` tag is a plain image
    subject, odd = config_only_image("subject"), config_only_image("odd")
    fallback = "sha256-" + sha(subject).removeprefix("sha256:")
    world.hostile.repos["fb"] = Repo(
        manifests={"v1": Served(subject, OCI_MANIFEST), fallback: Served(odd, OCI_MANIFEST)}
    )
    step = image_step(world, "fb") + "    referrers: true\n    digestTags: true\n"
    result = regplan("plan", "-c", str(config(world, tmp_path, step)), "--format", "json")
    assert result.code == 0, str(result)
    plan = orjson.loads(result.stdout)
    assert any("is not an OCI index" in w for w in plan["warnings"]), plan["warnings"]
    digest_tags = [a for a in plan["actions"] if a["kind"] == "digest-tag"]
    assert [(a["target"], a["digest"]) for a in digest_tags] == [
        (f"{world.target.host}/fb:{fallback}", sha(odd))
    ]
    assert not any(a["kind"] == "referrer" for a in plan["actions"])


def test_a_digest_tag_named_like_a_fallback_is_copied_when_the_source_has_the_api(
    tmp_path: Path, world: World
) -> None:
    # with the referrers API the `sha256-<hex>` tag is not where referrers live: regsync
    # copies it as a digest tag, and so does regplan
    source = OCIRegistry().start()
    try:
        with source.lock:
            source._store_blob("app", EMPTY_CONFIG, sha(EMPTY_CONFIG))
        subject, tagged = config_only_image("subject"), config_only_image("digest-tagged")
        source.put_manifest("app", "v1", OCI_MANIFEST, subject)
        own = "sha256-" + sha(subject).removeprefix("sha256:")
        source.put_manifest("app", own, OCI_MANIFEST, tagged)
        step = sync_step(
            f"{source.host}/app:v1", f"{world.target.host}/api:v1", referrers=True, digestTags=True
        )
        cfg = sync_config(tmp_path, [source, world.target], step, defaults=NO_DOCKER_CONFIG)
        result = regplan("once", "-c", str(cfg), cwd=tmp_path)
        assert result.code == 0, str(result)
        assert tag_digests(world.target.host, "api") == {"v1": sha(subject), own: sha(tagged)}
    finally:
        source.stop()


def test_apply_refuses_a_crafted_plan_with_an_unsized_blob(world: World, tmp_path: Path) -> None:
    from regplan.plan.planfile import integrity_of

    step = sync_step(f"{world.good.host}/good:v1", f"{world.target.host}/unsized:v1")
    cfg = sync_config(tmp_path, [world.good, world.target], step, defaults=NO_DOCKER_CONFIG)
    plan_file = write_plan(cfg, tmp_path)
    body = orjson.loads(plan_file.read_bytes())
    blob = next(a for a in body["actions"] if a["kind"] == "blob")
    blob["size"] = -1
    body.pop("integrity")
    body["integrity"] = integrity_of(body)
    plan_file.write_bytes(orjson.dumps(body))
    result = regplan("apply", str(plan_file), cwd=tmp_path)
    assert_one_clean_error(result, blob["id"], "no size")
    assert tag_digests(world.target.host, "unsized") == {}
