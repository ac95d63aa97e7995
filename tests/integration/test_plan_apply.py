"""plan / show / apply / once / check through the real CLI against real registries.

Request counts come from the registries' own access logs; registry state is checked with skopeo.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import jsonschema
import orjson
import pytest

from regplan.plan import model, planfile
from tests.regplan_cli import plain_creds, regplan, sync_config, sync_step, write_config, write_plan
from tests.servers import skopeo
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, fault_proxy
from tests.servers.ociregistry import OCIRegistry
from tests.servers.skopeo import PLAIN
from tests.servers.skopeo import plain_digest as digest
from tests.servers.skopeo import plain_exists as exists

pytestmark = pytest.mark.integration
SCHEMA = json.loads((Path(model.__file__).parent / "schema.json").read_text())
TESTREPO_TAGS = ["v1", "v2", "v3", "a1", "a2", "a3", "b1", "b2", "b3"]


def repo_config(
    tmp_path: Path,
    src: RegistryServer,
    dst: RegistryServer,
    tags: list[str],
    *,
    name: str = "regplan.yml",
    extra: str = "",
    target_repo: str = "mirror",
) -> Path:
    step = sync_step(f"{src.host}/testrepo", f"{dst.host}/{target_repo}", "repository")
    return sync_config(
        tmp_path,
        [src, dst],
        step + f"    tags:\n      allow: {json.dumps(tags)}\n{extra}",
        defaults={"parallel": 2, "skipDockerConfig": True},
        name=name,
    )


def test_no_op_plan_costs_two_manifest_heads_per_tag_and_one_tag_list(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = repo_config(tmp_path, seeded_registry, registry, TESTREPO_TAGS)
    assert regplan("once", "-c", str(config), cwd=tmp_path).code == 0
    seeded_registry.clear_requests()
    registry.clear_requests()
    result = regplan("plan", "-c", str(config), "--detailed-exitcode", cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "No changes" in result.stdout
    source = Counter((r.method, r.kind) for r in seeded_registry.requests())
    target = Counter((r.method, r.kind) for r in registry.requests())
    assert source == Counter({("HEAD", "manifest"): len(TESTREPO_TAGS), ("GET", "tags"): 1}), source
    assert target == Counter({("HEAD", "manifest"): len(TESTREPO_TAGS)}), target


def image_config(
    tmp_path: Path, src: str, dst: str, tags: list[str], *, name: str = "regplan.yml"
) -> Path:
    """An image step per tag from `src`/testrepo into `dst`/mirror (a generated mirror config)."""
    steps = [sync_step(f"{src}/testrepo:{t}", f"{dst}/mirror:{t}") for t in tags]
    defaults = {"parallel": 2, "skipDockerConfig": True}
    return sync_config(tmp_path, [src, dst], *steps, defaults=defaults, name=name)


def test_missing_mode_lists_a_shared_target_once_instead_of_a_head_per_image_step(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    # A generated mirror config has an image step per tag, many into each target repository.
    # With --missing only the names of the target's tags matter: one tag list answers them
    # all, where a HEAD per step cost the target thousands of requests in a no-op run.
    have = TESTREPO_TAGS[:6]
    src, dst = seeded_registry.host, registry.host
    some = image_config(tmp_path, src, dst, have, name="some.yml")
    assert regplan("once", "-c", str(some), cwd=tmp_path).code == 0
    # a tag the target holds at another digest is left alone in missing mode, as by regsync
    skopeo.copy(
        f"docker://{seeded_registry.host}/testrepo:b3",
        f"docker://{registry.host}/mirror:v1",
        src_server=PLAIN,
        dest_server=PLAIN,
    )
    config = image_config(tmp_path, src, dst, TESTREPO_TAGS)
    seeded_registry.clear_requests()
    registry.clear_requests()
    result = regplan("once", "-c", str(config), "--missing", cwd=tmp_path)
    assert result.code == 0, str(result)
    target_reads = Counter(
        (r.method, r.kind)
        for r in registry.requests()
        if r.method in ("GET", "HEAD") and r.kind in ("tags", "manifest")
    )
    missing = TESTREPO_TAGS[6:]
    # one tag list, then only what copying the three missing tags needs (no HEAD of any tag
    # the target has)
    assert target_reads[("GET", "tags")] == 1, target_reads
    asked = {
        r.reference for r in registry.requests() if r.kind == "manifest" and r.method == "HEAD"
    }
    assert not asked & set(have), asked
    # the source is still asked about every tag: a source that is gone is still an error
    source_heads = Counter(
        r.reference
        for r in seeded_registry.requests()
        if (r.method, r.kind) == ("HEAD", "manifest")
    )
    assert set(TESTREPO_TAGS) <= set(source_heads), source_heads
    for tag in missing:
        assert digest(registry, f"mirror:{tag}") == digest(seeded_registry, f"testrepo:{tag}")
    assert digest(registry, "mirror:v1") == digest(seeded_registry, "testrepo:b3")
    plan = regplan("plan", "-c", str(config), "--missing", "--format", "json", cwd=tmp_path)
    assert plan.code == 0, str(plan)
    body = orjson.loads(plan.stdout)
    assert body["actions"] == []
    skipped = [s for step in body["steps"] for s in step["skipped"]]
    assert len(skipped) == len(TESTREPO_TAGS), skipped
    assert {s["why"] for s in skipped} == {"exists on target (missing mode)"}


def test_missing_mode_asks_tag_by_tag_where_the_target_refuses_its_tag_list(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    have, tags = ["v1", "v2"], ["v1", "v2", "v3"]
    with fault_proxy(registry.host) as proxy:
        proxy.add(Fault("status", path=r"/tags/list", status=403, times=-1, message="denied"))
        target = proxy.host
        some = image_config(tmp_path, seeded_registry.host, target, have, name="some.yml")
        first = regplan("once", "-c", str(some), cwd=tmp_path)
        assert first.code == 0, first.stderr
        config = image_config(tmp_path, seeded_registry.host, target, tags)
        before = len(proxy.requests())
        result = regplan("once", "-c", str(config), "--missing", cwd=tmp_path)
        assert result.code == 0, str(result)
        sent = proxy.requests()[before:]
    heads = {
        s.path.rsplit("/", 1)[-1] for s in sent if s.method == "HEAD" and "/manifests/" in s.path
    }
    assert set(tags) <= heads, heads
    assert digest(registry, "mirror:v3") == digest(seeded_registry, "testrepo:v3")


def test_missing_mode_still_fails_an_image_step_whose_source_is_gone(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    src, dst = seeded_registry.host, registry.host
    config = image_config(tmp_path, src, dst, ["v1", "v2", "gone"])
    skopeo.copy(
        f"docker://{seeded_registry.host}/testrepo:v1",
        f"docker://{registry.host}/mirror:gone",
        src_server=PLAIN,
        dest_server=PLAIN,
    )
    result = regplan("once", "-c", str(config), "--missing", cwd=tmp_path)
    assert result.code == 1, str(result)
    assert f"{seeded_registry.host}/testrepo:gone" in result.stderr and "not found" in result.stderr
    assert digest(registry, "mirror:v2") == digest(seeded_registry, "testrepo:v2")


def test_detailed_exitcode_and_empty_plan_file(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = repo_config(tmp_path, seeded_registry, registry, ["v1", "v2"])
    plan_file = tmp_path / "plan.json"
    changed = regplan(
        "plan", "-c", str(config), "-o", str(plan_file), "--detailed-exitcode", cwd=tmp_path
    )
    assert changed.code == 2, str(changed)
    body = orjson.loads(plan_file.read_bytes())
    jsonschema.validate(body, SCHEMA)
    assert body["has_changes"] and body["summary"]["tags_create"] == 2
    assert regplan("apply", str(plan_file), cwd=tmp_path).code == 0
    empty = tmp_path / "empty.json"
    none = regplan("plan", "-c", str(config), "-o", str(empty), "--detailed-exitcode", cwd=tmp_path)
    assert none.code == 0, str(none)
    assert orjson.loads(empty.read_bytes())["has_changes"] is False  # written even when empty
    broken = sync_config(
        tmp_path,
        [registry],
        sync_step(f"{registry.host}/nothing:here", f"{registry.host}/x:y"),
        name="broken.yml",
    )
    failed = regplan("plan", "-c", str(broken), "--detailed-exitcode", cwd=tmp_path)
    assert failed.code == 1 and "not found" in failed.stdout + failed.stderr


def test_plans_of_the_same_state_are_identical_but_for_the_time(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = repo_config(
        tmp_path,
        seeded_registry,
        registry,
        ["v1", "v2", "v3"],
        extra="    referrers: true\n    digestTags: true\n",
    )
    outputs = []
    for name in ("one.json", "two.json"):
        assert (
            regplan("plan", "-c", str(config), "-o", str(tmp_path / name), cwd=tmp_path).code == 0
        )
        body = orjson.loads((tmp_path / name).read_bytes())
        body.pop("created_at")
        body.pop("integrity")
        outputs.append(body)
    assert outputs[0] == outputs[1]


def test_markdown_warns_about_overwrites_and_names_the_backup(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    h, t = seeded_registry.host, registry.host
    first = sync_config(
        tmp_path,
        [seeded_registry, registry],
        sync_step(f"{h}/testrepo:v1", f"{t}/app:latest"),
        name="first.yml",
    )
    assert regplan("once", "-c", str(first), cwd=tmp_path).code == 0
    second = sync_config(
        tmp_path,
        [seeded_registry, registry],
        sync_step(f"{h}/testrepo:v2", f"{t}/app:latest", backup="bkup-{{.Ref.Tag}}"),
        name="second.yml",
    )
    result = regplan("plan", "-c", str(second), "--format", "markdown", cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "> [!WARNING]" in result.stdout and "overwritten" in result.stdout
    assert (
        f"`{t}/app:latest`" in result.stdout and f"backup: `{t}/app:bkup-latest`" in result.stdout
    )
    assert "<details>" in result.stdout
    assert not result.stderr.count("Traceback")


def test_explain_names_the_rule_that_dropped_each_tag(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = sync_config(
        tmp_path,
        [seeded_registry, registry],
        sync_step(
            f"{seeded_registry.host}/testrepo",
            f"{registry.host}/m",
            "repository",
            tags={"semverRange": [">=v2"], "deny": ["v3"]},
        ),
    )
    result = regplan("plan", "-c", str(config), "--explain", cwd=tmp_path)
    assert result.code == 0, str(result)
    out = result.stdout
    assert f"{seeded_registry.host}/testrepo:v3: " in out and "denied by" in out
    assert f"{seeded_registry.host}/testrepo:v1: " in out and "semverRange" in out
    assert f"{registry.host}/m:v2" in out


def test_apply_refuses_a_stale_plan_and_writes_nothing(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = repo_config(tmp_path, seeded_registry, registry, ["v1", "v2", "v3"])
    plan_file = write_plan(config, tmp_path)
    # someone else moves one target tag between plan and apply
    skopeo.copy(
        f"docker://{seeded_registry.host}/testrepo:b1",
        f"docker://{registry.host}/mirror:v2",
        src_server=PLAIN,
        dest_server=PLAIN,
    )
    registry.clear_requests()
    result = regplan("apply", str(plan_file), cwd=tmp_path)
    assert result.code == 1
    assert "stale" in result.stderr and f"{registry.host}/mirror:v2" in result.stderr
    writes = [r for r in registry.requests() if r.method not in ("GET", "HEAD")]
    assert writes == []
    assert not exists(registry, "mirror:v1") and not exists(registry, "mirror:v3")
    keep_going = regplan("apply", str(plan_file), "--keep-going", cwd=tmp_path)
    assert keep_going.code == 1 and "stale" in keep_going.stderr  # --keep-going does not bypass it


def test_apply_refuses_a_plan_for_a_different_config(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = repo_config(tmp_path, seeded_registry, registry, ["v1"])
    plan_file = write_plan(config, tmp_path)
    config.write_text(config.read_text() + "# changed\n")
    result = regplan("apply", str(plan_file), cwd=tmp_path)
    assert result.code == 1 and "different config" in result.stderr
    assert not exists(registry, "mirror:v1")


def test_apply_twice_is_a_fast_no_op_that_says_so(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = repo_config(tmp_path, seeded_registry, registry, ["v1", "v2", "v3"])
    plan_file = write_plan(config, tmp_path)
    report = tmp_path / "report.json"
    first = regplan("apply", str(plan_file), "--report", str(report), cwd=tmp_path)
    assert first.code == 0, str(first)
    body = orjson.loads(report.read_bytes())
    assert body["ok"] and body["summary"]["images"] == 3
    assert {a["status"] for a in body["actions"]} == {"done"}
    for tag in ("v1", "v2", "v3"):
        assert digest(registry, f"mirror:{tag}") == digest(seeded_registry, f"testrepo:{tag}")
    registry.clear_requests()
    again = regplan("apply", str(plan_file), cwd=tmp_path)
    assert again.code == 0 and "already applied" in again.stdout
    assert all(r.method in ("GET", "HEAD") for r in registry.requests())


def test_apply_without_a_plan_refuses_off_a_terminal_unless_auto_approved(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = repo_config(tmp_path, seeded_registry, registry, ["v1"])
    refused = regplan("apply", "-c", str(config), cwd=tmp_path, stdin="yes\n")
    assert refused.code == 1 and "--auto-approve" in refused.stderr
    assert not exists(registry, "mirror:v1")
    approved = regplan("apply", "-c", str(config), "--auto-approve", cwd=tmp_path)
    assert approved.code == 0, str(approved)
    assert exists(registry, "mirror:v1")


def test_check_reports_and_writes_nothing(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = repo_config(tmp_path, seeded_registry, registry, ["v1", "v2"])
    result = regplan("check", "-c", str(config), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert result.stderr.count("Image sync needed") == 2
    assert "2 of 2 image(s) need syncing" in result.stdout
    assert all(r.method in ("GET", "HEAD") for r in registry.requests())


def test_a_failed_image_fails_its_tag_not_the_others(
    tmp_path: Path, regclient_testdata: Path, registry: RegistryServer
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    for layout in (good, bad):
        shutil.copytree(regclient_testdata / "testrepo", layout, copy_function=shutil.copyfile)
    index = orjson.loads((bad / "index.json").read_bytes())
    a1 = next(
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "a1"
    )
    layer = orjson.loads((bad / "blobs" / "sha256" / a1["digest"][7:]).read_bytes())["layers"][0][
        "digest"
    ]
    blob = bad / "blobs" / "sha256" / layer[7:]
    blob.chmod(0o644)
    blob.write_bytes(b"X" * blob.stat().st_size)  # same size, wrong content: a lying store
    t = registry.host
    config = sync_config(
        tmp_path,
        [registry],
        sync_step(f"ocidir://{bad}:a1", f"{t}/bad:a1"),
        sync_step(f"ocidir://{good}:a2", f"{t}/good:a2"),
        defaults={"parallel": 1},
    )
    plan_file = write_plan(config, tmp_path)
    result = regplan(
        "apply", str(plan_file), "--keep-going", "--report", str(tmp_path / "r.json"), cwd=tmp_path
    )
    assert result.code == 1
    assert "digest" in result.stderr
    assert not exists(registry, "bad:a1")  # never a tag on an incomplete image
    assert exists(registry, "good:a2")  # the unrelated image still landed
    statuses = {
        a["target"]: a["status"]
        for a in orjson.loads((tmp_path / "r.json").read_bytes())["actions"]
    }
    assert statuses[f"{t}/bad:a1"] == "not-run" and statuses[f"{t}/good:a2"] == "done"


def test_no_blob_is_read_from_the_source_twice(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    """Two target repositories on one registry want the same blobs: read once, then mounted."""
    h, t = seeded_registry.host, registry.host
    config = sync_config(
        tmp_path,
        [seeded_registry, registry],
        *(
            sync_step(
                f"{h}/testrepo",
                f"{t}/{name}",
                "repository",
                tags={"allow": ["v1", "v2", "b1", "b2"]},
            )
            for name in ("one", "two")
        ),
        defaults={"parallel": 3},
    )
    seeded_registry.clear_requests()
    result = regplan("once", "-c", str(config), cwd=tmp_path)
    assert result.code == 0, str(result)
    reads = Counter(
        r.reference for r in seeded_registry.requests() if r.method == "GET" and r.kind == "blob"
    )
    assert reads and max(reads.values()) == 1, reads
    uploads = [r for r in registry.requests() if r.kind == "upload"]
    mounts = [r for r in uploads if "mount=" in r.query]
    assert len(mounts) == len(reads)  # every blob read once, mounted into the other repository
    assert not any(r.method == "PATCH" for r in uploads)
    assert not any(r.kind == "ping" for r in registry.requests()[1:])  # no /v2/ ping per image
    for name in ("one", "two"):
        assert digest(registry, f"{name}:v2") == digest(seeded_registry, "testrepo:v2")


def test_plan_file_never_holds_a_password(
    tmp_path: Path, seeded_registry: RegistryServer, auth_registry: RegistryServer
) -> None:
    secret_file = tmp_path / "pass.txt"
    secret_file.write_text(auth_registry.password + "\n")
    config = write_config(
        tmp_path,
        plain_creds(seeded_registry, auth_registry)
        + f"    user: {auth_registry.user}\n"
        + f"    pass: '{{{{ file \"{secret_file}\" }}}}'\n"
        + "sync:\n"
        + sync_step(f"{seeded_registry.host}/testrepo:v1", f"{auth_registry.host}/x:v1"),
    )
    plan_file = tmp_path / "plan.json"
    result = regplan("plan", "-c", str(config), "-o", str(plan_file), "-v", "trace", cwd=tmp_path)
    assert result.code == 0, str(result)
    applied = regplan(
        "apply", str(plan_file), "-v", "trace", "--report", str(tmp_path / "r.json"), cwd=tmp_path
    )
    assert applied.code == 0, str(applied)
    for text in (
        plan_file.read_text(),
        (tmp_path / "r.json").read_text(),
        result.stdout,
        result.stderr,
        applied.stdout,
        applied.stderr,
    ):
        assert auth_registry.password not in text


def test_registry_step_uses_the_catalog_and_repo_filters(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    config = sync_config(
        tmp_path,
        [seeded_registry, registry],
        sync_step(
            seeded_registry.host,
            f"{registry.host}/mirror",
            "registry",
            repos={"allow": ["ext.*"]},
            tags={"allow": ["a3"]},
        ),
    )
    plan_file = tmp_path / "plan.json"
    result = regplan("plan", "-c", str(config), "-o", str(plan_file), cwd=tmp_path)
    assert result.code == 0, str(result)
    tags = {
        a.target for a in planfile.decode(plan_file.read_bytes()).actions if a.kind == model.TAG
    }
    assert tags == {f"{registry.host}/mirror/external:a3"}
    assert regplan("apply", str(plan_file), cwd=tmp_path).code == 0
    assert digest(registry, "mirror/external:a3") == digest(seeded_registry, "external:a3")


def test_referrers_through_the_referrers_api(
    tmp_path: Path, regclient_testdata: Path, referrers_registry: OCIRegistry
) -> None:
    """The Python registry answers GET /v2/<name>/referrers/<digest> and indexes subjects itself
    (OCI-Subject), so no fallback tag is read or written on either side."""
    src_layout = tmp_path / "src"
    shutil.copytree(regclient_testdata / "testrepo", src_layout, copy_function=shutil.copyfile)
    h = referrers_registry.host
    seed = sync_config(
        tmp_path,
        [h],
        sync_step(f"ocidir://{src_layout}:v2", f"{h}/source:v2", referrers=True),
        name="seed.yml",
    )
    assert regplan("once", "-c", str(seed), cwd=tmp_path).code == 0
    referrers_registry.clear_requests()
    config = sync_config(
        tmp_path,
        [h],
        sync_step(
            f"{h}/source:v2",
            f"{h}/copy:v2",
            referrers=True,
            referrerFilters=[{"artifactType": "application/example.sbom"}],
        ),
    )
    plan_file = write_plan(config, tmp_path)
    plan = planfile.decode(plan_file.read_bytes())
    sbom = json.loads((src_layout / "index.json").read_text())
    a1 = next(
        m["digest"]
        for m in sbom["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "a1"
    )
    assert {a.digest for a in plan.actions if a.kind == model.REFERRER} == {a1}
    assert regplan("apply", str(plan_file), cwd=tmp_path).code == 0
    again = regplan("plan", "-c", str(config), "--detailed-exitcode", cwd=tmp_path)
    assert again.code == 0, str(again)
    paths = [r.path for r in referrers_registry.requests()]
    assert any("/referrers/" in p for p in paths)
    assert not any("/manifests/sha256-" in p for p in paths)  # the API was used, not fallback tags


def test_apply_asks_on_a_terminal(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    """Under a pseudo-terminal (util-linux `script`) apply shows the plan and asks; only `yes` applies."""
    import subprocess
    import sys

    config = repo_config(tmp_path, seeded_registry, registry, ["v1"])
    command = f"{sys.executable} -m regplan.cli apply -c {config} -v warn"

    def answer(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["script", "-qec", command, "/dev/null"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    declined = answer("no\n")
    assert declined.returncode == 1 and "Apply this plan?" in declined.stdout
    assert not exists(registry, "mirror:v1")
    accepted = answer("yes\n")
    assert accepted.returncode == 0, accepted.stdout
    assert "Apply complete" in accepted.stdout
    assert exists(registry, "mirror:v1")


def test_a_new_target_repository_is_not_asked_about_its_content(
    tmp_path: Path, seeded_registry: RegistryServer, registry: RegistryServer
) -> None:
    """After the first 404 one tag list shows the repository does not exist: no HEAD for each
    manifest and blob it will get (a cold mirror would otherwise pay one per blob)."""
    config = repo_config(tmp_path, seeded_registry, registry, ["v1", "v2", "v3"])
    result = regplan("once", "-c", str(config), cwd=tmp_path)
    assert result.code == 0, str(result)
    target = Counter((r.method, r.kind) for r in registry.requests())
    assert target[("HEAD", "blob")] == 0, target
    # the three tags once right before each push, and when planning at most once each: the
    # tags are planned in parallel, so a tag planned after the 404 tag list skips its HEAD
    assert 3 + 1 <= target[("HEAD", "manifest")] <= 3 + 3, target
    assert target[("GET", "tags")] == 1, target
    assert target[("PUT", "upload")] == target[("POST", "upload")] > 0
