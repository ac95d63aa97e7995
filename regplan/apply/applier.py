"""The applier: execute a plan's actions in dependency order with bounded parallelism.

Before writing anything it checks that every tag the plan moves is still where the plan found
it (or already where the plan puts it, after an interrupted apply) — otherwise the whole plan
is refused as stale. Then it walks the graph: at most `parallel` images at once, content
before manifests, manifests before tags, so no tag ever points at an incomplete image. A
failed action fails what hard-depends on it and nothing else; by default no new work starts
after the first failure (`keep_going` continues with independent actions).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from regplan import collector, logs
from regplan.apply.copy import BlobCopier, Transfer, pinned_manifest, push_manifest, push_tag
from regplan.apply.delete import delete_tag
from regplan.apply.lookups import look_up
from regplan.apply.result import ActionResult, ApplyResult
from regplan.apply.schedule import CheckGate, Schedule
from regplan.apply.status import ActionStatus
from regplan.cancel import CancelToken, bind, bound, run_pool
from regplan.config.model import RateLimit
from regplan.errors import CancelledError, RegplanError, StalePlanError
from regplan.plan import model
from regplan.plan.model import Action, Plan
from regplan.refs import SCHEME_OCIDIR, ImageRef
from regplan.registry.api import Backend

log = logs.get(__name__)
T = TypeVar("T")

DONE = ActionStatus.DONE
SKIPPED = ActionStatus.SKIPPED
FAILED = ActionStatus.FAILED
NOT_RUN = ActionStatus.NOT_RUN
_POLL = 0.1  # seconds between looks at cancel/drain/shared slots while nothing completes


@dataclass(frozen=True)
class ApplyOptions:
    parallel: int = 1  # images copied at once (defaults.parallel)
    keep_going: bool = False
    verify_state: bool = (
        True  # stale check and target re-checks; off only for a plan made moments ago
    )
    ratelimits: Mapping[int, RateLimit] = field(default_factory=dict)  # by step index
    cancel: CancelToken | None = None  # the run's stop: copies in flight end between chunks
    workers_per_image: int = 4  # concurrent transfers within one image (layers)
    # Soft stop (watch's shutdown grace period): start no new image, finish the ones started.
    drain: threading.Event | None = None
    # Image slots shared with other applies running at the same time (watch runs steps
    # concurrently under one `defaults.parallel`); each image holds one while it is copied.
    slots: threading.Semaphore | None = None
    # Called with (source, remaining pulls) each time an image is deferred for its rate limit.
    on_rate_limit_delay: Callable[[str, int], None] | None = None
    # Called, on the walking thread, with each action's result as it is settled (done,
    # skipped, failed, or not run because a dependency failed): progress and result lines.
    on_result: Callable[[ActionResult], None] | None = None


def preflight(plan: Plan, client: Backend, workers: int = 8) -> set[str]:
    """Read the target state the plan depends on, before anything is written.

    HEADs every tag the plan moves and lists the referrers it adds. Returns the ids of actions
    already done (an interrupted apply); raises StalePlanError, listing what moved, if any tag
    is neither where the plan found it nor where the plan puts it."""
    tag_actions = [a for a in plan.actions if a.kind in model.TAG_KINDS]
    subjects = sorted(
        {(a.target.split("@", 1)[0], a.subject) for a in plan.actions if a.kind == model.REFERRER}
    )

    def current(ref: ImageRef) -> str | None:
        head = client.manifest_head(ref)
        return head.digest if head else None

    def listed(repo_subject: tuple[str, str]) -> set[str]:
        repo, subject = repo_subject
        return {d.digest for d in client.referrers(ImageRef.parse(repo), subject)}

    now = look_up(current, [ImageRef.parse(a.target) for a in tag_actions], workers, "preflight")
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="preflight") as pool:
        referrers = dict(zip(subjects, pool.map(listed, subjects), strict=True))
    done: set[str] = set()
    moved: list[str] = []
    for action, digest in zip(tag_actions, now, strict=True):
        if digest == action.digest:
            done.add(action.id)
        elif digest != action.before:
            was = action.before[:19] if action.before else "absent"
            moved.append(f"{action.target} was {was}, now {digest[:19] if digest else 'absent'}")
    deletes = [a for a in plan.actions if a.kind == model.DELETE]
    gone = look_up(current, [ImageRef.parse(a.target) for a in deletes], workers, "preflight")
    for action, digest in zip(deletes, gone, strict=True):
        if digest is None:
            done.add(action.id)  # deleted already: an interrupted apply
        elif digest != action.before:
            was = str(action.before)[:19]
            moved.append(f"{action.target} was {was} (to delete), now {digest[:19]}")
    if moved:
        raise StalePlanError(moved)
    for action in plan.actions:
        if (
            action.kind == model.REFERRER
            and action.digest in referrers[(action.target.split("@", 1)[0], action.subject)]
        ):
            done.add(action.id)
    return done


class _Run:
    """One execution of a plan: the scheduler state, owned by the calling thread."""

    def __init__(
        self,
        plan: Plan,
        client: Backend,
        options: ApplyOptions,
        on_progress: Callable[[str, int], None] | None,
    ) -> None:
        self.plan = plan
        self.client = client
        self.options = options
        self.on_progress = on_progress
        self.actions = {a.id: a for a in plan.actions}
        self.results = {a.id: ActionResult(a) for a in plan.actions}
        self.hard_deps: dict[str, set[str]] = {a.id: set() for a in plan.actions}
        self.dependents: dict[str, list[str]] = {a.id: [] for a in plan.actions}
        for a in plan.actions:
            for dep in a.depends_on:
                if dep not in self.actions:
                    raise RegplanError(f"plan action {a.id} depends on unknown action {dep}")
                self.dependents[dep].append(a.id)
                if self._is_hard(self.actions[dep], a):
                    self.hard_deps[a.id].add(dep)
        for a in plan.actions:
            if a.kind != model.BLOB:
                # a pinned manifest that is not what its digest says fails the whole plan here,
                # before blobs are copied for it (the integrity digest is no signature: a
                # crafted plan can carry a valid one)
                pinned_manifest(a)
        self.needing_groups = self._needing_groups()
        self._gates = self._rate_limit_gates()
        self.copier = BlobCopier(client, cancel=options.cancel)
        self.completions: queue.Queue[tuple[str, ActionStatus, str, int, float] | _GateAnswer] = (
            queue.Queue()
        )

    def _needing_groups(self) -> dict[str, frozenset[str]]:
        """Every image an action serves: its own and those of everything that depends on it.
        Shared content may start for any of them, so one image slot never waits on another."""
        out: dict[str, frozenset[str]] = {}
        for action in reversed(self.plan.actions):
            groups = {action.group}
            for dependent in self.dependents[action.id]:
                groups |= out[dependent]
            out[action.id] = frozenset(groups)
        return out

    @staticmethod
    def _is_hard(dep: Action, action: Action) -> bool:
        # referrers and digest tags come before the tag by preference ("tag last"), not need
        return not (dep.kind in (model.REFERRER, model.DIGEST_TAG) and action.kind == model.TAG)

    # -- what still needs doing -------------------------------------------------------------
    def needed(self, done_tags: set[str]) -> set[str]:
        """Actions to run: tags not yet done, referrers (cheap, idempotent), and content
        some needed action hard-depends on."""
        needed: set[str] = set()
        for action in reversed(self.plan.actions):  # dependents come after their dependencies
            if action.kind in model.TAG_KINDS:
                if action.id not in done_tags:
                    needed.add(action.id)
            elif action.kind == model.REFERRER or any(
                d in needed and action.id in self.hard_deps[d] for d in self.dependents[action.id]
            ):
                needed.add(action.id)
        for action in self.plan.actions:  # plan order: result lines come out in a stable order
            if action.id not in needed:
                self.results[action.id].status = SKIPPED
                self.results[action.id].detail = "already applied"
                self.settled(self.results[action.id])
        return needed

    def settled(self, result: ActionResult) -> None:
        if self.options.on_result is not None:
            self.options.on_result(result)

    # -- doing one action -------------------------------------------------------------------
    def execute(self, action: Action) -> Transfer:
        check = self.options.verify_state
        if action.kind == model.BLOB:
            report = self.on_progress
            progress = (lambda n: report(action.group, n)) if report is not None else None
            return self.copier.copy(action, check_target=check, progress=progress)
        cancel = self.options.cancel
        if action.kind in (model.MANIFEST, model.REFERRER):
            return push_manifest(self.client, action, check_target=check, cancel=cancel)
        if action.kind == model.BACKUP:
            log.info("Saving backup", original=action.source, backup=action.target)
        return push_tag(self.client, action, cancel=cancel)

    def worker(self, action: Action) -> None:
        started = time.monotonic()
        try:
            if self.options.cancel is not None and self.options.cancel.cancelled:
                raise CancelledError("task was canceled")
            transfer = self.execute(action)
            self.completions.put(
                (
                    action.id,
                    transfer.status,
                    transfer.detail,
                    transfer.bytes,
                    time.monotonic() - started,
                )
            )
        except RegplanError as e:
            self.completions.put((action.id, FAILED, str(e), 0, time.monotonic() - started))
        except Exception as e:  # an unexpected failure still fails only this action
            log.debug("Unexpected error", action=action.id, error=repr(e))
            self.completions.put(
                (action.id, FAILED, f"{type(e).__name__}: {e}", 0, time.monotonic() - started)
            )

    # -- the walk ---------------------------------------------------------------------------
    def walk(self, needed: set[str]) -> None:
        _Walk(self, needed).execute()

    def gated_groups(self) -> frozenset[str]:
        return frozenset(self._gates)

    def rate_limit_of(self, group: str) -> tuple[RateLimit, Action] | None:
        """The step's ratelimit that gates an image, and the action whose source to check."""
        return self._gates.get(group)

    def _rate_limit_gates(self) -> dict[str, tuple[RateLimit, Action]]:
        gates: dict[str, tuple[RateLimit, Action]] = {}
        tops: dict[str, Action] = {}
        for a in self.plan.actions:
            if a.group not in tops or (
                a.kind in model.TAG_KINDS and tops[a.group].kind not in model.TAG_KINDS
            ):
                tops[a.group] = a
        for a in self.plan.actions:
            limit = next(
                (
                    self.options.ratelimits[s]
                    for s in a.steps
                    if s in self.options.ratelimits and self.options.ratelimits[s].min > 0
                ),
                None,
            )
            if limit is not None and a.group not in gates:
                gates[a.group] = (limit, tops[a.group])
        return gates


