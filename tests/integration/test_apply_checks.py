"""What `apply PLAN` checks before it writes, through the CLI against real registries:
planning errors (--allow-partial), moved source tags (--refuse-source-drift), and which
config the plan was made from (recorded absolute)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from regplan.plan.planfile import integrity_of
from tests.regplan_cli import plain_creds, regplan, sync_config, sync_step, write_config, write_plan
from tests.servers import skopeo
from tests.servers.distribution import RegistryServer
from tests.servers.skopeo import PLAIN
from tests.servers.skopeo import plain_digest as digest
from tests.servers.skopeo import plain_exists as exists

pytestmark = pytest.mark.integration


def image_step(src: RegistryServer, source: str, dst: RegistryServer, target: str) -> str:
    return sync_step(f"{src.host}/{source}", f"{dst.host}/{target}")


def mirror_config(
    tmp_path: Path, src: RegistryServer, dst: RegistryServer, *pairs: tuple[str, str]
) -> Path:
    """One image step per (source ref, target ref) pair, `src` into `dst`."""
    steps = [image_step(src, source, dst, target) for source, target in pairs]
    return sync_config(tmp_path, [src, dst], *steps)


def test_a_plan_with_planning_errors_is_refused_unless_allow_partial(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = mirror_config(
        tmp_path,
        seeded_registry,
        registry,
        ("testrepo:v1", "mirror:v1"),
        ("no-such-repo:v1", "gone:v1"),
    )
    plan_file = tmp_path / "plan.json"
    planned = regplan("plan", "-c", str(config), "-o", str(plan_file), cwd=tmp_path)
    assert planned.code == 1, str(planned)  # the error is recorded in the plan file
    assert orjson.loads(plan_file.read_bytes())["summary"]["errors"] == 1
    registry.clear_requests()
    refused = regplan("apply", str(plan_file), cwd=tmp_path)
    assert refused.code == 1, str(refused)
    line = refused.stderr.strip().splitlines()[-1]
    assert "planning failed for part of this plan (1 error(s)" in line
    assert "no-such-repo" in line and "--allow-partial" in line
    assert registry.requests() == [] and not exists(registry, "mirror:v1")
    partial = regplan("apply", str(plan_file), "--allow-partial", cwd=tmp_path)
    assert partial.code == 1, str(partial)  # the rest is applied, the run is still a failure
    assert "Apply complete" in partial.stdout
    assert digest(registry, "mirror:v1") == digest(seeded_registry, "testrepo:v1")


def test_a_moved_source_tag_is_reported_and_refused_on_request(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = mirror_config(
        tmp_path,
        seeded_registry,
        registry,
        ("testrepo:v1", "mirror:v1"),
        ("testrepo:v3", "mirror:v3"),
    )
    plan_file = write_plan(config, tmp_path)
    reviewed = digest(seeded_registry, "testrepo:v1")
    skopeo.copy(
        f"docker://{seeded_registry.host}/testrepo:v2",
        f"docker://{seeded_registry.host}/testrepo:v1",
        src_server=PLAIN,
        dest_server=PLAIN,
    )
    moved = digest(seeded_registry, "testrepo:v1")
    assert moved != reviewed
    short = f"({reviewed[7:13]}… → {moved[7:13]}…)"

    registry.clear_requests()
    refused = regplan("apply", str(plan_file), "--refuse-source-drift", cwd=tmp_path)
    assert refused.code == 1, str(refused)
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("regplan: error: saved plan is stale: 1 source tag(s) moved")
    assert f"source {seeded_registry.host}/testrepo:v1 moved since planning {short}" in line
    assert registry.requests() == []

    applied = regplan("apply", str(plan_file), cwd=tmp_path)
    assert applied.code == 0, str(applied)
    warning = (
        f"source {seeded_registry.host}/testrepo:v1 moved since planning {short}; "
        "applying the reviewed digest"
    )
    assert applied.stderr.count(warning) == 1, str(applied)
    assert "testrepo:v3 moved" not in applied.stderr  # only the tag that moved
    assert digest(registry, "mirror:v1") == reviewed  # pinned: the reviewed digest landed


def test_the_plan_records_its_config_absolute_and_says_where_a_path_came_from(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    text = plain_creds(seeded_registry, registry) + "sync:\n"
    write_config(work, text + image_step(seeded_registry, "testrepo:v1", registry, "mirror:v1"))
    other = write_config(
        elsewhere, text + image_step(seeded_registry, "testrepo:v2", registry, "mirror:v1")
    )
    plan_file = tmp_path / "plan.json"
    made = regplan("plan", "-c", "regplan.yml", "-o", str(plan_file), cwd=work)
    assert made.code == 0, str(made)
    recorded = orjson.loads(plan_file.read_bytes())["config"]
    absolute = str((work / "regplan.yml").resolve())
    assert recorded["path"] == absolute and recorded["as_written"] == "regplan.yml"

    another = regplan("apply", str(plan_file), "-c", "regplan.yml", cwd=elsewhere)
    assert another.code == 1, str(another)
    assert (
        f"the plan was made from {absolute} (sha256:" in another.stderr
        and "the config given, regplan.yml, is another file" in another.stderr
    ), str(another)
    assert other.exists() and not exists(registry, "mirror:v1")

    (work / "regplan.yml").write_text((work / "regplan.yml").read_text() + "# edited\n")
    changed = regplan("apply", str(plan_file), cwd=elsewhere)
    assert changed.code == 1
    assert f"{absolute} was sha256:" in changed.stderr and "has changed since" in changed.stderr

    (work / "regplan.yml").unlink()
    missing = regplan("apply", str(plan_file), cwd=elsewhere)
    assert missing.code == 1
    assert (
        f"the plan was made from {absolute} (recorded in the plan), which does not exist here; "
        "pass the config with -c"
    ) in missing.stderr, str(missing)

    # a 1.0 plan recorded the path as written: the message says it is relative
    body = orjson.loads(plan_file.read_bytes())
    body["format_version"] = "1.0"
    body["config"] = {"path": "regplan.yml", "digest": body["config"]["digest"]}
    body.pop("integrity")
    body["integrity"] = integrity_of(body)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(body))
    (work / "regplan.yml").write_text(
        text + image_step(seeded_registry, "testrepo:v1", registry, "mirror:v1")
    )
    relative = regplan("apply", str(old), cwd=tmp_path)
    assert relative.code == 1
    assert (
        "made from regplan.yml (recorded in the plan, relative to where plan ran)"
        in relative.stderr
    )
    applied = regplan("apply", str(old), cwd=work)  # from where it was planned, it applies
    assert applied.code == 0, str(applied)
    assert digest(registry, "mirror:v1") == digest(seeded_registry, "testrepo:v1")
