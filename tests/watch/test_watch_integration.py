"""`regplan watch` end to end: a real process, real distribution registries, real signals.

One source registry serves the module; each test gets a fresh target. The target's creds set
`blobMax` so big blobs go up in 1 MiB chunks: that slows a generated 192 MiB copy to a few
seconds, long enough to send a signal while it is in flight.
"""

from __future__ import annotations

import shutil
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.regplan_cli import write_config
from tests.servers.distribution import REGISTRY_BINARY, RegistryServer
from tests.watch.bigimage import MiB, push_image, small_image
from tests.watch.proc import WatchProcess, no_overlap

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BIG = 192 * MiB
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def _serve_and_remove(workdir: Path) -> Iterator[RegistryServer]:
    """A registry whose storage is deleted afterwards: the big test images would otherwise
    stay in pytest's kept temporary directories (hundreds of MiB per session)."""
    if shutil.which(REGISTRY_BINARY) is None:
        pytest.fail(f"missing {REGISTRY_BINARY}", pytrace=False)
    try:
        with RegistryServer(workdir) as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from _serve_and_remove(tmp_path_factory.mktemp("watch-source"))


@pytest.fixture
def big_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from _serve_and_remove(tmp_path_factory.mktemp("watch-target"))


@pytest.fixture
def procs() -> Iterator[list[WatchProcess]]:
    started: list[WatchProcess] = []
    yield started
    for proc in started:
        proc.close()


def watch(procs: list[WatchProcess], cfg: Path, *args: str, cwd: Path) -> WatchProcess:
    """Start `regplan watch` on `cfg`; the `procs` fixture closes it after the test."""
    proc = WatchProcess(cfg, *args, cwd=cwd)
    procs.append(proc)
    return proc


def head(server: RegistryServer, repo: str, ref: str) -> str | None:
    r = httpx.head(
        f"{server.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}, timeout=10
    )
    return r.headers["Docker-Content-Digest"] if r.status_code == 200 else None


def wait_until(probe, *, timeout: float, what: str, proc: WatchProcess) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{proc.text()}")
        time.sleep(0.05)


def config(directory: Path, source: RegistryServer, target: RegistryServer, steps: str) -> Path:
    head = f"""
    creds:
      - registry: {source.host}
        tls: disabled
      - registry: {target.host}
        tls: disabled
        blobMax: 1048576
    defaults:
      parallel: 2
      skipDockerConfig: true
    sync:
    """
    body = textwrap.indent(textwrap.dedent(steps), "  ")
    return write_config(directory, textwrap.dedent(head) + body)


def image_step(source: str, target: str, interval: str) -> str:
    """One image step (for `config`), run every `interval`."""
    return f"- source: {source}\n  target: {target}\n  type: image\n  interval: {interval}\n"


