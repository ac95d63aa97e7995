"""A tampered plan with a recomputed integrity digest cannot write outside its config's steps.

The integrity digest is no signature. These plans pass it, name the victim's config (path and
sha256), and aim at repositories and directories no step names: apply must refuse each before
any request, and the registry or directory must be untouched afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from regplan.plan.planfile import integrity_of
from tests.regplan_cli import REPO_ROOT, regplan, sync_config, sync_step, write_plan
from tests.servers.distribution import RegistryServer
from tests.servers.skopeo import plain_exists

pytestmark = pytest.mark.integration


def mirror_v1(
    directory: Path,
    src: RegistryServer,
    dst: RegistryServer,
    target: str,
    name: str = "regplan.yml",
) -> Path:
    """A config of one image step: `src`'s testrepo:v1 to `target` on `dst`."""
    step = sync_step(f"{src.host}/testrepo:v1", f"{dst.host}/{target}")
    return sync_config(directory, [src, dst], step, name=name)


def registry_step(
    directory: Path, src: RegistryServer, target: str, *servers: RegistryServer
) -> Path:
    """A config of one registry step: `src`'s testrepo:v1 only, under `target`."""
    step = sync_step(
        src.host, target, "registry", repos={"allow": ["testrepo"]}, tags={"allow": ["v1"]}
    )
    return sync_config(directory, [src, *servers], step)


def rewrite(plan_file: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the plan body and recompute its integrity, as docs/plan-format.md describes."""
    body = orjson.loads(plan_file.read_bytes())
    edit(body)
    body.pop("integrity", None)
    body["integrity"] = integrity_of(body)
    plan_file.write_bytes(orjson.dumps(body))


def replace_in_refs(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        for action in body["actions"]:
            for key in ("target", "source", "mount_from"):
                if key in action:
                    action[key] = action[key].replace(old, new)

    return edit


def test_plan_of_another_config_aimed_at_prod_is_refused_before_any_request(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    victim = mirror_v1(tmp_path, seeded_registry, registry, "mirror:v1", name="victim.yml")
    attacker_dir = tmp_path / "attacker"
    attacker_dir.mkdir()
    attacker = mirror_v1(attacker_dir, seeded_registry, registry, "prod/critical:v1")
    # planned in the attacker's directory, saved beside the victim's config
    plan_file = write_plan(attacker, attacker_dir, name=tmp_path / "plan.json")
    victim_digest = "sha256:" + hashlib.sha256(victim.read_bytes()).hexdigest()

    def as_victims(body: dict[str, Any]) -> None:
        body["config"] = {"path": str(victim), "digest": victim_digest}

    rewrite(plan_file, as_victims)
    registry.clear_requests()
    result = regplan("apply", str(plan_file), "-c", str(victim), cwd=tmp_path)
    assert result.code == 1, str(result)
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("regplan: error: plan action a")
    assert f"{registry.host}/prod/critical" in line and "sync[0]" in line
    assert "outside the step's target" in line and "Traceback" not in result.stderr
    assert registry.requests() == []  # refused before any request
    assert not plain_exists(registry, "prod/critical:v1")


def test_content_and_mounts_rewritten_to_another_repository_are_refused(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    """Only the blob and mount sources are moved: the tags still fit, the content does not."""
    config = mirror_v1(tmp_path, seeded_registry, registry, "mirror:v1")
    plan_file = write_plan(config, tmp_path)

    def steal(body: dict[str, Any]) -> None:
        for action in body["actions"]:
            if action["kind"] == "blob":
                action["source"] = action["source"].replace("/testrepo@", "/private/secret@")

    rewrite(plan_file, steal)
    seeded_registry.clear_requests()
    result = regplan("apply", str(plan_file), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert "private/secret is outside every repository the step reads" in result.stderr
    assert seeded_registry.requests() == []
    assert not plain_exists(registry, "mirror:v1")


@pytest.fixture
def example(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "fixtures" / "example", tmp_path / "fixtures" / "example")
    return tmp_path


def test_layout_path_escaping_with_dotdot_is_refused_and_nothing_is_written(
    example: Path,
) -> None:
    config = "fixtures/example/regplan.yml"
    assert regplan("plan", "-c", config, "-o", "plan.json", cwd=example).code == 0
    victim = example / "victim"
    (victim / "blobs" / "sha256").mkdir(parents=True)
    (victim / "blobs" / "sha256" / "keep").write_text("not regplan's")
    rewrite(
        example / "plan.json", replace_in_refs("demo-target/app", "demo-target/app/../../victim")
    )
    result = regplan("apply", "plan.json", cwd=example)
    assert result.code == 1, str(result)
    assert "../../victim is outside the step's target ocidir://demo-target/app" in result.stderr
    assert sorted(p.name for p in victim.rglob("*")) == ["blobs", "keep", "sha256"]
    assert not (example / "demo-target").exists()


def test_layout_path_through_a_symlink_out_of_the_prefix_is_refused(
    tmp_path: Path, seeded_registry: RegistryServer
) -> None:
    """A registry step may write any layout under its directory, but not through a symlink."""
    config = registry_step(tmp_path, seeded_registry, "ocidir://layouts")
    plan_file = write_plan(config, tmp_path)
    (tmp_path / "layouts").mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    os.symlink(victim, tmp_path / "layouts" / "evil")
    rewrite(plan_file, replace_in_refs("ocidir://layouts/testrepo", "ocidir://layouts/evil"))
    result = regplan("apply", str(plan_file), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert "ocidir://layouts/evil is outside the step's target ocidir://layouts" in result.stderr
    assert list(victim.iterdir()) == []
    # the untampered plan of the same config applies: the check does not refuse honest plans
    honest = write_plan(config, tmp_path, name="honest.json")
    applied = regplan("apply", str(honest), cwd=tmp_path)
    assert applied.code == 0, str(applied)
    assert (tmp_path / "layouts" / "testrepo" / "index.json").exists()


def test_registry_step_copies_each_repository_to_its_own_name_only(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    """Under a registry step the target prefix/X is filled from source X, for the X its repos
    filter keeps: not from another source repository, and not for a filtered-out one."""
    config = registry_step(tmp_path, seeded_registry, f"{registry.host}/mirror", registry)
    plan_file = write_plan(config, tmp_path)
    honest = plan_file.read_bytes()
    src = seeded_registry.host

    def sources_only(body: dict[str, Any]) -> None:
        for action in body["actions"]:
            for key in ("source", "mount_from"):
                if key in action:
                    action[key] = action[key].replace(f"{src}/testrepo", f"{src}/private")

    rewrite(plan_file, sources_only)
    other_source = regplan("apply", str(plan_file), cwd=tmp_path)
    assert other_source.code == 1, str(other_source)
    assert f"is filled from {src}/testrepo, not {src}/private" in other_source.stderr

    plan_file.write_bytes(honest)
    rewrite(plan_file, replace_in_refs("/testrepo", "/private"))
    filtered_out = regplan("apply", str(plan_file), cwd=tmp_path)
    assert filtered_out.code == 1, str(filtered_out)
    assert "repository 'private' is not selected by the step's repos filter" in filtered_out.stderr
    assert not plain_exists(registry, "mirror/testrepo:v1")
    assert not plain_exists(registry, "mirror/private:v1")
