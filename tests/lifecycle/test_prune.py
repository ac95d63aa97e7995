"""prune, pruneMax, minTags, latest, immutableTags through the real CLI, against real registries:
distribution 2.8 (delete by digest only; and with deletes disabled), the spec-following test
registry (tag delete) and OCI Layouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from regplan.plan import model
from tests.regplan_cli import Result, regplan, sync_config, sync_step
from tests.servers import tinyimage
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, FaultProxy
from tests.servers.ociregistry import OCIRegistry

pytestmark = pytest.mark.integration
_Server = RegistryServer | OCIRegistry | FaultProxy
SCHEMA = json.loads((Path(model.__file__).parent / "schema.json").read_text())


def config(
    tmp_path: Path,
    source: str,
    target: str,
    hosts: list[str],
    *,
    tags: str = '    tags:\n      allow: [".*"]\n',
    extra: str = "    prune: true\n",
) -> Path:
    step = sync_step(source, target, "repository") + tags + extra
    return sync_config(tmp_path, hosts, step, defaults={"skipDockerConfig": True})


def app_config(tmp_path: Path, source: _Server, target: _Server, **options: str) -> Path:
    """`config` for the repository `app` from `source` to `target`."""
    hosts = [source.host, target.host]
    return config(tmp_path, f"{source.host}/app", f"{target.host}/app", hosts, **options)


def synced_app_config(tmp_path: Path, source: _Server, target: _Server, **options: str) -> Path:
    """`app_config`, after a first `once` of it that must succeed."""
    cfg = app_config(tmp_path, source, target, **options)
    assert regplan("once", "-c", str(cfg)).code == 0
    return cfg


def plan(tmp_path: Path, cfg: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    out = tmp_path / "plan.json"
    out.unlink(missing_ok=True)
    result = regplan("plan", "-c", str(cfg), "-o", str(out), "--detailed-exitcode", *args)
    body = orjson.loads(out.read_bytes()) if out.exists() else {}
    if body:
        jsonschema.validate(body, SCHEMA)
    return result, body


def deletes(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in body["actions"] if a["kind"] == "delete"]


@pytest.fixture
def source() -> Any:
    with OCIRegistry() as server:
        yield server


def seed(server: Any, repo: str, names: list[str]) -> dict[str, str]:
    return {n: tinyimage.push(server, repo, [n], seed=n) for n in names}


def test_prune_after_a_source_tag_is_removed_spec_registry(
    tmp_path: Path, source: OCIRegistry
) -> None:
    with OCIRegistry() as target:
        digests = seed(source, "app", ["a", "b", "c"])
        cfg = synced_app_config(tmp_path, source, target)
        tinyimage.delete(source, "app", "b")
        result, body = plan(tmp_path, cfg)
        assert result.code == 2, str(result)
        assert [(a["target"], a["before"], a["delete_by"]) for a in deletes(body)] == [
            (f"{target.host}/app:b", digests["b"], "tag")
        ]
        assert body["format_version"] == "2.0" and body["summary"]["deletes"] == 1
        assert "- delete" in regplan("show", str(tmp_path / "plan.json")).stdout
        md = regplan("show", str(tmp_path / "plan.json"), "--format", "markdown").stdout
        assert md.split("\n")[2:4] == ["> [!WARNING]", "> 1 tag(s) will be **deleted**:"], md
        applied = regplan("apply", str(tmp_path / "plan.json"))
        assert applied.code == 0, str(applied)
        assert tinyimage.tags(target, "app") == ["a", "c"]
        again, _ = plan(tmp_path, cfg)
        assert again.code == 0, str(again)


def test_distribution_deletes_by_digest_unless_a_kept_tag_shares_it(
    tmp_path: Path, source: OCIRegistry, registry: RegistryServer
) -> None:
    shared = tinyimage.push(source, "app", ["keep", "gone-shared"], seed="shared")
    seed(source, "app", ["gone-alone"])
    cfg = synced_app_config(tmp_path, source, registry)
    tinyimage.delete(source, "app", "gone-shared")
    tinyimage.delete(source, "app", "gone-alone")
    result, body = plan(tmp_path, cfg, "--explain")
    assert result.code == 2, str(result)
    assert [(a["target"], a["delete_by"]) for a in deletes(body)] == [
        (f"{registry.host}/app:gone-alone", "digest")
    ]
    refused = [d for d in body["steps"][0]["pruning"] if d["decision"] == "refused"]
    assert refused and refused[0]["tag"] == f"{registry.host}/app:gone-shared"
    assert 'kept tag "keep" points at the same digest' in result.stdout
    assert regplan("apply", str(tmp_path / "plan.json")).code == 0
    assert tinyimage.tags(registry, "app") == ["gone-shared", "keep"]
    assert tinyimage.head(registry, "app", "keep") == shared


def test_a_registry_with_deletes_disabled_is_a_step_error_at_plan_time(
    tmp_path: Path, source: OCIRegistry, registry_factory: Any
) -> None:
    target = registry_factory(delete=False)
    seed(source, "app", ["a", "b"])
    cfg = synced_app_config(tmp_path, source, target)
    tinyimage.delete(source, "app", "b")
    result = regplan("plan", "-c", str(cfg))
    assert result.code == 1, str(result)
    line = f"cannot prune: registry {target.host} refuses deletes (405 UNSUPPORTED"
    assert line in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert tinyimage.tags(target, "app") == ["a", "b"]


def test_source_outage_prunes_nothing(tmp_path: Path, source: OCIRegistry) -> None:
    with OCIRegistry() as target, FaultProxy(source.host) as proxy:
        seed(source, "app", ["a", "b"])
        cfg = synced_app_config(tmp_path, proxy, target)
        proxy.add(Fault("status", path="/tags/list", times=-1, status=503))
        failed = regplan("once", "-c", str(cfg))
        assert failed.code == 1, str(failed)
        assert tinyimage.tags(target, "app") == ["a", "b"]
        proxy.clear()
        tinyimage.delete(source, "app", "a")
        tinyimage.delete(source, "app", "b")  # the source lists no tags at all
        empty = regplan("once", "-c", str(cfg))
        assert empty.code == 1, str(empty)
        assert "fewer than minTags 1: nothing is copied or pruned" in empty.stdout + empty.stderr
        assert tinyimage.tags(target, "app") == ["a", "b"]


def test_a_failing_copy_in_the_step_stops_its_deletes(tmp_path: Path, source: OCIRegistry) -> None:
    with OCIRegistry() as upstream, FaultProxy(upstream.host) as target:
        seed(source, "app", ["a", "b"])
        cfg = synced_app_config(tmp_path, source, target)
        tinyimage.delete(source, "app", "b")
        seed(source, "app", ["new"])
        result, body = plan(tmp_path, cfg)
        assert result.code == 2 and len(deletes(body)) == 1, str(result)
        target.add(Fault("status", method="PUT", path="/manifests/new", times=-1, status=500))
        applied = regplan("apply", str(tmp_path / "plan.json"))
        assert applied.code == 1, str(applied)
        assert tinyimage.tags(upstream, "app") == ["a", "b"]


def test_delete_cap_trips(tmp_path: Path, source: OCIRegistry) -> None:
    with OCIRegistry() as target:
        seed(source, "app", ["a", "b", "c"])
        cfg = synced_app_config(
            tmp_path, source, target, extra="    prune: true\n    pruneMax: 1\n"
        )
        tinyimage.delete(source, "app", "b")
        tinyimage.delete(source, "app", "c")
        result = regplan("plan", "-c", str(cfg))
        assert result.code == 1, str(result)
        assert (
            "would delete 2 tags, more than pruneMax 1: nothing is deleted "
            "(set pruneMax: 2 or higher to allow it)"
        ) in " ".join(result.stdout.split())
        assert regplan("once", "-c", str(cfg)).code == 1
        assert tinyimage.tags(target, "app") == ["a", "b", "c"]


def test_keep_latest_with_semver_and_other_tags(tmp_path: Path, source: OCIRegistry) -> None:
    with OCIRegistry() as target:
        seed(
            source,
            "app",
            ["1.0.0", "1.2.0", "1.10.0", "latest", "build-9", "build-10", "build-11"],
        )
        tags = (
            "    tagSets:\n"
            '      - semverRange: [">=1"]\n        latest: 2\n'
            '      - allow: ["build-.*"]\n        latest: 2\n'
        )
        cfg = app_config(tmp_path, source, target, tags=tags)
        result, body = plan(tmp_path, cfg, "--explain")
        assert result.code == 2, str(result)
        created = sorted(
            a["target"].rsplit(":", 1)[1] for a in body["actions"] if a["kind"] == "tag"
        )
        assert created == ["1.10.0", "1.2.0", "build-10", "build-11"]
        assert "set 1: not among the 2 latest" in result.stdout
        assert regplan("apply", str(tmp_path / "plan.json")).code == 0
        seed(source, "app", ["1.11.0"])  # a newer release pushes 1.2.0 out of the latest two
        result, body = plan(tmp_path, cfg)
        assert [a["target"].rsplit(":", 1)[1] for a in deletes(body)] == ["1.2.0"], str(result)
        assert regplan("apply", str(tmp_path / "plan.json")).code == 0
        assert tinyimage.tags(target, "app") == ["1.10.0", "1.11.0", "build-10", "build-11"]


def test_protected_digest_and_backup_tags_survive(tmp_path: Path, source: OCIRegistry) -> None:
    with OCIRegistry() as target:
        digests = seed(source, "app", ["a", "old"])
        extra = '    prune: true\n    pruneProtect: ["keep-.*"]\n    backup: "bak-{{.Ref.Tag}}"\n'
        cfg = synced_app_config(tmp_path, source, target, extra=extra)
        signature = "sha256-" + digests["a"].split(":")[1] + ".sig"
        orphan = "sha256-" + digests["old"].split(":")[1] + ".sig"
        tinyimage.push(target, "app", ["keep-me", "bak-a", signature], seed="extra")
        tinyimage.push(target, "app", [orphan], seed="signature of old")
        tinyimage.delete(source, "app", "old")
        result, body = plan(tmp_path, cfg, "--explain")
        assert result.code == 2, str(result)
        assert [a["target"] for a in deletes(body)] == [
            f"{target.host}/app:old",
            f"{target.host}/app:{orphan}",
        ]
        why = {d["tag"].split("/", 1)[1]: d["why"] for d in body["steps"][0]["pruning"]}
        assert why["app:keep-me"] == 'pruneProtect "keep-.*"'
        assert why["app:bak-a"] == "a backup tag of this step"
        assert why[f"app:{signature}"] == "digest tag of a kept image"
        assert why[f"app:{orphan}"] == "digest tag of a pruned image"
        assert "/app:old: delete (not in the step's filtered source set)" in result.stdout
        assert regplan("apply", str(tmp_path / "plan.json")).code == 0
        assert tinyimage.tags(target, "app") == sorted(["a", "bak-a", "keep-me", signature])


def test_a_tag_moved_between_plan_and_apply_is_not_deleted(
    tmp_path: Path, source: OCIRegistry
) -> None:
    with OCIRegistry() as target:
        seed(source, "app", ["a", "b"])
        cfg = synced_app_config(tmp_path, source, target)
        tinyimage.delete(source, "app", "b")
        result, _ = plan(tmp_path, cfg)
        assert result.code == 2, str(result)
        moved = tinyimage.push(target, "app", ["b"], seed="someone else's b")
        applied = regplan("apply", str(tmp_path / "plan.json"))
        assert applied.code == 1, str(applied)
        assert "saved plan is stale" in applied.stdout + applied.stderr
        assert tinyimage.head(target, "app", "b") == moved


def test_immutable_tag_with_a_changed_source_digest(tmp_path: Path, source: OCIRegistry) -> None:
    with OCIRegistry() as target:
        first = seed(source, "app", ["v1"])["v1"]
        cfg = synced_app_config(tmp_path, source, target, extra='    immutableTags: ["v.*"]\n')
        tinyimage.push(source, "app", ["v1"], seed="v1 rebuilt")
        result, body = plan(tmp_path, cfg)
        assert result.code == 0, str(result)  # no change: the overwrite is refused
        assert body["actions"] == []
        assert (
            f'{target.host}/app:v1: immutable tag (immutableTags "v.*"): not overwritten'
            in result.stdout
        )
        assert regplan("once", "-c", str(cfg)).code == 0
        assert tinyimage.head(target, "app", "v1") == first


def test_prune_in_an_oci_layout_removes_the_entry_and_gc_reclaims_blobs(
    tmp_path: Path, source: OCIRegistry
) -> None:
    seed(source, "app", ["a", "b"])
    layout = tmp_path / "layout"
    cfg = config(tmp_path, f"{source.host}/app", f"ocidir://{layout}", [source.host])
    assert regplan("once", "-c", str(cfg)).code == 0
    layer_b = json.loads(tinyimage.manifest_for("b"))["layers"][0]["digest"].split(":")[1]
    assert (layout / "blobs" / "sha256" / layer_b).exists()
    tinyimage.delete(source, "app", "b")
    result, body = plan(tmp_path, cfg)
    assert result.code == 2, str(result)
    assert [a["delete_by"] for a in deletes(body)] == ["tag"]
    assert regplan("apply", str(tmp_path / "plan.json")).code == 0
    index = json.loads((layout / "index.json").read_bytes())
    names = [
        m.get("annotations", {}).get("org.opencontainers.image.ref.name")
        for m in index["manifests"]
    ]
    assert names == ["a"]
    assert not (layout / "blobs" / "sha256" / layer_b).exists()


@pytest.mark.parametrize("same", [True, False])
def test_an_immutable_registry_refusing_a_tag_it_already_holds_is_success(
    tmp_path: Path, source: OCIRegistry, same: bool
) -> None:
    """Someone pushes the tag between plan and PUT; the registry refuses to overwrite it. Same
    digest: what the plan wanted is there. Another digest: the refusal is the error."""
    with OCIRegistry(immutable_tags=True) as upstream, FaultProxy(upstream.host) as target:
        wanted = seed(source, "app", ["v1"])["v1"]
        racer = "v1" if same else "someone else's v1"
        target.add(
            Fault(
                "hook",
                method="PUT",
                path="/manifests/v1",
                hook=lambda: tinyimage.push(upstream, "app", ["v1"], seed=racer) and None,
            )
        )
        cfg = app_config(tmp_path, source, target, extra="")
        result = regplan("once", "-c", str(cfg))
        if same:
            assert result.code == 0, str(result)
            assert tinyimage.head(upstream, "app", "v1") == wanted
        else:
            assert result.code == 1, str(result)
            assert "tag v1 is immutable" in result.stdout + result.stderr
            assert tinyimage.head(upstream, "app", "v1") != wanted
