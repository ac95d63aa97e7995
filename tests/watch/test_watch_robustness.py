"""`regplan watch` under stress: reloads that move steps, hung sources, idle HTTP clients,
a stop during a long plan. Real processes, real distribution registries, real signals."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.regplan_cli import write_config
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, FaultProxy
from tests.watch.bigimage import OCI_MANIFEST, MiB, push_image, small_image
from tests.watch.proc import Line, WatchProcess
from tests.watch.test_watch_integration import head, metric_values, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def procs() -> Iterator[list[WatchProcess]]:
    started: list[WatchProcess] = []
    yield started
    for proc in started:
        proc.close()


def watch_config(
    directory: Path, hosts: list[str], steps: str, name: str = "regplan.yml", blob_max: str = ""
) -> Path:
    creds = "".join(f"  - registry: {h}\n    tls: disabled\n{blob_max}" for h in hosts)
    text = f"creds:\n{creds}defaults:\n  parallel: 2\n  skipDockerConfig: true\nsync:\n"
    return write_config(directory, text + textwrap.indent(textwrap.dedent(steps), "  "), name)


def step(source: str, target: str, interval: str, kind: str = "image") -> str:
    return f"- source: {source}\n  target: {target}\n  type: {kind}\n  interval: {interval}\n"


def runs_overlap(lines: list[Line], target: str) -> bool:
    """Whether two runs of the step writing `target` were ever going at once."""
    going = 0
    for line in lines:
        if line.get("target") != target:
            continue
        if line.get("msg") == "Running task":
            going += 1
            if going > 1:
                return True
        elif line.get("msg") == "Run finished":
            going -= 1
    return False


def test_a_reload_that_inserts_a_step_runs_it_at_once_and_never_doubles_a_running_step(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path, procs: list[WatchProcess]
) -> None:
    source, target = registry_factory(), registry_factory()
    big = push_image(source.url, "big", "v1", size=192 * MiB, seed="big")
    small_image(target.url, "big", "v1", "stale")  # missing mode leaves it; full runs copy big
    new = small_image(source.url, "new", "v1", "new")
    hosts = [source.host, target.host]
    slow = "    blobMax: 1048576\n"  # 1 MiB chunks: the 192 MiB copy takes seconds
    big_step = step(f"{source.host}/big:v1", f"{target.host}/big:v1", "1s")
    cfg = watch_config(tmp_path, hosts, big_step, blob_max=slow)
    proc = WatchProcess(cfg, "-v", "debug", "--listen", "", cwd=tmp_path)
    procs.append(proc)
    proc.wait_msg("Initial pass finished, running on schedule", timeout=30)
    proc.wait_msg("Running task", mode="full", target=f"{target.host}/big:v1", timeout=20)

    # The new step goes in front: every index shifts by one while the big copy runs.
    new_step = step(f"{source.host}/new:v1", f"{target.host}/new:v1", "1h")
    watch_config(tmp_path, hosts, new_step + big_step, blob_max=slow)
    proc.signal(signal.SIGHUP)
    proc.wait_msg("Config reloaded", steps=2, changed=1)
    proc.wait_msg("Running task", target=f"{target.host}/new:v1", mode="missing")
    wait_until(  # at once: while the big copy is still going
        lambda: head(target, "new", "v1") == new.digest, timeout=20, what="new copied", proc=proc
    )
    assert head(target, "big", "v1") != big.digest
    wait_until(
        lambda: head(target, "big", "v1") == big.digest, timeout=60, what="big copied", proc=proc
    )
    proc.wait_msg("Run finished", target=f"{target.host}/big:v1", mode="full", images=1, timeout=30)
    proc.signal(signal.SIGTERM)
    assert proc.wait_exit(30) == 0, proc.text()

    assert not proc.messages(
        "Skipping task, previous run still going", target=f"{target.host}/new:v1"
    )
    assert not runs_overlap(proc.lines, f"{target.host}/big:v1"), proc.text()
    # the big step's fires while its copy ran were skipped, not started beside it
    assert proc.messages("Skipping task, previous run still going", target=f"{target.host}/big:v1")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_a_hundred_reloads_leave_the_open_file_count_flat(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path, procs: list[WatchProcess]
) -> None:
    source, target = registry_factory(), registry_factory()
    small_image(source.url, "app", "v1", "a")
    small_image(source.url, "app", "v2", "b")
    hosts = [source.host, target.host]

    def config(tags: str) -> Path:  # each reload changes the step: it runs with the new client
        body = step(f"{source.host}/app", f"{target.host}/app", "1h", "repository")
        return watch_config(tmp_path, hosts, body + f"  tags: {{allow: [{tags}]}}\n")

    cfg = config('"v1"')
    proc = WatchProcess(cfg, "-v", "debug", "--listen", "", cwd=tmp_path)
    procs.append(proc)
    proc.wait_msg("Initial pass finished, running on schedule", timeout=30)
    counts = []
    for n in range(1, 101):
        config('"v1", "v2"' if n % 2 else '"v1"')
        proc.signal(signal.SIGHUP)
        proc.wait_for(
            lambda line, n=n: len(proc.messages("Run finished", mode="missing")) > n,
            timeout=20,
            what=f"the run after reload {n}",
        )
        if n in (10, 100):
            time.sleep(0.5)  # the run's thread closes the old client just after its last line
            counts.append(fd_count(proc.proc.pid))
    proc.signal(signal.SIGTERM)
    assert proc.wait_exit(30) == 0, proc.text()
    assert len(proc.messages("Config reloaded")) == 100
    assert counts[1] - counts[0] <= 4, counts  # leaked ~4 per reload: 360 more


def test_a_hung_source_stalls_no_other_step_and_times_out_as_an_error(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path, procs: list[WatchProcess]
) -> None:
    source, target = registry_factory(), registry_factory()
    small_image(source.url, "hung", "v1", "hung")
    fast = small_image(source.url, "fast", "v1", "fast")
    with FaultProxy(source.host) as proxy:
        proxy.add(Fault("delay", r"/v2/hung/manifests/", delay=25.0, times=-1))
        hosts = [source.host, target.host, proxy.host]
        cfg = watch_config(
            tmp_path,
            hosts,
            step(f"{proxy.host}/hung:v1", f"{target.host}/hung:v1", "1h")
            + step(f"{source.host}/fast:v1", f"{target.host}/fast:v1", "1s"),
        )
        proc = WatchProcess(
            cfg, "-v", "debug", "--listen", "127.0.0.1:0", "--run-timeout", "6s", cwd=tmp_path
        )
        procs.append(proc)
        # The fast step's schedule starts once its own initial run is over: full runs come
        # while the hung step's first request is still unanswered.
        proc.wait_msg("Running task", mode="full", target=f"{target.host}/fast:v1", timeout=20)
        assert not proc.messages("Run timed out, cancelling it")
        assert head(target, "fast", "v1") == fast.digest
        assert proc.get("/healthz").status_code == 200
        ready = proc.get("/readyz")
        assert (ready.status_code, ready.text) == (503, "not ready: initial pass running\n")
        # The hung run ends as an error at its deadline; then every step's initial run is over.
        proc.wait_msg("Run timed out, cancelling it", target=f"{target.host}/hung:v1", timeout=20)
        proc.wait_ready(timeout=10)
        v = metric_values(proc.get("/metrics").text)
        failed = (("mode", "missing"), ("outcome", "failure"), ("step", "0"))
        assert v[("regplan_runs_total", failed)] == 1
        proc.signal(signal.SIGTERM)
        code = proc.wait_exit(40)
    assert code == 1, proc.text()  # a timed-out run is an error


def test_idle_http_clients_hold_no_threads_and_probes_still_answer(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path, procs: list[WatchProcess]
) -> None:
    source, target = registry_factory(), registry_factory()
    small_image(source.url, "app", "v1", "a")
    cfg = watch_config(
        tmp_path,
        [source.host, target.host],
        step(f"{source.host}/app:v1", f"{target.host}/app:v1", "1h"),
    )
    proc = WatchProcess(cfg, "-v", "debug", "--listen", "127.0.0.1:0", cwd=tmp_path)
    procs.append(proc)
    proc.wait_ready()
    host, port = proc.url.removeprefix("http://").rsplit(":", 1)
    before = thread_count(proc.proc.pid)
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(400)]
    try:
        time.sleep(1.0)  # let the server accept them all
        during = thread_count(proc.proc.pid)
        assert proc.get("/healthz").status_code == 200
        assert proc.get("/readyz").status_code == 200
        assert during <= before + 2, (before, during)  # was one thread per connection: 403
    finally:
        for s in idle:
            s.close()
    proc.signal(signal.SIGTERM)
    assert proc.wait_exit(30) == 0, proc.text()


def retag(url: str, repo: str, digest: str, tags: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        r = client.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200, r.text
        for tag in tags:
            put = client.put(
                f"/v2/{repo}/manifests/{tag}",
                content=r.content,
                headers={"Content-Type": r.headers["Content-Type"]},
            )
            assert put.status_code == 201, put.text


def test_sigterm_during_a_long_plan_stops_planning(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path, procs: list[WatchProcess]
) -> None:
    source, target = registry_factory(), registry_factory()
    image = small_image(source.url, "many", "t000", "many")
    tags = [f"t{i:03d}" for i in range(1, 80)]
    retag(source.url, "many", image.digest, tags)
    with FaultProxy(source.host) as proxy:
        slow = proxy.add(Fault("delay", r"/v2/many/manifests/t", delay=0.5, times=-1))
        cfg = watch_config(
            tmp_path,
            [source.host, target.host, proxy.host],
            step(f"{proxy.host}/many", f"{target.host}/many", "1h", "repository"),
        )
        # a long grace period: only the stop of planning itself can end this run early
        proc = WatchProcess(
            cfg, "-v", "debug", "--listen", "", "--grace-period", "2m", cwd=tmp_path
        )
        procs.append(proc)
        wait_until(lambda: slow.applied >= 4, timeout=30, what="planning under way", proc=proc)
        proc.signal(signal.SIGTERM)
        code = proc.wait_exit(60)
        asked = slow.applied
    assert code == 0, proc.text()  # a run cancelled by the shutdown is no error
    assert asked < 40, (asked, proc.text())  # all 80 tags without the stop
    assert proc.messages("Run finished", outcome="cancelled")
    assert head(target, "many", "t000") is None  # nothing applied from a half plan
