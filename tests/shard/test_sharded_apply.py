"""One reviewed plan applied by four concurrent workers, each taking its shard from the
environment as the pods of a Kubernetes Indexed Job do: real processes, real registries.

The plan has over 2,000 actions in 24 repositories. Afterwards the target holds exactly the
tags the plan puts there, every image complete (walked over HTTP, not through regplan), the
reports show no action done by two shards and none missed, and `report merge` agrees.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from regplan.plan.shard import shard_of
from tests.regplan_cli import regplan
from tests.reliability.images import make_images, missing_content
from tests.servers import rawpush
from tests.servers.distribution import RegistryServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sharded-apply")]

REPOS = [f"team{n // 6}/app{n:02d}" for n in range(24)]
TAGS = 12  # two-platform indexes: 7 actions an image (tag, 2 manifests, 2 configs, 2 layers)
SHARDS = 4


@dataclass
class World:
    source: RegistryServer
    base: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("sharded")
    with RegistryServer(base / "source") as source:
        for n, repo in enumerate(REPOS):
            layout = base / "layouts" / str(n)
            make_images(layout, seed=100 + n, images=TAGS, layers=1, min_size=512,
                        max_size=1024, index_every=1)  # fmt: skip
            rawpush.push_layout(layout, source, repo)
        yield World(source, base)


def write_config(world: World, target: RegistryServer, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    hosts = (world.source.host, target.host)
    steps = "".join(
        f"  - source: {world.source.host}/{repo}\n    target: {target.host}/{repo}\n"
        "    type: repository\n"
        for repo in REPOS
    )
    path = directory / "regplan.yml"
    path.write_text(
        "creds:\n"
        + "".join(f"  - registry: {h}\n    tls: disabled\n" for h in hosts)
        + "defaults:\n  skipDockerConfig: true\n  parallel: 4\nsync:\n"
        + steps
    )
    return path


@contextmanager
def busy_target(directory: Path, count: int = SHARDS) -> Iterator[RegistryServer]:
    """A target registry on which every one of `count` shards has repositories to write.

    A repository's shard is a hash of its whole name, the target's random port included: for
    about one port in 200, one of four shards gets none of the 24 repositories, and the test
    would not run four workers. Such a port is passed over for another."""
    for attempt in range(10):
        server = RegistryServer(directory / f"target-{attempt}")
        with server:
            if {shard_of(f"{server.host}/{repo}", count) for repo in REPOS} == set(range(count)):
                yield server
                return
    raise AssertionError("no port in 10 gave every shard a repository")


def worker(index: int, plan: Path, report: Path, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    env |= {"HOME": str(cwd), "JOB_COMPLETION_INDEX": str(index)}
    return subprocess.Popen(
        [sys.executable, "-m", "regplan.cli", "apply", str(plan), "--shard", str(SHARDS),
         "--report", str(report)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def target_tags(target: RegistryServer) -> dict[str, str]:
    """repo:tag -> digest, read over HTTP from the registry itself."""
    out = {}
    accept = ", ".join(sorted(rawpush.MANIFEST_TYPES))
    with httpx.Client(base_url=target.url, timeout=30) as client:
        for repo in REPOS:
            listed = client.get(f"/v2/{repo}/tags/list")
            if listed.status_code == 404:
                continue
            for tag in listed.json().get("tags") or []:
                head = client.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": accept})
                out[f"{repo}:{tag}"] = head.headers["docker-content-digest"]
    return out


def planned_tags(plan: dict) -> dict[str, str]:
    return {
        a["target"].split("/", 1)[1]: a["digest"] for a in plan["actions"] if a["kind"] == "tag"
    }


def assert_complete(target: RegistryServer, tags: dict[str, str]) -> None:
    for ref, digest in tags.items():
        repo = ref.rsplit(":", 1)[0]
        assert missing_content(target.url, repo, digest) == [], ref


@pytest.mark.slow
def test_four_workers_apply_one_plan_exactly_once(world: World, tmp_path: Path) -> None:
    with busy_target(tmp_path) as target:
        config = write_config(world, target, tmp_path)
        plan_file = tmp_path / "plan.json"
        assert regplan("plan", "-c", str(config), "-o", str(plan_file), cwd=tmp_path).code == 0
        plan = orjson.loads(plan_file.read_bytes())
        assert len(plan["actions"]) >= 2000, len(plan["actions"])

        shown = regplan("show", str(plan_file), "--shards", str(SHARDS), "--format", "json")
        assert shown.code == 0, str(shown)
        loads = orjson.loads(shown.stdout)
        assert sum(x["actions"] for x in loads) == len(plan["actions"])
        assert all(x["actions"] for x in loads), loads

        reports = [tmp_path / f"report-{i}.json" for i in range(SHARDS)]
        procs = [worker(i, plan_file, reports[i], tmp_path) for i in range(SHARDS)]
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"{out}\n{err}"

        done: list[str] = []
        for i, report in enumerate(reports):
            body = orjson.loads(report.read_bytes())
            assert body["shard"] == {"index": i, "count": SHARDS}
            assert body["ok"], body["summary"]
            done += [a["id"] for a in body["actions"]]
        assert sorted(done) == sorted(a["id"] for a in plan["actions"])  # once each, none missed
        assert len(done) == len(set(done))

        expected = planned_tags(plan)
        assert len(expected) == len(REPOS) * TAGS
        assert target_tags(target) == expected
        assert_complete(target, expected)

        merged = regplan("report", "merge", *map(str, reports))
        assert merged.code == 0, str(merged)
        assert f"Apply complete ({SHARDS} of {SHARDS} report(s)): {len(expected)} image(s)" in (
            merged.stdout
        )
        # the same plan applied again by one worker finds nothing left to do
        again = regplan("apply", str(plan_file), cwd=tmp_path)
        assert again.code == 0, str(again)
        assert "nothing to do" in again.stdout


@pytest.mark.slow
def test_a_killed_shard_is_re_run_and_finishes_its_share(world: World, tmp_path: Path) -> None:
    with busy_target(tmp_path) as target:
        config = write_config(world, target, tmp_path)
        plan_file = tmp_path / "plan.json"
        assert regplan("plan", "-c", str(config), "-o", str(plan_file), cwd=tmp_path).code == 0
        plan = orjson.loads(plan_file.read_bytes())
        reports = [tmp_path / f"report-{i}.json" for i in range(SHARDS)]
        procs = {i: worker(i, plan_file, reports[i], tmp_path) for i in range(SHARDS)}
        # kill shard 2 once the registry has taken some writes (not after a delay in seconds)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            writes = [r for r in target.requests() if r.method in ("PUT", "POST")]
            if len(writes) >= 200 or procs[2].poll() is not None:
                break
            time.sleep(0.05)
        procs[2].send_signal(signal.SIGKILL)
        for i, proc in procs.items():
            proc.communicate(timeout=600)
            if i != 2:
                assert proc.returncode == 0
        partial = regplan("report", "merge", *(str(reports[i]) for i in (0, 1, 3)))
        assert partial.code == 1 and "Missing: the report of shard(s) 2" in partial.stdout

        rerun = worker(2, plan_file, reports[2], tmp_path)
        out, err = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, f"{out}\n{err}"
        expected = planned_tags(plan)
        assert target_tags(target) == expected
        assert_complete(target, expected)
        merged = regplan("report", "merge", *map(str, reports))
        assert merged.code == 0, str(merged)


def test_reports_of_different_plans_do_not_merge(tmp_path: Path) -> None:
    def report(name: str, created: str) -> Path:
        path = tmp_path / name
        path.write_bytes(orjson.dumps({
            "plan": {"created_at": created, "config_digest": "sha256:0", "mode": "full"},
            "shard": {"index": 0, "count": 2}, "finished_at": created, "ok": True,
            "summary": {}, "actions": [],
        }))  # fmt: skip
        return path

    result = regplan(
        "report", "merge", str(report("a.json", "2026-01-01T00:00:00Z")),
        str(report("b.json", "2026-01-02T00:00:00Z")),
    )  # fmt: skip
    assert result.code == 1 and "report of another plan" in result.stderr, str(result)
    assert "Traceback" not in result.stderr


def test_once_workers_split_the_images_by_target_repository(world: World, tmp_path: Path) -> None:
    with busy_target(tmp_path, count=2) as target:
        config = write_config(world, target, tmp_path)
        env_base = {"REGPLAN_SHARDS": "2"}
        results = []
        for i in range(2):
            results.append(
                regplan("once", "-c", str(config), "--shard", "env", "--report",
                        str(tmp_path / f"once-{i}.json"), cwd=tmp_path,
                        env={**env_base, "JOB_COMPLETION_INDEX": str(i)}, timeout=600)
            )  # fmt: skip
        assert all(r.code == 0 for r in results), [str(r) for r in results]
        tags = target_tags(target)
        assert len(tags) == len(REPOS) * TAGS
        assert_complete(target, tags)
        merged = regplan("report", "merge", str(tmp_path / "once-0.json"),
                         str(tmp_path / "once-1.json"), "--format", "markdown")  # fmt: skip
        assert merged.code == 0, str(merged)
        assert merged.stdout.startswith("### ✅ Apply complete (2 of 2 report(s))")


def test_same_registry_shards_mount_from_the_source(world: World, tmp_path: Path) -> None:
    # target repositories on the source's own registry: each worker mounts what it needs
    # from the source repository, whichever shard the source repository would fall in
    repos = REPOS[:6]
    steps = "".join(
        f"  - source: {world.source.host}/{repo}\n    target: {world.source.host}/copy/{repo}\n"
        "    type: repository\n    tags: {allow: [v1, v2]}\n"
        for repo in repos
    )
    config = tmp_path / "regplan.yml"
    config.write_text(
        f"creds:\n  - registry: {world.source.host}\n    tls: disabled\n"
        "defaults:\n  skipDockerConfig: true\nsync:\n" + steps
    )
    plan_file = tmp_path / "plan.json"
    assert regplan("plan", "-c", str(config), "-o", str(plan_file), cwd=tmp_path).code == 0
    plan = orjson.loads(plan_file.read_bytes())
    blobs = [a for a in plan["actions"] if a["kind"] == "blob"]
    assert blobs and all(a.get("mount_from") for a in blobs)
    reports = [tmp_path / f"r{i}.json" for i in range(2)]
    for i in range(2):
        result = regplan("apply", str(plan_file), "--shard", f"{i}/2", "--report",
                         str(reports[i]), cwd=tmp_path)  # fmt: skip
        assert result.code == 0, str(result)
    details = [
        a["detail"] for r in reports for a in orjson.loads(r.read_bytes())["actions"]
        if a["kind"] == "blob"
    ]  # fmt: skip
    assert details and set(details) == {"mounted"}, details
    for a in plan["actions"]:
        if a["kind"] == "tag":
            repo = a["target"].split("/", 1)[1].rsplit(":", 1)[0]
            assert missing_content(world.source.url, repo, a["digest"]) == []
