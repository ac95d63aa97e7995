"""One run of one step: plan it, log the plan's summary, apply it, keep the files for audit.

A run goes through the same planner and applier as `regplan once`; only the bookkeeping is
the server's: which steps are running (a step never runs twice at once), how a run ended,
and what it copied.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from regplan import logs
from regplan.cancel import Cancelled, CancelToken
from regplan.config.model import Config, SyncStep
from regplan.errors import RegplanError

if TYPE_CHECKING:
    from regplan.apply.applier import ApplyResult
    from regplan.plan.model import Plan
    from regplan.registry.client import RegistryClient

log = logs.get(__name__)

MISSING = "missing"  # the initial pass: copy only tags the target lacks
FULL = "full"  # scheduled runs: verify every digest
MODES = (MISSING, FULL)
SUCCESS = "success"
FAILURE = "failure"
CANCELLED = "cancelled"  # stopped by the server's shutdown; not an error
OUTCOMES = (SUCCESS, FAILURE, CANCELLED)


@dataclass(frozen=True)
class Copied:
    """What a run wrote (actions that completed, also in a run that was then cancelled)."""

    images: int = 0
    manifests: int = 0
    blobs: int = 0
    mounted: int = 0
    bytes: int = 0

    @classmethod
    def of(cls, result: ApplyResult) -> Copied:
        s = result.summary()
        return cls(s["images"], s["manifests"], s["blobs"], s["mounted"], s["bytes"])


@dataclass(frozen=True)
class RunResult:
    step: int
    mode: str
    outcome: str
    started_at: float  # Unix time
    finished_at: float
    seconds: float
    summary: str = ""  # the plan's one-line summary
    copied: Copied = field(default_factory=Copied)
    errors: tuple[str, ...] = ()
    prune_pending: int | None = None  # deletes held back without `watch --prune` (None: no plan)


@dataclass(frozen=True)
class RunContext:
    """What runs use, taken at the start of a run: a config reload swaps it between runs."""

    config: Config
    client: RegistryClient


@dataclass(frozen=True)
class RunControls:
    """The server's levers on every run."""

    drain: threading.Event  # shutdown: start no new image, do not start applying a new plan
    cancel: threading.Event  # grace period over: abort copies in flight
    slots: threading.Semaphore  # `defaults.parallel` image slots shared by all steps
    abort_on_error: bool = False
    plan_dir: Path | None = None
    prune: bool = False  # apply planned deletes (`watch --prune`); else only report them


def _hold_back_deletes(plan: Plan, step: SyncStep, *, apply: bool) -> tuple[Plan, int]:
    """Without `watch --prune` no reviewer stands between a plan and its deletes: they are
    logged and counted (regplan_prune_pending), and the rest of the plan is applied."""
    from dataclasses import replace

    from regplan.plan import model

    deletes = [a for a in plan.actions if a.kind == model.DELETE]
    if apply or not deletes:
        return plan, 0
    for a in deletes:
        log.warn("Would prune (run watch --prune to delete)", step=step.index, target=a.target)
    kept = tuple(a for a in plan.actions if a.kind != model.DELETE)
    return replace(plan, actions=kept), len(deletes)


@dataclass(frozen=True)
class RunSignals:
    """One run's own levers, set by the server (shutdown, run deadline): planning stops
    when `plan` is cancelled, copies stop when `copy` is set."""

    plan: CancelToken = field(default_factory=CancelToken)
    copy: threading.Event = field(default_factory=threading.Event)