@dataclass(frozen=True)
class _GateAnswer:
    """What an image's source said about its remaining pulls (None: no limit reported)."""

    group: str
    remaining: int | None


_LAYOUT_PREFIX = f"{SCHEME_OCIDIR}://"


def _between_layouts(actions: Sequence[model.Action]) -> bool:
    """Whether every action reads from and writes to OCI Layouts only. Their I/O is local
    and short: threads walking them hand the GIL to each other at every file operation,
    and a 10,000-action walk took a third more CPU on 16 threads than on one."""
    return bool(actions) and all(
        a.target.startswith(_LAYOUT_PREFIX)
        and (not a.source or a.source.startswith(_LAYOUT_PREFIX))
        for a in actions
    )


class _InlinePool(Executor):
    """Runs each submitted call at once on the walk's own thread, under the run's token."""

    def __init__(self, token: CancelToken | None) -> None:
        self._token = token
        self._outer: CancelToken | None = None  # the thread's own token, given back on exit

    def __enter__(self) -> _InlinePool:
        self._outer = bound()
        bind(self._token)
        return self

    def __exit__(self, *exc: object) -> None:
        bind(self._outer)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        done: Future[T] = Future()
        done.set_result(fn(*args, **kwargs))
        return done


class _Walk:
    """The dependency walk of one apply: start what the schedule says, record what
    completes, stop starting new work when told to. Network I/O (the copies and the
    rate-limit HEADs) runs on the pool, never on this loop's thread; a plan between OCI
    Layouts only does its file operations on this thread, one action at a time."""

    def __init__(self, run: _Run, needed: set[str]) -> None:
        self.run = run
        self.options = run.options
        self.needed = needed
        self.schedule = Schedule(
            run.plan.actions,
            needed,
            hard_deps=run.hard_deps,
            dependents=run.dependents,
            needing_groups=run.needing_groups,
            gated=run.gated_groups(),
            parallel=self.options.parallel,
            slots=self.options.slots,
        )
        self.answers = run.completions
        self.running = 0
        self.stopping = False

    def _gate_remaining(self, group: str) -> None:
        gate = self.run.rate_limit_of(group)
        assert gate is not None  # only gated images are checked
        top = gate[1]
        remaining = None
        try:
            head = self.run.client.manifest_head(ImageRef.parse(top.source))
            remaining = head.rate_limit.remaining if head and head.rate_limit else None
        except RegplanError as e:
            log.error("rate limit check failed", source=top.source, error=str(e))
        except Exception as e:  # the copy itself will report the problem
            log.debug("Unexpected error", source=top.source, error=repr(e))
        self.answers.put(_GateAnswer(group, remaining))

    def _gate_answered(self, answer: _GateAnswer) -> None:
        """regsync's ratelimit.min: while the source reports fewer remaining pulls than the
        step's minimum, the image waits `retry` and asks again."""
        self.running -= 1
        gate = self.run.rate_limit_of(answer.group)
        assert gate is not None
        limit, top = gate
        remaining = answer.remaining
        if self.stopping or remaining is None or remaining >= limit.min:
            if not self.stopping:
                log.debug("Rate limit passed", source=top.source)
            self.schedule.gate_checked(answer.group, retry_at=None)
            return
        log.info(
            "Delaying for rate limit",
            source=top.source,
            **{"source-remain": remaining, "step-min": limit.min, "sleep": f"{limit.retry:g}s"},
        )
        self.schedule.gate_checked(answer.group, retry_at=time.monotonic() + limit.retry)
        if self.options.on_rate_limit_delay is not None:
            self.options.on_rate_limit_delay(top.source, remaining)

    def _start(self, pool: Executor, *, draining: bool) -> None:
        for work in self.schedule.work(time.monotonic(), admit=not draining):
            self.running += 1
            if isinstance(work, CheckGate):
                pool.submit(self._gate_remaining, work.group)
            else:
                pool.submit(self.run.worker, self.run.actions[work.action_id])

    def _completed(
        self, action_id: str, status: ActionStatus, detail: str, nbytes: int, seconds: float
    ) -> None:
        self.running -= 1
        result = self.run.results[action_id]
        result.status, result.detail = status, detail
        result.bytes, result.seconds = nbytes, seconds
        self.run.settled(result)
        if status == FAILED:
            action = self.run.actions[action_id]
            log.error(
                "Failed to apply action",
                action=action_id,
                kind=action.kind,
                target=action.target,
                error=detail,
            )
            if not self.options.keep_going:
                self.stopping = True
        for dependent, cause in self.schedule.completed(action_id, failed=status == FAILED):
            skipped = self.run.results[dependent]
            skipped.status, skipped.detail = NOT_RUN, f"dependency {cause} failed"
            self.run.settled(skipped)

    def _timeout(self) -> float | None:
        timeout = self.schedule.timeout(time.monotonic())
        if timeout is not None and (
            self.options.cancel is not None or self.options.drain is not None
        ):
            timeout = min(timeout, _POLL)  # a rate-limit wait ends on cancel/drain
        return timeout

    def _pool(self) -> AbstractContextManager[Executor]:
        if _between_layouts(self.run.plan.actions):
            # no latency to hide: every handoff to a worker thread (a future, a queue put, a
            # GIL switch) cost more than the file operations it carried out
            return _InlinePool(self.options.cancel)
        options = self.options
        workers = max(1, options.parallel) * max(1, options.workers_per_image)
        return run_pool(workers, "apply", options.cancel)

    def execute(self) -> None:
        options = self.options
        with self._pool() as pool:
            while True:
                if options.cancel is not None and options.cancel.cancelled:
                    self.stopping = True
                draining = options.drain is not None and options.drain.is_set()
                if not self.stopping:
                    self._start(pool, draining=draining)
                if self.running == 0 and (self.stopping or draining or not self.schedule.waiting):
                    break
                timeout = self._timeout()
                if self.running == 0 and timeout is None:
                    break  # nothing runs and nothing can start: never wait forever
                try:
                    answer = self.answers.get(timeout=timeout)
                except queue.Empty:
                    continue
                if isinstance(answer, _GateAnswer):
                    self._gate_answered(answer)
                else:
                    self._completed(*answer)
        self.schedule.release_all()
        # the walk's own cost, which must stay linear in the actions (a quadratic walk once
        # took minutes for plans of thousands of actions)
        log.debug("Walk finished", actions=len(self.needed), examined=self.schedule.examined)
        for action_id in self.needed:
            result = self.run.results[action_id]
            if result.status == NOT_RUN and not result.detail:
                if options.cancel is not None and options.cancel.cancelled:
                    result.detail = "cancelled"
                elif options.drain is not None and options.drain.is_set():
                    result.detail = "not started: stopping"
                else:
                    result.detail = "not started after an earlier failure"


