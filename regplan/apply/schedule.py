"""Which plan actions may start now: the apply walk's decisions, apart from its I/O.

Each image (an action `group`) holds one of `parallel` slots while it is copied. An action may
start once its needed dependencies have finished and one of the images it serves (its own, or
one of its dependents' — shared content) holds a slot. A new image gets a slot in the order
its first action became ready, taking target registries in turn: a plan lists its images
target by target, and each registry allows only a few requests at once (`reqConcurrent`), so
admitting in plan order would keep one registry busy while the others idle. One with a
rate-limit gate gets its slot only after the walk has asked its source (`CheckGate`), and waits
`retry` without a slot when the source is low.

Every action is looked at O(1) times plus once per image it serves, with heap operations for
the admission order: the walk is O(n log n) in actions, not a rescan of everything ready after
every completion.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from regplan.plan.model import Action


@dataclass(frozen=True)
class Start:
    """Run this action now."""

    action_id: str


@dataclass(frozen=True)
class CheckGate:
    """Ask this image's source for its remaining pulls; answer with `Schedule.gate_checked`."""

    group: str


Work = Start | CheckGate


class Schedule:
    """The walk's state: owned by one thread, does no I/O besides non-blocking `slots`."""

    def __init__(
        self,
        actions: Sequence[Action],
        needed: set[str],
        *,
        hard_deps: Mapping[str, set[str]],
        dependents: Mapping[str, list[str]],
        needing_groups: Mapping[str, frozenset[str]],
        gated: Iterable[str],
        parallel: int,
        slots: threading.Semaphore | None,
    ) -> None:
        self.group = {a.id: a.group for a in actions if a.id in needed}
        self.hard_deps = hard_deps
        self.dependents = dependents
        self.needing = needing_groups
        self.gates = frozenset(gated)
        self.parallel = max(1, parallel)
        self.slots = slots
        self.unmet: dict[str, int] = {}
        self.left: dict[str, int] = {}  # per image: needed actions of its own not finished
        self.closed: set[str] = set()  # started, or finished without running
        self.parked: set[str] = set()  # ready, waiting for one of its images to get a slot
        self.queues: dict[str, list[str]] = {}  # image -> parked actions that serve it
        # heap of (the image's turn on its target registry, ready order, parked action)
        self.pending: list[tuple[int, int, str]] = []
        self.registry: dict[str, str] = {}  # image -> its target registry
        self.turn: dict[str, int] = {}  # image -> its turn among its registry's images
        self.turns: dict[str, int] = {}  # registry -> images given a turn so far
        self.runnable: list[str] = []  # ready and served by an active image
        self.active: set[str] = set()
        self.held: set[str] = set()  # images holding one of the shared `slots`
        self.checking: set[str] = set()  # images whose gate is being asked (slot reserved)
        self.deferred: dict[str, list[tuple[int, int, str]]] = {}  # image -> entries, gated
        self.gated_until: dict[str, float] = {}
        self.expiries: list[tuple[float, str]] = []  # heap of (gate opens again, image)
        self.blocked = False  # a shared slot was busy: look again soon
        self.examined = 0  # times an action was looked at: the walk's cost, kept linear
        self._order = 0
        for a in actions:
            if a.id not in needed:
                continue
            self.unmet[a.id] = len({d for d in a.depends_on if d in needed})
            self.registry.setdefault(a.group, _registry(a.target))
            self.left[a.group] = self.left.get(a.group, 0) + 1
        for a in actions:  # plan order is dependency order
            if a.id in needed and self.unmet[a.id] == 0:
                self._ready(a.id)

    # -- what the walk asks ------------------------------------------------------------------
    @property
    def waiting(self) -> bool:
        """Ready actions not started yet (runnable, or waiting for a slot or a gate)."""
        return bool(self.runnable or self.parked)

    def work(self, now: float, *, admit: bool) -> list[Work]:
        """What to start now. `admit=False` (draining) gives no new image a slot."""
        while self.expiries and self.expiries[0][0] <= now:
            _, group = heapq.heappop(self.expiries)
            for entry in self.deferred.pop(group, ()):
                heapq.heappush(self.pending, entry)
        out: list[Work] = [Start(i) for i in self.runnable]
        self.runnable = []
        if admit:
            self._admit(now, out)
        return out

    def timeout(self, now: float) -> float | None:
        """How long the walk may wait for a completion before calling `work` again."""
        timeout = None
        if self.expiries:
            timeout = max(0.0, self.expiries[0][0] - now)
        if self.blocked:
            timeout = min(timeout, _POLL) if timeout is not None else _POLL
        self.blocked = False
        return timeout

    # -- what the walk reports ---------------------------------------------------------------
    def completed(self, action_id: str, *, failed: bool) -> list[tuple[str, str]]:
        """Record a finished action. Returns (action, failed dependency) for every action that
        will not run because a hard dependency failed."""
        not_run: list[tuple[str, str]] = []
        stack = [(action_id, failed)]
        while stack:
            done, bad = stack.pop()
            self._close_group(self.group[done])
            for dependent in self.dependents[done]:
                self.examined += 1
                if dependent not in self.unmet or dependent in self.closed:
                    continue
                self.unmet[dependent] -= 1
                if bad and done in self.hard_deps[dependent]:
                    self.closed.add(dependent)
                    self.parked.discard(dependent)
                    not_run.append((dependent, done))
                    stack.append((dependent, True))
                elif self.unmet[dependent] == 0:
                    self._ready(dependent)
        return not_run

    def gate_checked(self, group: str, *, retry_at: float | None) -> None:
        """The answer to `CheckGate`: `retry_at` None lets the image in, else it waits."""
        self.checking.discard(group)
        if retry_at is None:
            self.gated_until.pop(group, None)
            if self.left.get(group, 0) > 0:
                self._activate(group)
                return
        else:
            self.gated_until[group] = retry_at
            heapq.heappush(self.expiries, (retry_at, group))
        self._release(group)

    def release_all(self) -> None:
        for group in list(self.held):
            self._release(group)

    # -- inside ------------------------------------------------------------------------------
    def _ready(self, action_id: str) -> None:
        self.examined += 1
        if not self.active.isdisjoint(self.needing[action_id]):
            self.runnable.append(action_id)
            self.closed.add(action_id)
            return
        self.parked.add(action_id)
        for group in self.needing[action_id]:
            self.queues.setdefault(group, []).append(action_id)
        heapq.heappush(self.pending, (self._turn(self.group[action_id]), self._order, action_id))
        self._order += 1

    def _turn(self, group: str) -> int:
        turn = self.turn.get(group)
        if turn is None:
            registry = self.registry.get(group, "")
            turn = self.turn[group] = self.turns.get(registry, 0)
            self.turns[registry] = turn + 1
        return turn

    def _admit(self, now: float, out: list[Work]) -> None:
        while self.pending and len(self.active) + len(self.checking) < self.parallel:
            entry = heapq.heappop(self.pending)
            action_id = entry[2]
            self.examined += 1
            if action_id not in self.parked:
                continue  # started meanwhile for another image it serves
            group = self.group[action_id]
            if group in self.checking or now < self.gated_until.get(group, now):
                self.deferred.setdefault(group, []).append(entry)
                continue
            if self.slots is not None:
                if not self.slots.acquire(blocking=False):
                    heapq.heappush(self.pending, entry)
                    self.blocked = True
                    return
                self.held.add(group)
            if group in self.gates:
                self.checking.add(group)
                self.deferred.setdefault(group, []).append(entry)
                out.append(CheckGate(group))
            else:
                self._activate(group)
        out.extend(Start(i) for i in self.runnable)
        self.runnable = []

    def _activate(self, group: str) -> None:
        self.active.add(group)
        self.deferred.pop(group, None)
        for action_id in self.queues.pop(group, ()):
            self.examined += 1
            if action_id in self.parked:
                self.parked.discard(action_id)
                self.closed.add(action_id)
                self.runnable.append(action_id)

    def _close_group(self, group: str) -> None:
        self.left[group] -= 1
        if self.left[group] == 0:
            self._release(group)

    def _release(self, group: str) -> None:
        self.active.discard(group)
        if group in self.held:
            self.held.discard(group)
            if self.slots is not None:
                self.slots.release()


def _registry(target: str) -> str:
    """The registry part of a target reference (a layout's path is one registry)."""
    return target.partition("/")[0]


_POLL = 0.1  # seconds between looks at shared slots another apply may free
