"""The run engine: plan -> optional stale check -> apply -> outcome, for every command and watch.

The CLI's `plan`, `apply`, `once` and `copy` and each run of `watch` go through `run`: the
command says what to plan (or gives a saved plan), what to check before applying, and how to
apply; the engine builds the apply options from the config, writes the report and works out
how the run ended, each in one place.

One `RunStop` per run, made by the engine's caller (the CLI on SIGTERM/SIGINT, `watch` at
shutdown and at a run's deadline), carries the run's cancel token into planning, the apply
and the registry client.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

import orjson

from regplan import collector, logs
from regplan.cancel import CancelToken
from regplan.errors import CancelledError, RegplanError

if TYPE_CHECKING:
    from regplan.apply.applier import ApplyOptions
    from regplan.apply.result import ActionResult, ApplyResult
    from regplan.config.model import Config
    from regplan.plan.model import Plan
    from regplan.plan.planner import PlanOptions
    from regplan.registry.api import Backend

log = logs.get(__name__)
P = ParamSpec("P")


class Outcome(StrEnum):
    """How a run ended (watch's `outcome` log field and metric label; the CLI's exit status)."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"  # stopped by its caller (shutdown, signal) without an error


class Drift(StrEnum):
    """What a run does about source tags that moved since a saved plan was made."""

    IGNORE = "ignore"  # a plan made by this run: nothing to compare
    WARN = "warn"  # apply the reviewed digests, saying which tags moved
    REFUSE = "refuse"  # --refuse-source-drift


# -- the run's stop -----------------------------------------------------------------------------
class RunStop:
    """One run's cancel token, and whether the run is past planning.

    Cancelling the token stops planning at once and copies in flight between chunks.
    `stop_planning` is the softer stop of a shutdown with a grace period: it cancels only a
    run that has not started applying (a plan made now would not be applied)."""

    def __init__(self, token: CancelToken | None = None) -> None:
        self.token = token or CancelToken()
        self._lock = threading.Lock()
        self._applying = False

    def begin_apply(self, drain: threading.Event | None) -> bool:
        """Enter the apply, unless the run was stopped or `drain` set while it planned."""
        with self._lock:
            if self.token.cancelled or (drain is not None and drain.is_set()):
                return False
            self._applying = True
            return True

    def stop_planning(self, reason: str) -> None:
        with self._lock:
            if not self._applying:
                self.token.cancel(reason)

    def cancel(self, reason: str) -> None:
        self.token.cancel(reason)


class SignalStop(RunStop):
    """`with SignalStop() as stop:` SIGTERM and SIGINT cancel the run's token (it stops at its
    next request), a second one interrupts at once. A cancellation that escapes the body is
    swallowed: `stop.exit_code` (128 + the signal) is then the command's exit status."""

    MESSAGE = "regplan: interrupted"

    def __init__(self) -> None:
        super().__init__()
        self.signum = 0
        self._asking = False
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum or self._asking:
            raise KeyboardInterrupt  # a second signal, or at a prompt: stop at once
        self.signum = signum
        self.cancel(f"interrupted by {signal.Signals(signum).name}")

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():  # handlers live there only
            for s in (signal.SIGTERM, signal.SIGINT):
                if signal.getsignal(s) is signal.SIG_IGN:
                    continue  # started ignoring it (`nohup`, a background job): keep that
                previous = signal.signal(s, self._on_signal)
                if previous is not None:
                    self._previous[s] = previous
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        return bool(self.signum) and isinstance(error, CancelledError)

    @contextlib.contextmanager
    def immediately(self) -> Iterator[None]:
        """While a person is asked something, a signal interrupts at once (no run to stop)."""
        self._asking = True
        try:
            yield
        finally:
            self._asking = False

    def exit_code(self, code: int) -> int:
        """The command's exit status: its own, or the signal's once one came."""
        if not self.signum:
            return code
        print(self.MESSAGE, file=sys.stderr)
        return 128 + self.signum


def interruptible(command: Callable[Concatenate[SignalStop, P], int]) -> Callable[P, int]:
    """A command that runs under `SignalStop`: it gets the stop as its first argument."""

    @functools.wraps(command)
    def body(*args: P.args, **kwargs: P.kwargs) -> int:
        with SignalStop() as stop:
            return stop.exit_code(command(stop, *args, **kwargs))
        return stop.exit_code(1)  # reached once a signal's cancellation ended the command

    return body


