"""The HTTP listener and the metrics it serves, without a registry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from regplan.config.model import SyncStep
from regplan.errors import RegplanError
from regplan.registry.api import RateLimitInfo
from regplan.registry.client import RegistryClient
from regplan.schedule import parse_schedule
from regplan.watch.endpoints import Endpoints, parse_listen
from regplan.watch.metrics import WatchMetrics
from regplan.watch.runs import FAILURE, MISSING, SUCCESS, Copied, RunResult
from regplan.watch.scheduler import ScheduledStep

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9090", ("127.0.0.1", 9090)),
        (":9090", ("", 9090)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9090", ("::1", 9090)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9090", "127.0.0.1", "host:port", "::1:9090", "h:70000"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(RegplanError, match="invalid --listen"):
        parse_listen(text)


class FakeHTTP:
    """Stands in for the HTTP backend: only what the metrics read."""

    def rate_limits(self) -> dict[str, RateLimitInfo]:
        return {
            "docker.io": RateLimitInfo(limit=100, remaining=42, policy="w=21600"),
            "ghcr.io": RateLimitInfo(remaining=7),
        }


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def metrics() -> WatchMetrics:
    client = RegistryClient(http_factory=FakeHTTP)  # type: ignore[arg-type]
    _ = client.http
    client.counter.add("docker.io", "HEAD", "manifest")
    client.counter.add("docker.io", "HEAD", "manifest")
    m = WatchMetrics(lambda: client)
    s = SyncStep(index=0, line=1, source="alpine", target="r.example/alpine", type="repository")
    m.describe_steps([ScheduledStep(s, parse_schedule("@every 1m"))])
    return m


def test_metrics_count_runs_and_copies(metrics: WatchMetrics) -> None:
    metrics.run_started(0)
    copied = Copied(images=2, manifests=5, blobs=7, mounted=1, bytes=12345)
    metrics.run_finished(RunResult(0, MISSING, SUCCESS, 100.0, 1700000000.5, 2.5, copied=copied))
    metrics.run_finished(RunResult(0, "full", FAILURE, 200.0, 1700000100.0, 1.0, errors=("x", "y")))
    v = metric_values(metrics.render().decode())
    step = (("step", "0"),)
    assert (
        v[("regplan_runs_total", (("mode", "missing"), ("outcome", "success"), ("step", "0")))] == 1
    )
    assert v[("regplan_runs_total", (("mode", "full"), ("outcome", "failure"), ("step", "0")))] == 1
    assert (
        v[("regplan_runs_total", (("mode", "full"), ("outcome", "cancelled"), ("step", "0")))] == 0
    )
    assert v[("regplan_images_copied_total", step)] == 2
    assert v[("regplan_manifests_copied_total", step)] == 5
    assert v[("regplan_blobs_copied_total", step)] == 7
    assert v[("regplan_blobs_mounted_total", step)] == 1
    assert v[("regplan_bytes_copied_total", step)] == 12345
    assert v[("regplan_errors_total", step)] == 2
    assert v[("regplan_last_success_timestamp_seconds", step)] == 1700000000.5  # not the failure
    assert v[("regplan_last_run_duration_seconds", step)] == 1.0
    assert v[("regplan_step_running", step)] == 0
    assert v[("regplan_ratelimit_remaining", (("registry", "docker.io"),))] == 42
    assert v[("regplan_ratelimit_remaining", (("registry", "ghcr.io"),))] == 7
    assert v[("regplan_ratelimit_limit", (("registry", "docker.io"),))] == 100
    assert ("regplan_ratelimit_limit", (("registry", "ghcr.io"),)) not in v
    key = (("kind", "manifest"), ("method", "HEAD"), ("registry", "docker.io"))
    assert v[("regplan_registry_requests_total", key)] == 2
    info = (
        ("schedule", "@every 1m"),
        ("source", "alpine"),
        ("step", "0"),
        ("target", "r.example/alpine"),
        ("type", "repository"),
    )
    assert v[("regplan_step_info", info)] == 1
    assert v[("regplan_build_info", (("version", __import__("regplan").__version__),))] == 1


@pytest.fixture
def endpoints(metrics: WatchMetrics) -> Iterator[tuple[Endpoints, dict[str, str | None]]]:
    state: dict[str, str | None] = {"why": "initial pass running"}
    server = Endpoints("127.0.0.1:0", metrics=metrics.render, not_ready=lambda: state["why"])
    server.start()
    try:
        yield server, state
    finally:
        server.stop()


def test_health_ready_and_metrics_endpoints(
    endpoints: tuple[Endpoints, dict[str, str | None]],
) -> None:
    server, state = endpoints
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.get("/healthz").status_code == 200
        r = http.get("/readyz")
        assert (r.status_code, r.text) == (503, "not ready: initial pass running\n")
        state["why"] = None
        assert http.get("/readyz").status_code == 200
        assert http.head("/readyz").status_code == 200
        state["why"] = "stopping"
        assert http.get("/readyz").status_code == 503
        r = http.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(r.text)}
        assert {"regplan_runs", "regplan_bytes_copied", "regplan_ready"} <= names
        assert http.get("/nope").status_code == 404


def test_listener_stops_and_frees_its_port(metrics: WatchMetrics) -> None:
    server = Endpoints("127.0.0.1:0", metrics=metrics.render, not_ready=lambda: None)
    server.start()
    url = server.url
    server.stop()  # returns (the suite's timeout detects a hang)
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/healthz", timeout=1)
    again = Endpoints(url.removeprefix("http://"), metrics=metrics.render, not_ready=lambda: None)
    again.start()  # the same port binds again at once
    again.stop()


def test_listen_on_a_busy_port_is_a_clear_error(metrics: WatchMetrics) -> None:
    first = Endpoints("127.0.0.1:0", metrics=metrics.render, not_ready=lambda: None)
    first.start()
    try:
        second = Endpoints(
            first.url.removeprefix("http://"), metrics=metrics.render, not_ready=lambda: None
        )
        with pytest.raises(RegplanError, match=r"cannot listen on 127\.0\.0\.1"):
            second.start()
    finally:
        first.stop()


def test_healthz_fails_while_a_loop_is_stuck(metrics: WatchMetrics) -> None:
    """A liveness probe must restart a process whose scheduler stopped turning."""
    state: dict[str, str | None] = {"why": None}
    server = Endpoints(
        "127.0.0.1:0",
        metrics=metrics.render,
        not_ready=lambda: None,
        not_live=lambda: state["why"],
    )
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            assert http.get("/healthz").status_code == 200
            state["why"] = "scheduler stuck: no heartbeat for 95s"
            r = http.get("/healthz")
            assert (r.status_code, r.text) == (
                503,
                "not live: scheduler stuck: no heartbeat for 95s\n",
            )
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("beats", "why"),
    [
        ({"main loop": 100.0, "scheduler": 95.0}, None),
        ({"main loop": 100.0, "scheduler": 9.0}, "scheduler stuck: no heartbeat for 91s"),
        ({"main loop": 10.0}, None),  # exactly at the limit: still live
        ({"main loop": 9.0, "scheduler": 5.0}, "main loop stuck: no heartbeat for 91s"),
    ],
)
def test_stalled_names_the_first_loop_past_the_limit(
    beats: dict[str, float], why: str | None
) -> None:
    from regplan.watch.server import stalled

    assert stalled(beats, now=100.0, limit=90.0) == why


def test_the_server_is_not_live_when_its_main_loop_stops_turning(tmp_path: Path) -> None:

    from regplan.watch.server import HEARTBEAT_LIMIT
    from tests.watch.embedded import layout_server

    server = layout_server(tmp_path)
    assert server.not_live() is None
    server._beat = time.monotonic() - HEARTBEAT_LIMIT - 5
    assert (server.not_live() or "").startswith("main loop stuck: no heartbeat for 9")
    server._stopping = True  # a long grace period is no reason to restart the pod
    assert server.not_live() is None


def test_a_signal_while_the_main_loop_holds_an_event_lock_is_still_handled(
    tmp_path: Path,
) -> None:
    """A handler runs on the main thread between any two bytecodes: also inside
    `Event.clear()` or while `Event.wait()` re-takes its lock, which the main loop does each
    time a run finishes. Setting that event from the handler then waited for the lock its own
    thread held, and the server answered no signal again (a reload test hung after its 15th
    SIGHUP). The handler only queues; the signals thread acts on it."""
    import signal
    import threading

    from tests.watch.embedded import layout_server

    server = layout_server(tmp_path)

    def main_loop_in_event_clear() -> None:
        with server._wakeup._cond:  # type: ignore[attr-defined]  # as inside Event.clear()
            server._on_signal(signal.SIGHUP, None)  # the handler, at that moment

    handler = threading.Thread(target=main_loop_in_event_clear, daemon=True)
    handler.start()
    handler.join(timeout=10)
    assert not handler.is_alive(), "the signal handler waited for a lock its thread held"
    signals = threading.Thread(target=server._handle_signals, daemon=True)
    signals.start()
    server._signal_queue.put(None)
    signals.join(timeout=10)
    assert server._reload_requested.is_set() and server._wakeup.is_set()
