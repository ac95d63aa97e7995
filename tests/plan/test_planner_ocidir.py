"""The planner on OCI Layouts (regclient's testrepo): one test per config feature, each asserting
the exact set of planned actions; plus apply round trips, determinism and conflicts."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from regplan.apply.applier import ApplyOptions, apply_plan
from regplan.config.model import Config, Defaults, RateLimit, ReferrerFilter, SyncStep, TagFilter
from regplan.errors import PlanConflictError
from regplan.oci import mediatypes as mt
from regplan.plan import model, planfile
from regplan.plan.model import Plan
from regplan.plan.planner import PlanOptions, make_plan
from regplan.registry.client import RegistryClient

SCHEMA = json.loads((Path(model.__file__).parent / "schema.json").read_text())


def tags_of(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
    }


def blob_json(layout: Path, digest: str) -> dict:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())


def config(*steps: SyncStep) -> Config:
    return Config(
        path="test.yml",
        digest="sha256:" + "0" * 64,
        version=1,
        creds=(),
        defaults=Defaults(),
        sync=tuple(steps),
    )


def step(index: int, source: str, target: str, type_: str = "image", **kw: object) -> SyncStep:
    return SyncStep(index=index, line=index + 1, source=source, target=target, type=type_, **kw)  # type: ignore[arg-type]


def plan_of(cfg: Config, **options: object) -> Plan:
    plan = make_plan(cfg, RegistryClient(), PlanOptions(**options))  # type: ignore[arg-type]
    jsonschema.validate(orjson.loads(planfile.encode(plan)), SCHEMA)
    return plan


def copy_image(source: str, target: str) -> None:
    """Put `source` at `target` (setup: a target that already holds something)."""
    client = RegistryClient()
    assert apply_plan(make_plan(config(step(0, source, target)), client), client).ok


def kinds(plan: Plan) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in plan.actions:
        out[a.kind] = out.get(a.kind, 0) + 1
    return out


def targets(plan: Plan, kind: str) -> set[str]:
    return {a.target for a in plan.actions if a.kind == kind}


@pytest.fixture
def src(ocidir_copy: Path) -> Path:
    return ocidir_copy / "testrepo"


def test_image_cold_plans_every_blob_child_and_the_tag(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    plan = plan_of(config(step(0, f"ocidir://{src}:v1", f"ocidir://{dst}:v1")))
    v1 = tags_of(src)["v1"]
    children = [m["digest"] for m in blob_json(src, v1)["manifests"]]
    assert targets(plan, model.TAG) == {f"ocidir://{dst}:v1"}
    assert {a.digest for a in plan.actions if a.kind == model.MANIFEST} == set(children)
    blobs = set()
    for child in children:
        body = blob_json(src, child)
        blobs |= {body["config"]["digest"], *(layer["digest"] for layer in body["layers"])}
    assert {a.digest for a in plan.actions if a.kind == model.BLOB} == blobs
    tag = next(a for a in plan.actions if a.kind == model.TAG)
    assert tag.reason == model.CREATE and tag.before is None and tag.digest == v1
    assert tag.source.endswith("@" + v1)
    # every action the tag needs comes before it
    position = {a.id: i for i, a in enumerate(plan.actions)}
    assert all(position[d] < position[tag.id] for d in tag.depends_on)
    assert set(tag.depends_on) == {a.id for a in plan.actions if a.kind == model.MANIFEST}


def test_repository_tag_filter_plans_exactly_the_selected_tags(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    plan = plan_of(
        config(
            step(
                0,
                f"ocidir://{src}",
                f"ocidir://{dst}",
                "repository",
                tags=TagFilter(allow=("v.*",), deny=("v2",)),
            )
        )
    )
    assert targets(plan, model.TAG) == {f"ocidir://{dst}:v1", f"ocidir://{dst}:v3"}


def test_missing_mode_skips_tags_present_on_target(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    copy_image(f"ocidir://{src}:v2", f"ocidir://{dst}:v1")
    cfg = config(
        step(
            0,
            f"ocidir://{src}",
            f"ocidir://{dst}",
            "repository",
            tags=TagFilter(allow=("v1", "v3")),
        )
    )
    plan = plan_of(cfg, missing=True)
    assert targets(plan, model.TAG) == {f"ocidir://{dst}:v3"}
    assert plan.steps[0].skipped[0]["ref"] == f"ocidir://{dst}:v1"
    full = plan_of(cfg)
    assert targets(full, model.TAG) == {f"ocidir://{dst}:v1", f"ocidir://{dst}:v3"}


def test_single_platform_points_the_tag_at_the_child(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    plan = plan_of(
        config(step(0, f"ocidir://{src}:v2", f"ocidir://{dst}:v2", platform="linux/arm64"))
    )
    v2 = blob_json(src, tags_of(src)["v2"])
    arm64 = next(m for m in v2["manifests"] if m["platform"]["architecture"] == "arm64")
    tag = next(a for a in plan.actions if a.kind == model.TAG)
    assert tag.digest == arm64["digest"]
    assert tag.media_type == mt.OCI_MANIFEST
    assert kinds(plan).get(model.MANIFEST, 0) == 0


def test_platforms_list_pushes_an_index_of_only_the_copied_platforms(
    src: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    plan = plan_of(
        config(
            step(
                0,
                f"ocidir://{src}:v2",
                f"ocidir://{dst}:v2",
                platforms=("linux/amd64", "linux/arm64"),
            )
        )
    )
    tag = next(a for a in plan.actions if a.kind == model.TAG)
    source_index = tags_of(src)["v2"]
    assert tag.digest != source_index  # a new index: regsync would push the original (issue #836)
    pushed = json.loads(tag.manifest or b"{}")
    assert sorted(m["platform"]["architecture"] for m in pushed["manifests"]) == ["amd64", "arm64"]
    assert {a.digest for a in plan.actions if a.kind == model.MANIFEST} == {
        m["digest"] for m in pushed["manifests"]
    }
    client = RegistryClient()
    assert apply_plan(plan, client).ok
    assert tags_of(dst)["v2"] == tag.digest
    assert not plan_of(
        config(
            step(
                0,
                f"ocidir://{src}:v2",
                f"ocidir://{dst}:v2",
                platforms=("linux/amd64", "linux/arm64"),
            )
        )
    ).has_changes


def test_media_types_filter_skips_other_types(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    plan = plan_of(
        config(step(0, f"ocidir://{src}:v1", f"ocidir://{dst}:v1", media_types=(mt.OCI_MANIFEST,)))
    )
    assert not plan.has_changes
    assert "unsupported media type" in plan.steps[0].skipped[0]["why"]


def test_referrers_with_filter(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    plan = plan_of(
        config(
            step(
                0,
                f"ocidir://{src}:v2",
                f"ocidir://{dst}:v2",
                referrers=True,
                referrer_filters=(ReferrerFilter(artifact_type="application/example.sbom"),),
            )
        )
    )
    tags = tags_of(src)
    assert {a.digest for a in plan.actions if a.kind == model.REFERRER} == {tags["a1"]}
    referrer = next(a for a in plan.actions if a.kind == model.REFERRER)
    assert referrer.subject == tags["v2"]
    client = RegistryClient()
    assert apply_plan(plan, client).ok
    assert f"sha256-{tags['v2'].split(':')[1]}" in tags_of(dst)  # fallback tag maintained
    assert not plan_of(
        config(
            step(
                0,
                f"ocidir://{src}:v2",
                f"ocidir://{dst}:v2",
                referrers=True,
                referrer_filters=(ReferrerFilter(artifact_type="application/example.sbom"),),
            )
        )
    ).has_changes


def test_all_referrers_including_children_and_external_source(
    ocidir_copy: Path, tmp_path: Path
) -> None:
    src = ocidir_copy / "testrepo"
    ext = ocidir_copy / "external"
    dst, side = tmp_path / "dst", tmp_path / "side"
    plan = plan_of(config(step(0, f"ocidir://{src}:v2", f"ocidir://{dst}:v2", referrers=True)))
    tags = tags_of(src)
    wanted = {tags["a1"], tags["a2"]}  # plus one arms artifact per platform child
    got = {a.digest for a in plan.actions if a.kind == model.REFERRER}
    assert wanted <= got and len(got) == 5
    plan = plan_of(
        config(
            step(
                0,
                f"ocidir://{src}:v2",
                f"ocidir://{dst}:v2",
                referrers=True,
                referrer_source=f"ocidir://{ext}",
                referrer_target=f"ocidir://{side}",
            )
        )
    )
    referrers = [a for a in plan.actions if a.kind == model.REFERRER]
    assert {a.digest for a in referrers} == {tags_of(ext)["a3"], tags_of(ext)["a4"]}
    assert all(a.target.startswith(f"ocidir://{side}@") for a in referrers)


def test_digest_tags_are_planned_and_applied(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    tags = tags_of(src)
    plan = plan_of(config(step(0, f"ocidir://{src}:v1", f"ocidir://{dst}:v1", digest_tags=True)))
    meta = f"sha256-{tags['v1'].split(':')[1]}.{tags['v3'].split(':')[1][:16]}.meta"
    # the attestation child of v1 has a `sha256-<hex>` tag too; without `referrers` regsync
    # copies it as a digest tag, and so do we
    child = next(
        m["digest"]
        for m in blob_json(src, tags["v1"])["manifests"]
        if f"sha256-{m['digest'][7:]}" in tags
    )
    assert targets(plan, model.DIGEST_TAG) == {
        f"ocidir://{dst}:{meta}",
        f"ocidir://{dst}:sha256-{child[7:]}",
    }
    assert apply_plan(plan, RegistryClient()).ok
    assert tags_of(dst)[meta] == tags["v3"]


def test_fast_copy_skips_referrers_of_a_matching_tag_and_force_recursive_refreshes(
    src: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    copy_image(f"ocidir://{src}:v2", f"ocidir://{dst}:v2")
    fast = plan_of(
        config(step(0, f"ocidir://{src}:v2", f"ocidir://{dst}:v2", referrers=True, fast_copy=True))
    )
    assert not fast.has_changes
    slow = plan_of(config(step(0, f"ocidir://{src}:v2", f"ocidir://{dst}:v2", referrers=True)))
    assert kinds(slow)[model.REFERRER] == 5 and model.TAG not in kinds(slow)
    forced = plan_of(
        config(step(0, f"ocidir://{src}:v2", f"ocidir://{dst}:v2", force_recursive=True))
    )
    tag = next(a for a in forced.actions if a.kind == model.TAG)
    assert tag.reason == model.REFRESH
    assert kinds(forced)[model.MANIFEST] == 3  # children re-pushed; blobs present are not re-sent
    assert model.BLOB not in kinds(forced)


def test_backup_is_planned_before_an_overwrite(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    tags = tags_of(src)
    copy_image(f"ocidir://{src}:v2", f"ocidir://{dst}:latest")
    plan = plan_of(
        config(step(0, f"ocidir://{src}:v3", f"ocidir://{dst}:latest", backup="old-{{.Ref.Tag}}"))
    )
    backup = next(a for a in plan.actions if a.kind == model.BACKUP)
    tag = next(a for a in plan.actions if a.kind == model.TAG)
    assert backup.target == f"ocidir://{dst}:old-latest" and backup.digest == tags["v2"]
    assert tag.reason == model.UPDATE and tag.before == tags["v2"]
    assert backup.id in tag.depends_on
    assert apply_plan(plan, RegistryClient()).ok
    now = tags_of(dst)
    assert now["latest"] == tags["v3"] and now["old-latest"] == tags["v2"]


def test_missing_mode_never_backs_up(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    copy_image(f"ocidir://{src}:v2", f"ocidir://{dst}:latest")
    plan = plan_of(
        config(step(0, f"ocidir://{src}:v3", f"ocidir://{dst}:latest", backup="old")), missing=True
    )
    assert not plan.has_changes


def test_plans_are_deterministic_but_for_the_time(src: Path, tmp_path: Path) -> None:
    cfg = config(
        step(
            0,
            f"ocidir://{src}",
            f"ocidir://{tmp_path / 'a'}",
            "repository",
            tags=TagFilter(allow=("v.*", "a.*")),
        ),
        step(
            1,
            f"ocidir://{src}:v2",
            f"ocidir://{tmp_path / 'b'}:v2",
            referrers=True,
            digest_tags=True,
        ),
    )
    first = planfile.encode(plan_of(cfg).without_time())
    for _ in range(3):
        assert planfile.encode(plan_of(cfg).without_time()) == first


def test_identical_content_is_one_node(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    cfg = config(
        step(0, f"ocidir://{src}:v1", f"ocidir://{dst}:one"),
        step(1, f"ocidir://{src}:v1", f"ocidir://{dst}:two"),
    )
    plan = plan_of(cfg)
    blobs = [a.digest for a in plan.actions if a.kind == model.BLOB]
    assert len(blobs) == len(set(blobs))
    shared = [a for a in plan.actions if a.kind == model.MANIFEST]
    assert len(shared) == len(blob_json(src, tags_of(src)["v1"])["manifests"])
    assert all(a.steps == (0, 1) for a in shared)  # wanted by both steps, planned once


def test_two_steps_wanting_one_tag_at_different_digests_is_a_conflict(
    src: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    cfg = config(
        step(0, f"ocidir://{src}:v1", f"ocidir://{dst}:x"),
        step(1, f"ocidir://{src}:v2", f"ocidir://{dst}:x"),
    )
    with pytest.raises(PlanConflictError, match="want different digests"):
        plan_of(cfg)


def test_no_op_plan_and_already_applied_apply(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    cfg = config(
        step(0, f"ocidir://{src}", f"ocidir://{dst}", "repository", tags=TagFilter(allow=("v.*",)))
    )
    client = RegistryClient()
    plan = make_plan(cfg, client)
    result = apply_plan(plan, client, ApplyOptions(parallel=2))
    assert result.ok and result.summary().images == 3
    again = apply_plan(plan, client)
    assert again.ok and again.already_done
    assert not plan_of(cfg).has_changes


def test_rate_limit_settings_do_not_block_sources_without_headers(
    src: Path, tmp_path: Path
) -> None:
    cfg = config(
        step(
            0,
            f"ocidir://{src}:v1",
            f"ocidir://{tmp_path / 'd'}:v1",
            ratelimit=RateLimit(min=100, retry=300),
        )
    )
    client = RegistryClient()
    plan = make_plan(cfg, client)
    result = apply_plan(plan, client, ApplyOptions(ratelimits={0: cfg.sync[0].ratelimit}))
    assert result.ok


def test_jobs_between_layouts_are_planned_and_applied_on_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a layout has no latency to hide: many planning threads only hand the GIL to
    each other at every file read. Each job between two layouts is planned on the one
    thread of its own lane, and the plan is the same as before."""
    import threading

    from regplan.registry.ocidir.backend import OCIDirBackend
    from tests.concurrency import layouts

    source = tmp_path / "source"
    layouts.make_source(source, [f"t{i}" for i in range(12)], layer_size=64)
    threads: set[str] = set()
    original = OCIDirBackend.manifest_get

    def recorded(self: OCIDirBackend, ref: object) -> object:
        threads.add(threading.current_thread().name)
        return original(self, ref)  # type: ignore[arg-type]

    monkeypatch.setattr(OCIDirBackend, "manifest_get", recorded)
    steps = [
        step(0, f"ocidir://{source}", f"ocidir://{tmp_path / 'a'}", "repository"),
        step(1, f"ocidir://{source}", f"ocidir://{tmp_path / 'b'}", "repository"),
    ]
    plan = plan_of(config(*steps))
    assert len([a for a in plan.actions if a.kind == model.Kind.TAG]) == 24
    assert threads == {"plan-layout_0"}

    # and the plan is applied on the applying thread itself, with no worker pool
    threads.clear()
    original_put = OCIDirBackend.manifest_put

    def put_recorded(self: OCIDirBackend, ref: object, manifest: object) -> bool:
        threads.add(threading.current_thread().name)
        return original_put(self, ref, manifest)  # type: ignore[arg-type]

    monkeypatch.setattr(OCIDirBackend, "manifest_put", put_recorded)
    client = RegistryClient()
    assert apply_plan(plan, client, ApplyOptions(parallel=4)).ok
    assert threads == {threading.current_thread().name}
    assert tags_of(tmp_path / "b") == tags_of(source)