# -- what a run does ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ApplySettings:
    """How to apply, besides the plan and the config: what each command or watch decides."""

    parallel: int | None = None  # images at once; None: the config's defaults.parallel
    keep_going: bool = False
    verify_state: bool = False  # stale check and target re-checks (a plan made a while ago)
    drain: threading.Event | None = None  # watch's shutdown: start no new image
    slots: threading.Semaphore | None = None  # image slots shared with concurrent runs
    on_rate_limit_delay: Callable[[str, int], None] | None = None
    console: bool = True  # progress on stderr, result lines and the apply line on stdout


@dataclass(frozen=True)
class ReportFile:
    """Where the run's apply report goes, and what it records about the plan."""

    path: Path
    shard: tuple[int, int] | None = None  # (index, count)
    saved: bool | None = None  # a saved plan (shards share it); None: not recorded
    option: str = "--report"  # how the user named the place, for the error message


@dataclass(frozen=True)
class Proceed:
    """A review's go-ahead: apply this plan (possibly narrowed), checking state if asked."""

    plan: Plan
    verify_state: bool | None = None  # None: ApplySettings.verify_state


@dataclass(frozen=True)
class Halt:
    """A review's stop before anything is applied."""

    outcome: Outcome
    exit_code: int = 0


Review = Callable[["Plan"], "Proceed | Halt"]


def _proceed(plan: Plan) -> Proceed | Halt:
    return Proceed(plan)


@dataclass(frozen=True)
class Job:
    """One run: plan with `planning` (or apply the saved `plan`), review it, apply it."""

    config: Config
    client: Backend
    stop: RunStop = field(default_factory=RunStop)
    planning: PlanOptions | None = None
    plan: Plan | None = None  # a saved plan: no planning
    review: Review = _proceed
    drift: Drift = Drift.IGNORE
    apply: ApplySettings = field(default_factory=ApplySettings)
    report: ReportFile | None = None
    log_fields: Mapping[str, int | str] = field(default_factory=dict)  # e.g. watch's step


@dataclass(frozen=True)
class RunOutcome:
    plan: Plan
    result: ApplyResult | None  # None: nothing was applied
    outcome: Outcome
    failed: tuple[ActionResult, ...] = ()  # failed actions that count (none once cancelled)
    exit_code: int = 0


# -- the engine ---------------------------------------------------------------------------------
def make_plan(config: Config, client: Backend, options: PlanOptions, stop: RunStop) -> Plan:
    """Plan, stopping at the run's token."""
    from regplan.plan.planner import make_plan as planner

    return planner(config, client, replace(options, cancel=stop.token))


def run(job: Job) -> RunOutcome:
    """Plan (or take the saved plan), review, check for drift, apply, report, conclude."""
    plan = job.plan
    if plan is None:
        assert job.planning is not None
        plan = make_plan(job.config, job.client, job.planning, job.stop)
    decision = job.review(plan)
    if isinstance(decision, Halt):
        return RunOutcome(plan, None, decision.outcome, exit_code=decision.exit_code)
    with collector.frozen():  # the plan, held to the end
        return _apply_reviewed(job, decision.plan, decision.verify_state)


def _apply_reviewed(job: Job, plan: Plan, verify_state: bool | None) -> RunOutcome:
    settings = job.apply
    if verify_state is not None:
        settings = replace(settings, verify_state=verify_state)
    if job.drift is not Drift.IGNORE:
        check_drift(plan, job.client, refuse=job.drift is Drift.REFUSE)
    if not job.stop.begin_apply(settings.drain):
        if settings.drain is None or not settings.drain.is_set():
            job.stop.token.check()  # cancelled since planning: raises
        log.info("Not applying: server stopping", **job.log_fields)
        return conclude(plan, None, cancelled=True)
    result = apply(plan, job.config, job.client, settings, job.stop.token)
    if job.report is not None:
        write_report(job.report, plan, result)
    return conclude(plan, result, cancelled=job.stop.token.cancelled)


def check_drift(plan: Plan, client: Backend, *, refuse: bool) -> None:
    """A saved plan's source tags that moved since planning: refused, or applied as reviewed."""
    from regplan.apply.drift import SourceDriftError, find_drift

    drift = find_drift(plan, client)
    if drift and refuse:
        raise SourceDriftError(drift)
    for moved in drift:
        log.warn(f"{moved.describe()}; applying the reviewed digest")