def one_image(
    directory: Path, source: RegistryServer, target: RegistryServer, repo: str, interval: str
) -> Path:
    """`config` of one step: `repo`:v1 from `source` to the same name on `target`."""
    step = image_step(f"{source.host}/{repo}:v1", f"{target.host}/{repo}:v1", interval)
    return config(directory, source, target, step)


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_initial_missing_pass_then_full_runs_on_schedule(
    source: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    procs: list[WatchProcess],
) -> None:
    a = small_image(source.url, "app", "v1", "a")
    b = small_image(source.url, "app", "v2", "b")
    c = small_image(registry.url, "app", "v1", "c")  # the target's v1 differs from the source's
    medium = push_image(source.url, "medium", "v1", size=24 * MiB, seed="medium")
    cfg = config(
        tmp_path,
        source,
        registry,
        f"""\
          - source: {source.host}/app
            target: {registry.host}/app
            type: repository
            schedule: "@every 2s"
          - source: {source.host}/medium:v1
            target: {registry.host}/medium:v1
            type: image
            interval: 1h
          - source: {source.host}/app:v1
            target: {registry.host}/never:v1
            type: image
        """,
    )
    plans = tmp_path / "plans"
    started = time.time()
    proc = watch(
        procs, cfg, "--listen", "127.0.0.1:0", "--plan-dir", str(plans), "-v", "debug", cwd=tmp_path
    )

    # The listener answers while the initial pass copies 24 MiB; ready only after it.
    assert proc.get("/healthz").status_code == 200
    not_ready = proc.get("/readyz")
    assert (not_ready.status_code, not_ready.text) == (503, "not ready: initial pass running\n")
    proc.wait_ready()
    assert proc.messages("No schedule or interval found, ignoring", step=2)
    assert head(registry, "medium", "v1") == medium.digest

    # Missing mode: v2 created, v1 left alone although it differs.
    [missing_plan] = sorted(plans.glob("*-step0-missing.plan.json"))
    tags = [
        (x["target"], x["reason"])
        for x in orjson.loads(missing_plan.read_bytes())["actions"]
        if x["kind"] == "tag"
    ]
    assert tags == [(f"{registry.host}/app:v2", "create")]
    assert orjson.loads(
        missing_plan.with_name(missing_plan.name.replace(".plan.", ".report.")).read_bytes()
    )["ok"]
    assert not list(plans.glob("*-step2-*"))

    # Full runs: the differing v1 is overwritten, then a retagged source tag is picked up.
    wait_until(
        lambda: head(registry, "app", "v1") == a.digest,
        timeout=10,
        what="v1 overwritten",
        proc=proc,
    )
    assert c.digest != a.digest
    d = small_image(source.url, "app", "v2", "d")
    wait_until(
        lambda: head(registry, "app", "v2") == d.digest, timeout=10, what="v2 retagged", proc=proc
    )
    wait_until(
        lambda: len(proc.messages("Run finished", step=0, mode="full", images=1)) == 2,
        timeout=10,
        what="the retag run's end",
        proc=proc,
    )
    assert sorted(plans.glob("*-step0-full.plan.json"))

    v = metric_values(proc.get("/metrics").text)
    s0, s1 = (("step", "0"),), (("step", "1"),)
    runs = {
        (labels[0][1], labels[1][1], labels[2][1]): value
        for (name, labels), value in v.items()
        if name == "regplan_runs_total"
    }
    assert runs[("missing", "success", "0")] == 1
    assert runs[("missing", "success", "1")] == 1
    assert runs[("full", "success", "0")] >= 2
    assert runs[("full", "success", "1")] == 0  # hourly: not yet
    assert sum(n for (_, outcome, _), n in runs.items() if outcome != "success") == 0
    assert v[("regplan_images_copied_total", s0)] == 3  # v2 (missing), v1 (overwrite), v2 (retag)
    assert v[("regplan_manifests_copied_total", s0)] == 3
    assert v[("regplan_blobs_copied_total", s0)] == 6
    assert v[("regplan_bytes_copied_total", s0)] == a.blob_bytes + b.blob_bytes + d.blob_bytes
    assert v[("regplan_images_copied_total", s1)] == 1
    assert v[("regplan_bytes_copied_total", s1)] == medium.blob_bytes
    assert v[("regplan_errors_total", s0)] == v[("regplan_errors_total", s1)] == 0
    assert v[("regplan_last_success_timestamp_seconds", s0)] > started
    assert v[("regplan_last_run_duration_seconds", s1)] > 0
    assert v[("regplan_next_run_timestamp_seconds", s0)] > time.time() - 1
    assert v[("regplan_next_run_timestamp_seconds", s1)] > time.time() + 3000
    assert v[("regplan_ready", ())] == 1
    assert {dict(labels)["step"] for (name, labels) in v if name == "regplan_step_info"} == {
        "0",
        "1",
    }
    assert any(name == "regplan_registry_requests_total" for (name, _) in v)

    assert no_overlap(proc.lines)
    proc.signal(signal.SIGTERM)
    assert proc.wait_exit(timeout=30) == 0, proc.text()  # the timeout detects a hang
    assert proc.messages("Stopping server")
    assert proc.messages("Server stopped", exit=0, errors=0)


def test_sigterm_after_the_grace_period_cancels_and_leaves_no_tag(
    source: RegistryServer,
    big_target: RegistryServer,
    tmp_path: Path,
    procs: list[WatchProcess],
) -> None:
    big = push_image(source.url, "big", "v1", size=BIG, seed="big")
    cfg = one_image(tmp_path, source, big_target, "big", "1h")
    proc = watch(procs, cfg, "--listen", "", "--grace-period", "0s", cwd=tmp_path)
    proc.wait_msg("Copy layer", layer=big.layer, timeout=20)
    proc.signal(signal.SIGTERM)
    # a shutdown the operator asked for is no error; the timeout detects a hang
    assert proc.wait_exit(timeout=30) == 0, proc.text()

    assert head(big_target, "big", "v1") is None  # no tag on an incomplete image
    assert proc.messages("Grace period over, cancelling running tasks")
    assert proc.messages("Run finished", step=0, outcome="cancelled")
    assert proc.messages("Server stopped", exit=0, cancelled=1)
    assert not any(line.get("level") == "RAW" and "Traceback" in line["msg"] for line in proc.lines)
    assert not proc.messages("Serving health and metrics")  # --listen '' turns it off


