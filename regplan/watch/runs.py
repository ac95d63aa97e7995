"""One run of one step: plan it, log the plan's summary, apply it, keep the files for audit.

A run goes through the same run engine as `regplan once`; only the bookkeeping is the
server's: which steps are running (a step never runs twice at once), how a run ended, and
what it copied.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from regplan import engine, logs
from regplan.cancel import Cancelled, CancelToken
from regplan.config.model import Config, SyncStep
from regplan.engine import Outcome, RunStop
from regplan.errors import RegplanError

if TYPE_CHECKING:
    from regplan.apply.result import ApplyResult
    from regplan.plan.model import Plan
    from regplan.registry.client import RegistryClient

log = logs.get(__name__)


class RunMode(StrEnum):
    MISSING = "missing"  # the initial pass: copy only tags the target lacks
    FULL = "full"  # scheduled runs: verify every digest


MISSING = RunMode.MISSING
FULL = RunMode.FULL
MODES = tuple(RunMode)
SUCCESS = Outcome.SUCCESS
FAILURE = Outcome.FAILURE
CANCELLED = Outcome.CANCELLED  # stopped by the server's shutdown; not an error
OUTCOMES = tuple(Outcome)


@dataclass(frozen=True)
class Copied:
    """What a run wrote (actions that completed, also in a run that was then cancelled)."""

    images: int = 0
    manifests: int = 0
    blobs: int = 0
    mounted: int = 0
    bytes: int = 0

    @classmethod
    def of(cls, result: ApplyResult | None) -> Copied:
        if result is None:
            return cls()
        s = result.summary()
        return cls(s.images, s.manifests, s.blobs, s.mounted, s.bytes)


@dataclass(frozen=True)
class RunResult:
    step: int
    mode: RunMode
    outcome: Outcome
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
    cancel: CancelToken  # grace period over: abort copies in flight (and the client's waits)
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


@dataclass
class _Held:
    """What a run's review learnt of its plan, for the run's result."""

    summary: str = ""  # the plan's one-line summary
    pending: int | None = None  # deletes held back without `watch --prune`


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
        self, ctx: RunContext, step: SyncStep, mode: RunMode, stop: RunStop | None = None
    ) -> RunResult:
        stop = stop or RunStop()
        if self.controls.cancel.cancelled:
            stop.cancel("server stopping")
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
                ctx, step, mode, run_id, stop
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
        self, ctx: RunContext, step: SyncStep, mode: RunMode, run_id: int, stop: RunStop
    ) -> tuple[Outcome, str, Copied, tuple[str, ...], int | None]:
        from regplan.plan.planner import PlanOptions

        c = self.controls
        stem = self._stem(step, mode, run_id)
        held = _Held()
        delay = self._on_rate_limit_delay
        job = engine.Job(
            ctx.config,
            ctx.client,
            stop,
            planning=PlanOptions(
                missing=mode == MISSING,
                step_indexes=(step.index,),
                abort_on_error=c.abort_on_error,
                log_decisions=True,
            ),
            review=lambda plan: self._review(plan, step, mode, stem, held),
            apply=engine.ApplySettings(
                keep_going=not c.abort_on_error,
                verify_state=False,  # planned a moment ago, by this process
                drain=c.drain,
                slots=c.slots,
                on_rate_limit_delay=(lambda source, left: delay(step.index)) if delay else None,
                console=False,
            ),
            report=(
                engine.ReportFile(stem.with_name(stem.name + ".report.json"), option="--plan-dir")
                if stem is not None
                else None
            ),
            log_fields={"step": step.index},
        )
        done = engine.run(job)
        errors = tuple(done.plan.errors) + tuple(
            f"{step.name}: {r.action.target}: {r.detail}" for r in done.failed
        )
        return done.outcome, held.summary, Copied.of(done.result), errors, held.pending

    def _review(
        self, plan: Plan, step: SyncStep, mode: RunMode, stem: Path | None, held: _Held
    ) -> engine.Proceed | engine.Halt:
        """Log the plan, keep it for audit; apply it unless there is nothing to do or
        --abort-on-error meets a planning error."""
        from regplan.plan.render import summary_line

        plan, held.pending = _hold_back_deletes(plan, step, apply=self.controls.prune)
        held.summary = summary_line(plan)
        log.info("Plan", step=step.index, mode=mode, summary=held.summary)
        if stem is not None:
            from regplan.plan.planfile import save_plan

            save_plan(plan, stem.with_name(stem.name + ".plan.json"))
        if not plan.has_changes or (plan.errors and self.controls.abort_on_error):
            return engine.Halt(FAILURE if plan.errors else SUCCESS)
        return engine.Proceed(plan)

    def _stem(self, step: SyncStep, mode: RunMode, run_id: int) -> Path | None:
        if self.controls.plan_dir is None:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        # time, then run number: `ls` lists runs in the order they started
        return self.controls.plan_dir / f"{stamp}-r{run_id:06d}-step{step.index}-{mode}"
