"""The applier levers `watch` relies on, on OCI Layouts (no server needed):
- `drain` (shutdown grace period): images already started finish, no new image starts;
- `cancel`: a copy stops and its tag is never pushed;
- `slots`: several applies share one `defaults.parallel` bound;
- rate limits: an image waits `retry` without holding a slot, a cancel ends the wait at once,
  and every deferral is reported through `on_rate_limit_delay`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from regplan.apply.applier import ApplyOptions, apply_plan
from regplan.apply.result import ApplyResult
from regplan.cancel import CancelToken
from regplan.config.model import Config, Defaults, RateLimit, SyncStep, TagFilter
from regplan.plan.model import Plan
from regplan.plan.planner import PlanOptions, make_plan
from regplan.registry.client import RegistryClient
from tests.watch.hooked import HookedClient, layout_tags

pytestmark = pytest.mark.timeout(30)


def config(*steps: SyncStep) -> Config:
    return Config("t.yml", "sha256:" + "0" * 64, 1, (), Defaults(), tuple(steps))


def step(index: int, source: str, target: str, type_: str = "image", **kw: object) -> SyncStep:
    return SyncStep(index=index, line=0, source=source, target=target, type=type_, **kw)  # type: ignore[arg-type]


class CountingSemaphore(threading.Semaphore):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self._count_lock = threading.Lock()
        self.in_use = 0
        self.max_in_use = 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        got = super().acquire(blocking, timeout)
        if got:
            with self._count_lock:
                self.in_use += 1
                self.max_in_use = max(self.max_in_use, self.in_use)
        return got

    def release(self, n: int = 1) -> None:
        with self._count_lock:
            self.in_use -= n
        super().release(n)


@pytest.fixture
def src(ocidir_copy: Path) -> Path:
    return ocidir_copy / "testrepo"


def repo_plan(client: RegistryClient, src: Path, dst: Path, allow: tuple[str, ...]) -> Plan:
    cfg = config(
        step(0, f"ocidir://{src}", f"ocidir://{dst}", "repository", tags=TagFilter(allow=allow))
    )
    return make_plan(cfg, client, PlanOptions(log_decisions=False))


def image_plan(client: RegistryClient, src: Path, tag: str, dst: Path) -> Plan:
    cfg = config(step(0, f"ocidir://{src}:{tag}", f"ocidir://{dst}:{tag}"))
    return make_plan(cfg, client, PlanOptions(log_decisions=False))


def statuses(result: ApplyResult, kind: str) -> list[tuple[str, str, str]]:
    return sorted(
        (r.action.target, r.status, r.detail) for r in result.results if r.action.kind == kind
    )


def test_drain_finishes_the_started_image_and_starts_no_other(src: Path, tmp_path: Path) -> None:
    client = HookedClient()
    dst = tmp_path / "dst"
    plan = repo_plan(client, src, dst, ("v1", "v2", "v3"))
    drain = threading.Event()
    client.on_blob_put.append(lambda ref: drain.set())  # SIGTERM arrives during the first copy
    result = apply_plan(plan, client, ApplyOptions(parallel=1, drain=drain))

    tags = statuses(result, "tag")
    done = [t for t in tags if t[1] == "done"]
    assert len(done) == 1, tags  # the image that had started got its tag
    assert all(
        t[1] == "not-run" and t[2] == "not started: stopping" for t in tags if t[1] != "done"
    )
    assert not any(r.status == "failed" for r in result.results)
    tag = done[0][0].rsplit(":", 1)[1]
    assert layout_tags(dst) == {tag: layout_tags(src)[tag]}


def test_cancel_stops_a_copy_and_never_pushes_its_tag(src: Path, tmp_path: Path) -> None:
    client = HookedClient()
    dst = tmp_path / "dst"
    plan = image_plan(client, src, "v1", dst)
    cancel = CancelToken()
    client.on_blob_put.append(lambda ref: cancel.cancel())
    result = apply_plan(plan, client, ApplyOptions(parallel=1, cancel=cancel))

    assert not result.ok
    assert any(r.status == "failed" and "canceled" in r.detail for r in result.results)
    [(target, status, _)] = statuses(result, "tag")
    assert (target, status) == (f"ocidir://{dst}:v1", "not-run")
    assert layout_tags(dst) == {}


def test_shared_slots_bound_images_across_applies(src: Path, tmp_path: Path) -> None:
    client = HookedClient()
    slots = CountingSemaphore(1)
    plans = [
        repo_plan(client, src, tmp_path / "a", ("v1", "v2")),
        repo_plan(client, src, tmp_path / "b", ("v2", "v3")),
    ]
    results: list[ApplyResult] = []

    def apply(plan: Plan) -> None:
        results.append(apply_plan(plan, client, ApplyOptions(parallel=2, slots=slots)))

    threads = [threading.Thread(target=apply, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert [r.ok for r in results] == [True, True]
    assert slots.max_in_use == 1
    assert slots.in_use == 0  # every slot given back
    assert set(layout_tags(tmp_path / "a")) == {"v1", "v2"}
    assert set(layout_tags(tmp_path / "b")) == {"v2", "v3"}


def test_rate_limit_wait_releases_the_slot_and_ends_on_cancel(src: Path, tmp_path: Path) -> None:
    client = HookedClient()
    v1 = layout_tags(src)["v1"]
    client.remaining[v1] = 3  # below min: v1 must wait `retry` (5 minutes)
    slots = CountingSemaphore(1)
    cancel = CancelToken()
    delays: list[tuple[str, int]] = []
    waiting_plan = image_plan(client, src, "v1", tmp_path / "waits")
    limits = {0: RateLimit(min=10, retry=300)}
    waiting: list[ApplyResult] = []

    def apply_waiting() -> None:
        options = ApplyOptions(
            slots=slots,
            cancel=cancel,
            ratelimits=limits,
            on_rate_limit_delay=lambda source, remaining: delays.append((source, remaining)),
        )
        waiting.append(apply_plan(waiting_plan, client, options))

    thread = threading.Thread(target=apply_waiting)
    thread.start()
    deadline = time.monotonic() + 10
    while not delays and time.monotonic() < deadline:
        time.sleep(0.01)
    assert delays and delays[0][1] == 3 and v1 in delays[0][0]

    # Another step's copy gets the only slot while v1 waits.
    other = apply_plan(
        image_plan(client, src, "v2", tmp_path / "other"), client, ApplyOptions(slots=slots)
    )
    assert other.ok

    cancel.cancel()
    thread.join(30)  # a hang detector; "cancelled" below shows the wait ended by the cancel
    assert not thread.is_alive()
    assert statuses(waiting[0], "tag") == [
        (f"ocidir://{tmp_path / 'waits'}:v1", "not-run", "cancelled")
    ]
    assert slots.in_use == 0
    assert len(delays) == 1  # deferred once, not re-checked before `retry`


def test_rate_limit_is_checked_again_after_retry(src: Path, tmp_path: Path) -> None:
    client = HookedClient()
    v1 = layout_tags(src)["v1"]
    client.remaining[v1] = 3
    delays: list[int] = []

    def delayed(source: str, remaining: int) -> None:
        delays.append(remaining)
        client.remaining[v1] = 50  # the limit window resets while we wait

    started = time.monotonic()
    result = apply_plan(
        image_plan(client, src, "v1", tmp_path / "d"),
        client,
        ApplyOptions(ratelimits={0: RateLimit(min=10, retry=0.3)}, on_rate_limit_delay=delayed),
    )
    assert result.ok and delays == [3]
    assert time.monotonic() - started >= 0.3
    assert layout_tags(tmp_path / "d") == {"v1": v1}