def test_sigterm_lets_an_inflight_copy_finish_and_runs_never_overlap(
    source: RegistryServer,
    big_target: RegistryServer,
    tmp_path: Path,
    procs: list[WatchProcess],
) -> None:
    small_image(source.url, "big2", "v1", "small")
    cfg = one_image(tmp_path, source, big_target, "big2", "1s")
    proc = watch(procs, cfg, "--listen", "127.0.0.1:0", "-v", "debug", cwd=tmp_path)
    proc.wait_ready()
    new = push_image(source.url, "big2", "v1", size=BIG, seed="big2")  # retag to a big image

    # The copy of the new image takes seconds: the 1s schedule comes round meanwhile.
    proc.wait_msg("Copy layer", layer=new.layer, timeout=20)
    proc.wait_msg("Skipping task, previous run still going", step=0, timeout=10)
    proc.signal(signal.SIGTERM)
    assert proc.wait_exit(timeout=40) == 0, proc.text()

    assert head(big_target, "big2", "v1") == new.digest  # finished within the grace period
    assert proc.messages("Waiting on running tasks")
    assert not proc.messages("Grace period over, cancelling running tasks")
    [last] = proc.messages("Run finished", step=0, images=1, bytes=new.blob_bytes)
    assert last["outcome"] == "success"
    assert no_overlap(proc.lines)


def test_sighup_reloads_the_config_and_keeps_it_when_invalid(
    source: RegistryServer,
    registry: RegistryServer,
    tmp_path: Path,
    procs: list[WatchProcess],
) -> None:
    image = small_image(source.url, "reload", "v1", "reload")

    def step(target_repo: str) -> str:
        return image_step(f"{source.host}/reload:v1", f"{registry.host}/{target_repo}:v1", "1h")

    one = step("reload")
    two = one + step("added")
    cfg = config(tmp_path, source, registry, one)
    proc = watch(procs, cfg, "--listen", "127.0.0.1:0", cwd=tmp_path)
    proc.wait_ready()
    assert head(registry, "added", "v1") is None

    config(tmp_path, source, registry, two)
    proc.signal(signal.SIGHUP)
    proc.wait_msg("Config reloaded", steps=2, changed=1)
    wait_until(
        lambda: head(registry, "added", "v1") == image.digest,
        timeout=10,
        what="the new step's run",
        proc=proc,
    )

    cfg.write_text(cfg.read_text() + "    bogus: key\n")
    proc.signal(signal.SIGHUP)
    proc.wait_msg("Config reload failed, keeping the current config")
    assert proc.get("/healthz").status_code == 200
    assert proc.get("/readyz").status_code == 200
    v = metric_values(proc.get("/metrics").text)
    assert v[("regplan_config_reloads_total", (("outcome", "success"),))] == 1
    assert v[("regplan_config_reloads_total", (("outcome", "failure"),))] == 1
    assert {dict(labels)["step"] for (name, labels) in v if name == "regplan_step_info"} == {
        "0",
        "1",
    }

    proc.signal(signal.SIGINT)
    assert proc.wait_exit() == 1  # it saw an error in its life: regsync's rule
    assert proc.messages("Server stopped", exit=1, errors=1)


def test_abort_on_error_stops_after_a_failed_initial_pass(
    source: RegistryServer, registry: RegistryServer, tmp_path: Path, procs: list[WatchProcess]
) -> None:
    cfg = one_image(tmp_path, source, registry, "absent", "1s")
    proc = watch(procs, cfg, "--listen", "", "--abort-on-error", cwd=tmp_path)
    assert proc.wait_exit() == 1, proc.text()
    assert proc.messages("Initial pass failed, stopping (--abort-on-error)")
    assert proc.messages("Run finished", step=0, mode="missing", outcome="failure")
    assert not proc.messages("Running task")  # no scheduled run ever started (info level)