def _run_deletes(deletes: list[Action], run: _Run, done: set[str]) -> dict[str, ActionResult]:
    """Deletes run last, and only for steps whose every create and update succeeded."""
    failed_steps = {
        step
        for r in run.results.values()
        if r.status in (FAILED, NOT_RUN)
        for step in r.action.steps
    }
    options = run.options
    out = {a.id: ActionResult(a) for a in deletes}
    stopping = False
    for action in deletes:
        result = out[action.id]
        stopping = (
            stopping
            or (options.cancel is not None and options.cancel.cancelled)
            or (options.drain is not None and options.drain.is_set())
        )
        if action.id in done:
            result.status, result.detail = SKIPPED, "already applied"
        elif failed_steps & set(action.steps):
            result.detail = "not deleted: the step's copies did not all succeed"
        elif stopping:
            result.detail = "not started: stopping"
        else:
            started = time.monotonic()
            try:
                transfer = delete_tag(run.client, action)
                result.status, result.detail = transfer.status, transfer.detail
            except RegplanError as e:
                log.error(
                    "Failed to apply action",
                    action=action.id,
                    kind=action.kind,
                    target=action.target,
                    error=str(e),
                )
                result.status, result.detail = FAILED, str(e)
                stopping = not options.keep_going
            result.seconds = time.monotonic() - started
    return out


