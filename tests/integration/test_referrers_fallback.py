"""The referrers fallback tag on a registry without the referrers API (distribution 2.8): apply
writes it only as an action of the plan, with its `before` digest, stale-checked and shown.

The source is regclient's testrepo layout: `v2` has two referrers (an SBOM `a1` and a signature
`a2`), and `a1` is itself a tagged manifest whose `subject` is `v2`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pytest

from regplan.plan import planfile
from tests.regplan_cli import regplan, sync_config, sync_step, write_plan
from tests.servers import skopeo
from tests.servers.distribution import RegistryServer
from tests.servers.skopeo import PLAIN

pytestmark = pytest.mark.integration


REF_NAME = "org.opencontainers.image.ref.name"


@pytest.fixture
def layout(tmp_path: Path, regclient_testdata: Path) -> Path:
    path = tmp_path / "src"
    shutil.copytree(regclient_testdata / "testrepo", path, copy_function=shutil.copyfile)
    return path


def tagged(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    return next(m["digest"] for m in index["manifests"] if m["annotations"].get(REF_NAME) == tag)


def tags(registry: RegistryServer, repo: str) -> set[str]:
    return set(skopeo.list_tags(f"docker://{registry.host}/{repo}", server=PLAIN))


def listed(registry: RegistryServer, ref: str) -> list[str]:
    raw = skopeo.inspect_raw(f"docker://{registry.host}/{ref}", server=PLAIN)
    return [m["digest"] for m in json.loads(raw)["manifests"]]


def config(tmp_path: Path, layout: Path, registry: RegistryServer, extra: str) -> Path:
    step = sync_step(f"ocidir://{layout}:v2", f"{registry.host}/mirror:v2")
    return sync_config(tmp_path, [registry], step + extra)


def test_without_referrers_a_manifest_with_a_subject_gets_no_fallback_tag(
    tmp_path: Path, layout: Path, registry: RegistryServer
) -> None:
    cfg = sync_config(
        tmp_path, [registry], sync_step(f"ocidir://{layout}:a1", f"{registry.host}/plain:a1")
    )
    plan_file = write_plan(cfg, tmp_path)
    plan = planfile.decode(plan_file.read_bytes())
    assert [a.target for a in plan.actions if a.kind in ("tag", "digest-tag")] == [
        f"{registry.host}/plain:a1"
    ]
    applied = regplan("apply", str(plan_file), cwd=tmp_path)
    assert applied.code == 0, str(applied)
    assert tags(registry, "plain") == {"a1"}  # not sha256-<v2 hex>: no step asked for referrers


def test_fallback_tag_is_a_planned_stale_checked_action(
    tmp_path: Path, layout: Path, registry: RegistryServer
) -> None:
    v2, sbom, signature = tagged(layout, "v2"), tagged(layout, "a1"), tagged(layout, "a2")
    fallback = "sha256-" + v2.removeprefix("sha256:")
    only_sbom = "    referrers: true\n    referrerFilters:\n      - artifactType: application/example.sbom\n"
    first = tmp_path / "first.json"
    cfg = config(tmp_path, layout, registry, only_sbom)
    assert regplan("plan", "-c", str(cfg), "-o", str(first), cwd=tmp_path).code == 0
    plan = planfile.decode(first.read_bytes())
    [created] = [a for a in plan.actions if a.target.endswith(f":{fallback}")]
    assert (created.kind, created.reason, created.before, created.subject) == (
        "digest-tag",
        "create",
        None,
        v2,
    )
    assert regplan("apply", str(first), cwd=tmp_path).code == 0
    written = {a.target.rsplit(":", 1)[1] for a in plan.actions if a.kind in ("tag", "digest-tag")}
    assert tags(registry, "mirror") == written  # every tag on the target is one the plan listed
    assert listed(registry, f"mirror:{fallback}") == [sbom]
    before = skopeo.inspect_digest(f"docker://{registry.host}/mirror:{fallback}", server=PLAIN)

    # now every referrer: the existing fallback index is rewritten, and the plan says so
    cfg = config(tmp_path, layout, registry, "    referrers: true\n")
    second = tmp_path / "second.json"
    assert regplan("plan", "-c", str(cfg), "-o", str(second), cwd=tmp_path).code == 0
    [update] = [
        a
        for a in planfile.decode(second.read_bytes()).actions
        if a.subject == v2 and a.kind == "digest-tag"
    ]
    assert update.reason == "update" and update.before == before
    shown = regplan("show", str(second), cwd=tmp_path)
    row = next(line for line in shown.stdout.splitlines() if fallback[:20] in line)
    assert "digest-tag" in row and "referrers of" in row and "->" in row, shown.stdout
    markdown = regplan("show", str(second), "--format", "markdown", cwd=tmp_path).stdout
    assert f"mirror:{fallback}" in markdown

    # another writer rewrites the fallback tag after planning: the plan is stale
    skopeo.copy(
        f"docker://{registry.host}/mirror:v2",
        f"docker://{registry.host}/mirror:{fallback}",
        src_server=PLAIN,
        dest_server=PLAIN,
    )
    stale = regplan("apply", str(second), cwd=tmp_path)
    assert stale.code == 1 and "stale" in stale.stderr and fallback in stale.stderr, str(stale)

    # planned again from that state, it applies and lists both referrers
    third = tmp_path / "third.json"
    assert regplan("plan", "-c", str(cfg), "-o", str(third), cwd=tmp_path).code == 0
    assert regplan("apply", str(third), cwd=tmp_path).code == 0
    assert set(listed(registry, f"mirror:{fallback}")) >= {signature}
    again = regplan("plan", "-c", str(cfg), "--detailed-exitcode", cwd=tmp_path)
    assert again.code == 0, str(again)
    body = orjson.loads(third.read_bytes())
    assert body["format_version"] == "1.1"