def apply_options(
    config: Config,
    settings: ApplySettings,
    cancel: CancelToken | None,
    on_result: Callable[[ActionResult], None] | None = None,
) -> ApplyOptions:
    """The applier's options for `config`, as the command or watch settled them."""
    from regplan.apply.applier import ApplyOptions

    return ApplyOptions(
        parallel=settings.parallel or config.defaults.parallel,
        keep_going=settings.keep_going,
        verify_state=settings.verify_state,
        ratelimits={s.index: s.ratelimit for s in config.sync},
        cancel=cancel,
        drain=settings.drain,
        slots=settings.slots,
        on_rate_limit_delay=settings.on_rate_limit_delay,
        on_result=on_result,
    )


def apply(
    plan: Plan,
    config: Config,
    client: Backend,
    settings: ApplySettings,
    cancel: CancelToken | None = None,
) -> ApplyResult:
    """Apply `plan`; on the console with progress, the result log and the apply line."""
    if plan.actions:
        from regplan.apply.applier import apply_plan

        if not settings.console:
            return apply_plan(plan, client, apply_options(config, settings, cancel))
        from regplan.apply.progress import ProgressDisplay

        with ProgressDisplay(plan) as progress:
            options = apply_options(config, settings, cancel, on_result=progress.finished)
            result = apply_plan(plan, client, options, on_progress=progress.advance)
    else:
        # nothing to check or write (the common scheduled run): the applier's result for an
        # empty plan, without loading the applier
        from regplan.apply.result import ApplyResult

        result = ApplyResult([], 0.0)
        if not settings.console:
            return result
    _log_result(result)
    sys.stdout.write(result_line(result))
    sys.stdout.flush()
    return result


def conclude(plan: Plan, result: ApplyResult | None, *, cancelled: bool) -> RunOutcome:
    """How a run ended: a failure if planning or an action failed (once the run was
    cancelled, failed copies are the cancellation itself, not errors); cancelled if the
    apply stopped short without one, or never started."""
    from regplan.apply.status import ActionStatus

    failed: tuple[ActionResult, ...] = ()
    if result is not None and not cancelled:
        failed = tuple(r for r in result.results if r.status == ActionStatus.FAILED)
    if plan.errors or failed:
        outcome = Outcome.FAILURE
    elif result is None:
        outcome = Outcome.CANCELLED if cancelled else Outcome.SUCCESS
    else:
        outcome = Outcome.SUCCESS if result.ok else Outcome.CANCELLED
    return RunOutcome(plan, result, outcome, failed, 0 if outcome is Outcome.SUCCESS else 1)


def write_report(report: ReportFile, plan: Plan, result: ApplyResult) -> None:
    body = result.report(plan, report.shard)
    if report.saved is not None:  # the shards of one saved plan share it; `once` plans its own
        body["plan"]["saved"] = report.saved
    try:
        report.path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as e:  # checked up front; this is the disk filling or the directory going
        raise RegplanError(
            f"cannot write {report.option} {report.path}: {e.strerror or e} (the apply itself "
            f"{'succeeded' if result.ok else 'failed'}, see the line above)"
        ) from None


# -- what the console shows of an apply ---------------------------------------------------------
def _log_result(result: ApplyResult) -> None:
    from regplan.apply.status import ActionStatus
    from regplan.units import human_bytes

    s = result.summary()
    level = log.info if result.ok else log.error
    level(
        "Apply finished" if result.ok else "Apply failed",
        images=s.images,
        manifests=s.manifests,
        blobs=s.blobs,
        mounted=s.mounted,
        bytes=human_bytes(s.bytes),
        skipped=s.skipped,
        failed=s.failed,
        not_run=s.not_run,
        seconds=s.seconds,
    )
    for r in result.results:
        if r.status == ActionStatus.FAILED:
            log.error(
                "Action failed",
                action=r.action.id,
                kind=r.action.kind,
                target=r.action.target,
                error=r.detail,
            )


def result_line(result: ApplyResult) -> str:
    from regplan.units import human_bytes

    s = result.summary()
    if result.already_done:
        return "Apply complete: nothing to do, the plan was already applied.\n"
    head = "Apply complete" if result.ok else "Apply FAILED"
    line = (
        f"{head}: {s.images} image(s), {s.manifests} manifest(s), {s.blobs} blob(s) "
        f"({s.mounted} mounted), {human_bytes(s.bytes)} copied in {s.seconds:.1f}s"
    )
    if s.deleted:
        line += f"; {s.deleted} tag(s) deleted"
    if s.failed or s.not_run:
        line += f"; {s.failed} failed, {s.not_run} not run"
    return line + ".\n"