def apply_plan(
    plan: Plan,
    client: Backend,
    options: ApplyOptions | None = None,
    on_progress: Callable[[str, int], None] | None = None,
) -> ApplyResult:
    """Apply `plan`. Raises StalePlanError before any write if a target moved."""
    options = options or ApplyOptions()
    started = time.monotonic()
    deletes = [a for a in plan.actions if a.kind == model.DELETE]
    copies = replace(plan, actions=tuple(a for a in plan.actions if a.kind != model.DELETE))
    with collector.paused():  # the scheduler's state: many objects, all kept, no cycles
        run = _Run(copies, client, options, on_progress)
    with collector.frozen():
        return _apply_run(run, plan, deletes, client, options, started)


def _apply_run(
    run: _Run,
    plan: Plan,
    deletes: list[Action],
    client: Backend,
    options: ApplyOptions,
    started: float,
) -> ApplyResult:
    # OCI Layouts: no garbage collection in a layout while any apply may still write to it
    layouts = {r for r in (ImageRef.parse(a.target).repo() for a in plan.actions) if r.is_ocidir}
    for repo in layouts:
        client.begin_writes(repo)
    ok = False
    try:
        done = preflight(plan, client) if options.verify_state else set()
        run.walk(run.needed(done))
        run.results.update(_run_deletes(deletes, run, done))
        results = [run.results[a.id] for a in plan.actions]
        already = bool(results) and all(r.status == SKIPPED for r in results)
        if already:
            log.info("Plan already applied: every target is where the plan puts it")
        result = ApplyResult(results, time.monotonic() - started, already_done=already)
        ok = result.ok
    finally:
        for repo in layouts:
            client.end_writes(repo, collect=ok)  # GC only once everything landed
    return result
