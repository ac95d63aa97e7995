"""Many writers into one OCI Layout, as real processes: overlapping `once` runs (cron jobs
that run long) and one `watch` whose parallel steps share a target layout.

After every round each tag that any run wrote is in index.json, and every tag's content is
complete, as an independent walk of the layout (tests/concurrency/layouts.py) sees it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.concurrency import layouts
from tests.regplan_cli import REPO_ROOT, write_config
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, fault_proxy
from tests.watch.proc import WatchProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TAGS_PER_WRITER = 40
ROUNDS = 5


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    env["HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


class _Once:
    """`regplan once` in the background; its output goes to a file (a pipe could fill up)."""

    def __init__(self, config: Path, home: Path) -> None:
        self.log = config.with_suffix(f".{time.monotonic_ns()}.log")
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "regplan.cli", "once", "-c", str(config)],
                cwd=home,
                env=_env(home),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        self.proc.kill()

    def output(self) -> str:
        return self.log.read_text()


def _once(config: Path, home: Path) -> _Once:
    return _Once(config, home)


def test_two_once_processes_writing_40_tags_each_keep_all_80_complete(tmp_path: Path) -> None:
    source = tmp_path / "source"
    writers = ("a", "b")
    layouts.make_source(
        source, [f"{w}-{i}" for w in writers for i in range(TAGS_PER_WRITER)], layer_size=16384
    )
    for round_ in range(ROUNDS):
        target = tmp_path / f"target-{round_}"
        configs = [
            write_config(
                tmp_path,
                f"""
                version: 1
                defaults:
                  parallel: 4
                sync:
                  - source: ocidir://{source}
                    target: ocidir://{target}
                    type: repository
                    tags:
                      allow: ["{w}-.*"]
                """,
                name=f"{w}.yml",
            )
            for w in writers
        ]
        procs = [_once(c, tmp_path) for c in configs]
        for proc in procs:
            code = proc.wait(240)
            assert code == 0, f"round {round_}: exit {code}\n{proc.output()}"
        written = layouts.tags(target)
        wanted = {f"{w}-{i}" for w in writers for i in range(TAGS_PER_WRITER)}
        assert set(written) == wanted, f"round {round_}: lost {sorted(wanted - set(written))}"
        assert written == {t: d for t, d in layouts.tags(source).items() if t in wanted}
        assert layouts.problems(target) == [], f"round {round_}"
        # and nothing unreachable or half-written is left behind
        leftovers = [p.name for p in (target / "blobs" / "sha256").iterdir() if p.name[0] == "."]
        assert leftovers == []


# -- watch: two steps, parallel 2, one target layout ------------------------------------------


def _push_blob(client: httpx.Client, repo: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = client.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    sep = "&" if "?" in location else "?"
    done = client.put(f"{location}{sep}digest={digest}", content=data)
    assert done.status_code == 201, done.text
    return {"mediaType": layouts.OCI_LAYER, "digest": digest, "size": len(data)}


def _push_image(url: str, repo: str, tag: str, layers: list[bytes]) -> tuple[str, str]:
    """An image with these layers (uploaded in order); its digest and its last layer's."""
    with httpx.Client(base_url=url, timeout=60) as client:
        descs = [_push_blob(client, repo, layer) for layer in layers]
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        config_desc = {**_push_blob(client, repo, config), "mediaType": layouts.OCI_CONFIG}
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": layouts.OCI_MANIFEST,
                "config": config_desc,
                "layers": descs,
            }
        ).encode()
        put = client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=body,
            headers={"Content-Type": layouts.OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
        return "sha256:" + hashlib.sha256(body).hexdigest(), str(descs[-1]["digest"])


def test_watch_with_two_parallel_steps_into_one_layout_loses_no_blob(
    registry: RegistryServer, tmp_path: Path
) -> None:
    def noise(seed: str) -> bytes:
        return hashlib.shake_256(seed.encode()).digest(256 * 1024)

    fast, _ = _push_image(registry.url, "fast", "v1", [noise("fast")])
    slow, last = _push_image(registry.url, "slow", "v1", [noise(f"slow{i}") for i in range(3)])
    target = tmp_path / "target"
    with fault_proxy(registry.host) as proxy:
        # the slow image's last layer arrives late: its other blobs are written, not yet tagged,
        # while the fast step finishes its apply into the same layout
        delayed = proxy.add(Fault("delay", path=f"/blobs/{last}", delay=3.0, times=-1))
        cfg = write_config(
            tmp_path,
            textwrap.dedent(f"""
            version: 1
            creds:
              - registry: {proxy.host}
                tls: disabled
            defaults:
              parallel: 2
              skipDockerConfig: true
            sync:
              - source: {proxy.host}/slow:v1
                target: ocidir://{target}:slow
                type: image
                interval: 1h
              - source: {proxy.host}/fast:v1
                target: ocidir://{target}:fast
                type: image
                interval: 1h
            """),
        )
        proc = WatchProcess(cfg, "--listen", "127.0.0.1:0", "-v", "debug", cwd=tmp_path)
        try:
            proc.wait_ready(timeout=60)
            errors = [line for line in proc.lines if line.get("level") in ("ERROR", "error")]
            assert errors == [], proc.text()
        finally:
            proc.close()
    assert delayed.applied >= 1
    assert layouts.tags(target) == {"slow": slow, "fast": fast}
    assert layouts.problems(target) == []


def test_a_writer_killed_mid_run_leaves_no_incomplete_tag_and_no_stuck_lock(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    layouts.make_source(source, [f"{w}-{i}" for w in "ab" for i in range(TAGS_PER_WRITER)])
    configs = {
        w: write_config(
            tmp_path,
            f"""
            version: 1
            sync:
              - source: ocidir://{source}
                target: ocidir://{target}
                type: repository
                tags:
                  allow: ["{w}-.*"]
            """,
            name=f"{w}.yml",
        )
        for w in "ab"
    }
    victim, survivor = _once(configs["a"], tmp_path), _once(configs["b"], tmp_path)
    try:
        # kill -9 the first writer once it has tagged something (its locks die with it)
        deadline = time.monotonic() + 120
        while not any(t.startswith("a-") for t in _tags_if_any(target)):
            assert victim.poll() is None, victim.output()
            assert time.monotonic() < deadline, "the first writer never tagged anything"
            time.sleep(0.02)
        victim.kill()
        victim.wait(30)
        assert survivor.wait(240) == 0, survivor.output()
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    assert {f"b-{i}" for i in range(TAGS_PER_WRITER)} <= set(layouts.tags(target))
    assert layouts.problems(target) == []  # the killed writer's tags are complete too
    rerun = _once(configs["a"], tmp_path)
    assert rerun.wait(240) == 0, rerun.output()
    assert len(layouts.tags(target)) == 2 * TAGS_PER_WRITER
    assert layouts.problems(target) == []


def _tags_if_any(layout: Path) -> dict[str, str]:
    try:
        return layouts.tags(layout)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


# -- four writers and a watch, twenty rounds, one killed ---------------------------------------

RACING_ROUNDS = 20
RACERS = 4
OWN_TAGS = 6  # each writer's own tags; all of them also write the shared ones
SHARED_TAGS = 4


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_four_writers_and_a_watch_for_twenty_rounds_lose_no_tag(tmp_path: Path) -> None:
    """Each round: a fresh target layout, four `once` processes (each its own tags plus the
    tags all four share) and one `watch` mirroring everything into it at once. In one round a
    writer is killed with SIGKILL once it has tagged something, then run again. After every
    round every tag is in index.json, at its source digest, with all its content."""
    source = tmp_path / "source"
    own = {w: [f"w{w}-{i}" for i in range(OWN_TAGS)] for w in range(RACERS)}
    shared = [f"shared-{i}" for i in range(SHARED_TAGS)]
    layouts.make_source(source, [*shared, *(t for ts in own.values() for t in ts)], layer_size=4096)
    expected = layouts.tags(source)
    kill_round = RACING_ROUNDS // 2

    def config(name: str, target: Path, allow: str, extra: str = "") -> Path:
        return write_config(
            tmp_path,
            f"""
            version: 1
            defaults:
              parallel: 2
              {extra}
            sync:
              - source: ocidir://{source}
                target: ocidir://{target}
                type: repository
                tags:
                  allow: ["{allow}"]
            """,
            name=name,
        )

    for round_ in range(RACING_ROUNDS):
        target = tmp_path / f"target-{round_}"
        watch_cfg = config(f"watch-{round_}.yml", target, ".*", "interval: 1s")
        configs = [
            config(f"w{w}-{round_}.yml", target, f"(w{w}-.*|shared-.*)") for w in range(RACERS)
        ]
        watch = WatchProcess(watch_cfg, "--listen", "", cwd=tmp_path)
        procs = [_once(c, tmp_path) for c in configs]
        try:
            if round_ == kill_round:
                deadline = time.monotonic() + 120
                while not any(t.startswith("w0-") for t in _tags_if_any(target)):
                    assert time.monotonic() < deadline, "writer 0 never tagged anything"
                    time.sleep(0.01)
                procs[0].kill()
                procs[0].wait(30)
                assert layouts.problems(target) == [], "a killed writer left an incomplete tag"
                procs[0] = _once(configs[0], tmp_path)
            for w, proc in enumerate(procs):
                code = proc.wait(240)
                assert code == 0, f"round {round_} writer {w}: exit {code}\n{proc.output()}"
        finally:
            watch.close()
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(30)
        written = layouts.tags(target)
        assert written == expected, f"round {round_}: lost {sorted(set(expected) - set(written))}"
        assert layouts.problems(target) == [], f"round {round_}"