class RunTracker:
    """Which steps have a run going, by step identity (a key), never by position."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running: dict[Hashable, int] = {}  # key -> step index (for logs)

    def try_start(self, key: Hashable, index: int = 0) -> bool:
        with self._cond:
            if key in self._running:
                return False
            self._running[key] = index
            return True

    def finish(self, key: Hashable) -> None:
        with self._cond:
            self._running.pop(key, None)
            self._cond.notify_all()

    def running(self) -> list[int]:
        """Indexes of the steps running (as they were when their run started)."""
        with self._cond:
            return sorted(self._running.values())

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout=max(0.0, timeout))


class StepRunner:
    """Runs steps; `run` is called on a thread of its own per run."""

    def __init__(
        self,
        controls: RunControls,
        *,
        on_rate_limit_delay: Callable[[int], None] | None = None,
    ) -> None:
        self.controls = controls
        self._on_rate_limit_delay = on_rate_limit_delay
        self._ids = itertools.count(1)

    def run(
        self, ctx: RunContext, step: SyncStep, mode: str, signals: RunSignals | None = None
    ) -> RunResult:
        signals = signals or RunSignals(copy=self.controls.cancel)
        run_id = next(self._ids)
        started_at = time.time()
        t0 = time.monotonic()
        log.debug(
            "Running task",
            step=step.index,
            source=step.source,
            target=step.target,
            type=step.type,
            mode=mode,
        )
        try:
            outcome, summary, copied, errors, pending = self._plan_and_apply(
                ctx, step, mode, run_id, signals
            )
        except Cancelled:  # stopped while planning: nothing was written
            outcome, summary, copied, errors, pending = CANCELLED, "", Copied(), (), None
        except RegplanError as e:
            log.error(
                "Failed to sync",
                step=step.index,
                source=step.source,
                target=step.target,
                error=str(e),
            )
            outcome, summary, copied, errors = FAILURE, "", Copied(), (f"{step.name}: {e}",)
            pending = None
        except Exception as e:  # never lose the server to one run
            log.error("Run failed", step=step.index, error=f"{type(e).__name__}: {e}")
            outcome, summary, copied, errors = FAILURE, "", Copied(), (f"{step.name}: {e!r}",)
            pending = None
        seconds = time.monotonic() - t0
        result = RunResult(
            step=step.index,
            mode=mode,
            outcome=outcome,
            started_at=started_at,
            finished_at=time.time(),
            seconds=seconds,
            summary=summary,
            copied=copied,
            errors=errors,
            prune_pending=pending,
        )
        (log.error if outcome == FAILURE else log.info)(
            "Run finished",
            step=step.index,
            target=step.target,  # the index may have shifted in a reload since the start
            mode=mode,
            outcome=outcome,
            images=copied.images,
            blobs=copied.blobs,
            bytes=copied.bytes,
            errors=len(errors),
            seconds=round(seconds, 3),
        )
        return result

    def _plan_and_apply(
        self, ctx: RunContext, step: SyncStep, mode: str, run_id: int, signals: RunSignals
    ) -> tuple[str, str, Copied, tuple[str, ...], int | None]:
        from regplan.plan.planner import PlanOptions, make_plan
        from regplan.plan.render import summary_line

        c = self.controls
        plan = make_plan(
            ctx.config,
            ctx.client,
            PlanOptions(
                missing=mode == MISSING,
                step_indexes=(step.index,),
                abort_on_error=c.abort_on_error,
                log_decisions=True,
                cancel=signals.plan,
            ),
        )
        plan, pending = _hold_back_deletes(plan, step, apply=c.prune)
        summary = summary_line(plan)
        log.info("Plan", step=step.index, mode=mode, summary=summary)
        stem = self._stem(step, mode, run_id)
        if stem is not None:
            from regplan.plan.planfile import save_plan

            save_plan(plan, stem.with_name(stem.name + ".plan.json"))
        errors = tuple(plan.errors)
        if not plan.has_changes or (errors and c.abort_on_error):
            return (FAILURE if errors else SUCCESS), summary, Copied(), errors, pending
        if c.drain.is_set():
            log.info("Not applying: server stopping", step=step.index)
            return (FAILURE if errors else CANCELLED), summary, Copied(), errors, pending
        result = self._apply(ctx, step, plan, signals.copy)
        if stem is not None:
            report = orjson.dumps(result.report(plan), option=orjson.OPT_INDENT_2) + b"\n"
            stem.with_name(stem.name + ".report.json").write_bytes(report)
        # Once the grace period is over, failed copies are the cancellation itself, not errors.
        if not signals.copy.is_set():
            errors += tuple(
                f"{step.name}: {r.action.target}: {r.detail}"
                for r in result.results
                if r.status == "failed"
            )
        # not ok without a failure: the server stopped it (drain or cancel)
        outcome = FAILURE if errors else (SUCCESS if result.ok else CANCELLED)
        return outcome, summary, Copied.of(result), errors, pending

    def _apply(
        self, ctx: RunContext, step: SyncStep, plan: Plan, cancel: threading.Event
    ) -> ApplyResult:
        from regplan.apply.applier import ApplyOptions, apply_plan

        c = self.controls
        delay = self._on_rate_limit_delay
        options = ApplyOptions(
            parallel=ctx.config.defaults.parallel,
            keep_going=not c.abort_on_error,
            verify_state=False,  # planned a moment ago, by this process
            ratelimits={step.index: step.ratelimit},
            cancel=cancel,
            drain=c.drain,
            slots=c.slots,
            on_rate_limit_delay=(lambda source, remaining: delay(step.index)) if delay else None,
        )
        return apply_plan(plan, ctx.client, options)

    def _stem(self, step: SyncStep, mode: str, run_id: int) -> Path | None:
        if self.controls.plan_dir is None:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        # time, then run number: `ls` lists runs in the order they started
        return self.controls.plan_dir / f"{stamp}-r{run_id:06d}-step{step.index}-{mode}"
