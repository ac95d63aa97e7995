"""The apply walk's decisions (regplan.apply.schedule), driven without any I/O: which actions
may start, in which order, under `parallel`, shared content, rate-limit gates and failures —
and that the walk looks at each action a bounded number of times (it is O(n log n), not a
rescan of everything ready after every completion)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import replace

from regplan.apply.schedule import CheckGate, Schedule, Start
from regplan.plan.model import BLOB, MANIFEST, TAG, Action


def action(id_: str, kind: str, group: str, deps: Iterable[str] = ()) -> Action:
    return Action(
        id=id_,
        kind=kind,
        reason="create",
        target=f"r/{group}:{id_}",
        digest="sha256:" + "0" * 64,
        media_type="application/vnd.oci.image.layer.v1.tar",
        size=1,
        source="s/x@sha256:" + "0" * 64,
        steps=(0,),
        group=group,
        depends_on=tuple(deps),
    )


def images(count: int, per_repo: int = 10) -> list[Action]:
    """`count` images: a base layer shared per repository (owned by its first image), a config
    and a layer of their own, a manifest, a tag. Five actions per image."""
    out: list[Action] = []
    for i in range(count):
        g = f"t{i}"
        base = f"base{i // per_repo}"
        if i % per_repo == 0:
            out.append(action(base, BLOB, g))
        out += [action(f"c{i}", BLOB, g), action(f"l{i}", BLOB, g)]
        out.append(action(f"m{i}", MANIFEST, g, (base, f"c{i}", f"l{i}")))
        out.append(action(g, TAG, g, (f"m{i}",)))
    return out


class Driver:
    """Runs a schedule to the end, completing started actions first in, first out."""

    def __init__(self, plan: list[Action], parallel: int, **kw: object) -> None:
        self.plan = plan
        self.by_id = {a.id: a for a in plan}
        dependents: dict[str, list[str]] = {a.id: [] for a in plan}
        for a in plan:
            for d in a.depends_on:
                dependents[d].append(a.id)
        needing: dict[str, frozenset[str]] = {}
        for a in reversed(plan):
            needing[a.id] = frozenset({a.group}).union(*(needing[d] for d in dependents[a.id]))
        options: dict[str, object] = {"gated": (), "slots": None}
        options.update(kw)
        self.schedule = Schedule(
            plan,
            {a.id for a in plan},
            hard_deps={a.id: set(a.depends_on) for a in plan},
            dependents=dependents,
            needing_groups=needing,
            parallel=parallel,
            **options,  # type: ignore[arg-type]
        )
        self.order: list[str] = []
        self.max_images = 0

    def run(self, fail: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
        running: deque[str] = deque()
        not_run: list[tuple[str, str]] = []
        while True:
            for work in self.schedule.work(0.0, admit=True):
                assert isinstance(work, Start)
                running.append(work.action_id)
            images = {self.by_id[i].group for i in running}
            self.max_images = max(self.max_images, len(self.schedule.active))
            assert len(self.schedule.active) <= self.schedule.parallel, images
            if not running:
                return not_run
            done = running.popleft()
            self.order.append(done)
            not_run += self.schedule.completed(done, failed=done in fail)


def test_walk_looks_at_each_action_a_bounded_number_of_times() -> None:
    plan = images(4_000)  # 20,400 actions
    driver = Driver(plan, parallel=4)
    driver.run()
    assert sorted(driver.order) == sorted(a.id for a in plan)
    # each action: once when ready, once per image it serves, once per dependency finishing
    edges = sum(len(a.depends_on) for a in plan)
    assert driver.schedule.examined <= 3 * len(plan) + edges
    assert driver.max_images == 4


def test_content_before_manifest_before_tag() -> None:
    plan = images(30, per_repo=7)
    driver = Driver(plan, parallel=3)
    driver.run()
    position = {a: i for i, a in enumerate(driver.order)}
    for a in plan:
        for d in a.depends_on:
            assert position[d] < position[a.id], (d, a.id)


def test_images_get_slots_in_plan_order_and_finish_before_the_next() -> None:
    plan = images(5)
    driver = Driver(plan, parallel=1)
    driver.run()
    tags = [i for i in driver.order if i.startswith("t")]
    assert tags == ["t0", "t1", "t2", "t3", "t4"]
    # with one slot, no action of the next image starts before the tag of the previous one
    for n in range(4):
        assert driver.order.index(f"t{n}") < driver.order.index(f"c{n + 1}")


def test_shared_content_owned_by_a_waiting_image_starts_for_the_active_one() -> None:
    # t1's manifest needs base0, owned by t0; t1 is first in the plan, so it holds the only slot
    plan = [
        action("c1", BLOB, "t1"),
        action("base0", BLOB, "t0"),
        action("m1", MANIFEST, "t1", ("c1", "base0")),
        action("t1", TAG, "t1", ("m1",)),
        action("m0", MANIFEST, "t0", ("base0",)),
        action("t0", TAG, "t0", ("m0",)),
    ]
    driver = Driver(plan, parallel=1)
    driver.run()
    assert driver.order.index("base0") < driver.order.index("t1") < driver.order.index("m0")


def test_a_failure_fails_what_hard_depends_on_it_and_nothing_else() -> None:
    plan = images(3, per_repo=3)
    driver = Driver(plan, parallel=2)
    not_run = driver.run(fail=frozenset({"l1"}))
    assert sorted(not_run) == [("m1", "l1"), ("t1", "m1")]
    assert "t0" in driver.order and "t2" in driver.order


def test_a_gated_image_asks_before_it_gets_a_slot_and_waits_without_one() -> None:
    plan = images(2)
    slots = threading.Semaphore(1)
    schedule = Driver(plan, parallel=1, gated=("t0",), slots=slots).schedule
    assert schedule.work(0.0, admit=True) == [CheckGate("t0")]
    assert not slots.acquire(blocking=False)  # the slot is reserved while asking
    schedule.gate_checked("t0", retry_at=10.0)
    assert slots.acquire(blocking=False)  # and given back while the image waits
    slots.release()
    started = schedule.work(1.0, admit=True)  # t1 goes first meanwhile, with the shared base
    assert {w.action_id for w in started if isinstance(w, Start)} == {"base0", "c1", "l1"}
    assert schedule.timeout(1.0) == 9.0
    for w in started:
        assert isinstance(w, Start)
        schedule.completed(w.action_id, failed=False)
    for i in ("m1", "t1"):
        assert schedule.work(2.0, admit=True) == [Start(i)]
        schedule.completed(i, failed=False)
    assert schedule.work(5.0, admit=True) == []  # still before `retry`
    assert schedule.work(10.0, admit=True) == [CheckGate("t0")]
    schedule.gate_checked("t0", retry_at=None)
    assert {w.action_id for w in schedule.work(10.0, admit=True) if isinstance(w, Start)} == {
        "c0",
        "l0",
    }


def test_draining_starts_no_new_image_but_finishes_the_active_one() -> None:
    plan = images(2)
    schedule = Driver(plan, parallel=1).schedule
    first = schedule.work(0.0, admit=True)
    assert {w.action_id for w in first if isinstance(w, Start)} == {"base0", "c0", "l0"}
    for w in first:
        assert isinstance(w, Start)
        schedule.completed(w.action_id, failed=False)
    assert schedule.work(0.0, admit=False) == [Start("m0")]
    schedule.completed("m0", failed=False)
    assert schedule.work(0.0, admit=False) == [Start("t0")]
    schedule.completed("t0", failed=False)
    assert schedule.work(0.0, admit=False) == []  # t1 would need a new slot
    assert schedule.waiting


def test_images_take_target_registries_in_turn() -> None:
    # a plan lists its images target by target; each registry allows only a few requests at
    # once, so the walk gives the registries slots in turn instead of one after the other
    plan: list[Action] = []
    for registry in ("a.example", "b.example", "c.example"):
        for i in range(4):
            g, target = f"{registry}/{i}", f"{registry}/r:{i}"
            plan.append(replace(action(f"{g}/l", BLOB, g), target=target))
            plan.append(replace(action(g, TAG, g, (f"{g}/l",)), target=target))
    driver = Driver(plan, parallel=1)
    driver.run()
    tagged = [i.partition("/")[0] for i in driver.order if not i.endswith("/l")]
    assert tagged == ["a.example", "b.example", "c.example"] * 4
