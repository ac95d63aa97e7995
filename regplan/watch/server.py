"""`regplan watch`: the long-running server (regsync `server`; docs/regsync-behaviour.md,
1.10 Modes).

Life of the server:
1. load the config (an error here exits 1 at once) and start the HTTP listener;
2. build the timetable (`schedule`, else `@every <interval>`; neither: logged and ignored);
3. initial pass: every scheduled step once in missing mode, concurrently; each step's
   schedule starts when its own initial run is over (a slow step delays no other); ready
   once every step's initial run is over;
4. scheduled runs in full mode; a step still running when it is due again is skipped (runs
   are tracked by step identity, so a reload that moves steps changes nothing); a run longer
   than `--run-timeout` is cancelled and counted as failed;
5. SIGTERM/SIGINT: stop scheduling and planning, let in-flight images finish within the
   grace period, then cancel them (tags are pushed last, so a cancelled image never gets its
   tag); a second signal cancels at once. SIGHUP re-reads the config and keeps the old one
   if it is invalid; old registry clients are closed once their runs are over.
Exit 0 when the server saw no error in its whole life, else 1 (regsync's rule).

Signal handlers only set flags; the main thread does the work.
"""

from __future__ import annotations

import dataclasses
import queue
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from regplan import logs
from regplan.cancel import CancelToken
from regplan.config.model import SyncStep
from regplan.engine import RunStop
from regplan.errors import RegplanError
from regplan.watch.runs import (
    CANCELLED,
    FAILURE,
    FULL,
    MISSING,
    RunContext,
    RunControls,
    RunMode,
    RunResult,
    RunTracker,
    StepRunner,
)
from regplan.watch.scheduler import (
    MAX_SLEEP,
    ScheduledStep,
    Scheduler,
    StepKey,
    Timetable,
    build_timetable,
    step_key,
)

if TYPE_CHECKING:
    from regplan.config.model import Config
    from regplan.registry.client import RegistryClient

log = logs.get(__name__)

AFTER_CANCEL_WAIT = (
    15.0  # seconds for cancelled runs to unwind (a blob stream stops between chunks)
)
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
TICK = 0.5  # seconds between the main loop's looks at deadlines, reloads and the initial pass
# /healthz fails when a loop has not turned for this long: the scheduler wakes at least every
# MAX_SLEEP, the main loop every TICK, so only a stuck process gets there
HEARTBEAT_LIMIT = 3 * MAX_SLEEP


@dataclass(frozen=True)
class WatchSettings:
    config_path: str
    listen: str = "127.0.0.1:9090"  # "" = no HTTP listener
    grace_period: float = 30.0  # seconds
    plan_dir: Path | None = None
    abort_on_error: bool = False
    run_timeout: float = 3600.0  # seconds one run may take; 0 = no limit

    prune: bool = False  # apply planned deletes


@dataclass
class _Tally:
    """Everything the final summary line says; guarded by the server's lock."""

    runs: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0
    errors: int = 0
    images: int = 0
    bytes: int = 0


@dataclass
class _Flight:
    """One run in flight; `recorded` once its result counted (finished, or timed out)."""

    key: StepKey
    step: SyncStep
    mode: RunMode
    client: RegistryClient
    initial: bool  # the step's run of the server's initial pass
    deadline: float | None  # monotonic
    stop: RunStop = field(default_factory=RunStop)  # the run's one cancel token
    recorded: bool = False


def stalled(beats: Mapping[str, float], now: float, limit: float) -> str | None:
    """Why the process is not live: the first loop whose heartbeat is older than `limit`."""
    for name, beat in sorted(beats.items()):
        if now - beat > limit:
            return f"{name} stuck: no heartbeat for {now - beat:.0f}s"
    return None


class WatchServer:
    def __init__(self, settings: WatchSettings) -> None:
        from regplan.config import load_config
        from regplan.registry.api import RequestCounter
        from regplan.watch.metrics import WatchMetrics

        self.settings = settings
        config = load_config(settings.config_path)
        self._counter = RequestCounter()  # one counter across reloads: metrics stay monotonic
        # the grace period's end (or a second signal): copies in flight and the clients' waits stop
        self._cancel = CancelToken()
        self._ctx = RunContext(config, self._client(config))
        self._lock = threading.Lock()
        self._tally = _Tally()
        self.metrics = WatchMetrics(lambda: self._ctx.client)
        self.tracker = RunTracker()
        self.controls = RunControls(
            drain=threading.Event(),
            cancel=self._cancel,
            slots=threading.Semaphore(max(1, config.defaults.parallel)),
            abort_on_error=settings.abort_on_error,
            plan_dir=settings.plan_dir,
            prune=settings.prune,
        )
        self.runner = StepRunner(
            self.controls,
            on_rate_limit_delay=lambda i: self.metrics.ratelimit_delays.labels(str(i)).inc(),
        )
        self._ready = False
        self._stopping = False
        self._stop_requested = threading.Event()
        self._reload_requested = threading.Event()
        self._wakeup = threading.Event()
        self._signals = 0
        self._signal_queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._scheduler: Scheduler | None = None
        self._timetable = Timetable(())
        self._endpoints: Any = None
        self._started = time.monotonic()
        self._beat = time.monotonic()  # the main loop's heartbeat
        # guarded by _lock:
        self._flights: dict[StepKey, _Flight] = {}
        self._client_runs: dict[int, int] = {id(self._ctx.client): 0}  # runs per client
        self._retired: dict[int, RegistryClient] = {}  # replaced clients, closed when unused
        self._initial_left: set[StepKey] = set()  # steps whose initial run is not over
        self._initial_queue: list[SyncStep] = []  # parallel 0: initial runs one at a time
        self._unarmed: list[StepKey] = []  # --abort-on-error: armed after a clean initial pass

    def _client(self, config: Config) -> RegistryClient:
        from regplan.registry.client import RegistryClient

        return RegistryClient.from_config(config, counter=self._counter, cancel=self._cancel)

    # -- signals ----------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler. It runs on the main thread between any two bytecodes, also
        while that thread holds the lock of one of the events below (inside `Event.clear`,
        or waking from `Event.wait`, as it does when a run finishes): setting that event
        here waited for the lock forever, and the server stopped answering signals. So it
        only queues (SimpleQueue's put is reentrant); the signals thread acts on it."""
        self._signal_queue.put(signum)

    def _handle_signals(self) -> None:
        while (signum := self._signal_queue.get()) is not None:
            self._act_on_signal(signum)

    def _act_on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested.set()
        else:
            self._signals += 1
            if self._signals == 1:
                self._stop_requested.set()
            else:  # a second TERM/INT: do not wait for the grace period
                self.controls.drain.set()
                self.controls.cancel.cancel("server stopping")
        self._wakeup.set()

    def request_stop(self) -> None:
        """Stop as SIGTERM does (for callers that embed the server)."""
        self._on_signal(signal.SIGTERM, None)

    def request_reload(self) -> None:
        self._on_signal(signal.SIGHUP, None)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # embedded in a test thread: use request_stop()
        return {s: signal.signal(s, self._on_signal) for s in _HANDLED}

    # -- probes -----------------------------------------------------------------------------
    def not_ready(self) -> str | None:
        if self._stopping:
            return "stopping"
        if not self._ready:
            return "initial pass running"
        return None

    def not_live(self) -> str | None:
        if self._stopping:  # the loops end on purpose; a grace period may outlast the limit
            return None
        beats = {"main loop": self._beat}
        if self._scheduler is not None:
            beats["scheduler"] = self._scheduler.beat
        return stalled(beats, time.monotonic(), HEARTBEAT_LIMIT)

    # -- bookkeeping ------------------------------------------------------------------------
    def _record_errors(self, count: int) -> None:
        with self._lock:
            self._tally.errors += count

    def _record(self, result: RunResult) -> None:
        self.metrics.run_finished(result)
        with self._lock:
            t = self._tally
            t.runs += 1
            t.failed += result.outcome == FAILURE
            t.cancelled += result.outcome == CANCELLED
            t.errors += len(result.errors) or (result.outcome == FAILURE)
            t.images += result.copied.images
            t.bytes += result.copied.bytes

    def _start_run(self, step: SyncStep, mode: RunMode, *, initial: bool = False) -> bool:
        """Start a run on its own thread, unless the same step is running already."""
        if self._stopping:
            return False
        key = step_key(step)
        if not self.tracker.try_start(key, step.index):
            if initial:  # the same step is running already: that run stands for this one
                with self._lock:
                    self._initial_left.discard(key)
            log.info(
                "Skipping task, previous run still going",
                step=step.index,
                source=step.source,
                target=step.target,
            )
            self.metrics.runs_skipped.labels(str(step.index)).inc()
            with self._lock:
                self._tally.skipped += 1
            return False
        ctx = self._ctx
        timeout = self.settings.run_timeout
        flight = _Flight(
            key,
            step,
            mode,
            ctx.client,
            initial,
            time.monotonic() + timeout if timeout > 0 else None,
        )
        if self.controls.cancel.cancelled:
            flight.stop.cancel("server stopping")
        with self._lock:
            self._flights[key] = flight
            self._client_runs[id(ctx.client)] = self._client_runs.get(id(ctx.client), 0) + 1
        self.metrics.run_started(step.index)

        def body() -> None:
            try:
                result = self.runner.run(ctx, step, mode, flight.stop)
                self._settle(flight, result)
            finally:
                self._landed(flight)

        thread = threading.Thread(target=body, name=f"run-step{step.index}", daemon=True)
        thread.start()
        return True

    def _settle(self, flight: _Flight, result: RunResult) -> None:
        """Count a run's result once (a run that timed out was counted at its deadline)."""
        with self._lock:
            if flight.recorded:
                return
            flight.recorded = True
            if flight.initial:
                self._initial_left.discard(flight.key)
            arm = flight.mode == MISSING and not (flight.initial and self.settings.abort_on_error)
            if not arm and flight.initial:
                self._unarmed.append(flight.key)
        self._record(result)
        if arm and self._scheduler is not None:
            self._scheduler.arm(flight.key)  # its schedule starts now, whatever others do
        self._wakeup.set()

    def _landed(self, flight: _Flight) -> None:
        """The run's thread is over: the step may run again, its client may be closed."""
        with self._lock:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
            cid = id(flight.client)
            self._client_runs[cid] -= 1
            unused = self._client_runs[cid] == 0 and cid in self._retired
            if unused:
                del self._client_runs[cid]
                del self._retired[cid]
        if unused:
            flight.client.close_all()
        self.tracker.finish(flight.key)
        self._wakeup.set()

    def _expire(self) -> None:
        """Cancel runs past their deadline and count them as failed now: a stuck run (a hung
        source) must not hold readiness or hide the error until its thread unwinds."""
        now = time.monotonic()
        with self._lock:
            late = [
                f
                for f in self._flights.values()
                if not f.recorded and f.deadline is not None and now >= f.deadline
            ]
        for flight in late:
            limit = f"{self.settings.run_timeout:g}s"
            flight.stop.cancel(f"run did not finish within --run-timeout {limit}")
            step = flight.step
            log.error(
                "Run timed out, cancelling it",
                step=step.index,
                source=step.source,
                target=step.target,
                timeout=limit,
            )
            finished = time.time()
            seconds = now - (flight.deadline or now) + self.settings.run_timeout
            self._settle(
                flight,
                RunResult(
                    step=step.index,
                    mode=flight.mode,
                    outcome=FAILURE,
                    started_at=finished - seconds,
                    finished_at=finished,
                    seconds=seconds,
                    errors=(f"{step.name}: run did not finish within --run-timeout {limit}",),
                ),
            )

    def _fire(self, entry: ScheduledStep) -> None:
        self._start_run(entry.step, FULL)

    def _next_run(self, entry: ScheduledStep, when: Any) -> None:
        self.metrics.next_run.labels(str(entry.step.index)).set(when.timestamp())

    def _use_timetable(self, timetable: Timetable) -> None:
        self._timetable = timetable
        self.metrics.describe_steps(timetable.entries)
        for index, _ in timetable.errors:
            self.metrics.error(index)
        self._record_errors(len(timetable.errors))

    # -- the life of the server -------------------------------------------------------------
    def run(self) -> int:
        signals = threading.Thread(target=self._handle_signals, name="signals", daemon=True)
        signals.start()
        previous = self._install_signals()
        try:
            if self.settings.listen:
                from regplan.watch.endpoints import Endpoints

                self._endpoints = Endpoints(
                    self.settings.listen,
                    metrics=self.metrics.render,
                    not_ready=self.not_ready,
                    not_live=self.not_live,
                )
                self._endpoints.start()
            self._use_timetable(build_timetable(self._ctx.config.sync))
            self._scheduler = Scheduler(
                self._timetable.entries, self._fire, on_next=self._next_run, armed=()
            )
            self._scheduler.start()
            self._start_initial_pass()
            self._serve_until_stopped()
            return self._shutdown()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._signal_queue.put(None)
            signals.join(timeout=5)

    def _start_initial_pass(self) -> None:
        """Every scheduled step once in missing mode; each is armed when its own run ends."""
        steps = [e.step for e in self._timetable.entries]
        with self._lock:
            self._initial_left = {step_key(s) for s in steps}
        if self._ctx.config.defaults.parallel > 0:
            for step in steps:
                self._start_run(step, MISSING, initial=True)
        else:  # regsync: sequential when parallel is 0
            self._initial_queue = list(steps)
        self._check_initial_pass()

    def _check_initial_pass(self) -> None:
        """Start the next queued initial run (parallel 0); become ready once all are over."""
        with self._lock:
            queued = bool(self._initial_queue) and not any(
                f.initial and not f.recorded for f in self._flights.values()
            )
            following = self._initial_queue.pop(0) if queued else None
            over = not self._initial_left and not self._initial_queue
        if following is not None and not self._stop_requested.is_set():
            self._start_run(following, MISSING, initial=True)
        if not over or self._ready:
            return
        with self._lock:
            errors = self._tally.errors
            unarmed, self._unarmed = self._unarmed, []
        if errors and self.settings.abort_on_error:
            log.error("Initial pass failed, stopping (--abort-on-error)", errors=errors)
            self._stop_requested.set()
            return
        self._ready = True
        self.metrics.ready.set(1)
        assert self._scheduler is not None
        for key in unarmed:
            self._scheduler.arm(key)
        log.info("Initial pass finished, running on schedule", steps=len(self._timetable.entries))

    def _serve_until_stopped(self) -> None:
        while not self._stop_requested.is_set():
            self._beat = time.monotonic()
            self._expire()
            self._check_initial_pass()
            if self._stop_requested.is_set():
                break
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._reload()
            self._wakeup.wait(TICK)
            self._wakeup.clear()

    def _reload(self) -> None:
        from regplan.config import load_config

        path = self.settings.config_path
        log.info("Reloading config", file=path)
        try:
            config = load_config(path)
            timetable = build_timetable(config.sync)
            if timetable.errors:
                raise RegplanError("; ".join(message for _, message in timetable.errors))
        except RegplanError as e:
            log.error("Config reload failed, keeping the current config", file=path, error=str(e))
            self.metrics.reloads.labels("failure").inc()
            self._record_errors(1)
            return
        if config.defaults.parallel != self._ctx.config.defaults.parallel:
            log.warn(
                "defaults.parallel changes take effect on restart",
                running=self._ctx.config.defaults.parallel,
                configured=config.defaults.parallel,
            )
        old_keys = {step_key(s) for s in self._ctx.config.sync}
        new_keys = {e.key for e in timetable.entries}
        changed = [e.step for e in timetable.entries if e.key not in old_keys]
        old_client = self._ctx.client
        client = self._client(config)
        with self._lock:
            self._ctx = RunContext(config, client)
            self._client_runs[id(client)] = 0
            unused = self._client_runs.get(id(old_client), 0) == 0
            if unused:
                self._client_runs.pop(id(old_client), None)
            else:  # closed by the last of its runs
                self._retired[id(old_client)] = old_client
            # steps gone from the config no longer hold the initial pass up
            self._initial_left &= new_keys
            queued = {step_key(s) for s in self._initial_queue}
            self._initial_queue = [e.step for e in timetable.entries if e.key in queued]
        if unused:
            old_client.close_all()
        assert self._scheduler is not None
        armed = self._scheduler.armed() & new_keys
        self._use_timetable(timetable)
        self._scheduler.replace(timetable.entries, armed=armed)
        self.metrics.reloads.labels("success").inc()
        log.info("Config reloaded", file=path, steps=len(timetable.entries), changed=len(changed))
        for step in changed:  # new or edited steps get their missing pass now
            self._start_run(step, MISSING)
        # unchanged steps not armed yet are in their initial run: armed when it ends

    def _shutdown(self) -> int:
        grace = self.settings.grace_period
        if self._stop_requested.is_set():
            log.debug("Interrupt received, stopping")
        log.info("Stopping server")
        self._stopping = True
        self.metrics.ready.set(0)
        if self._scheduler is not None:
            self._scheduler.stop()
        self.controls.drain.set()
        self._signal_flights(copies=self.controls.cancel.cancelled)  # planning stops now
        running = self.tracker.running()
        stop_started = time.monotonic()
        log.debug("Waiting on running tasks", steps=running, grace=f"{grace:g}s")
        if not self._wait_idle(grace):
            log.warn(
                "Grace period over, cancelling running tasks",
                steps=self.tracker.running(),
                grace=f"{grace:g}s",
            )
            self.controls.cancel.cancel("server stopping")
            self._signal_flights(copies=True)
            if not self.tracker.wait_idle(AFTER_CANCEL_WAIT):
                log.error("Tasks did not stop, exiting anyway", steps=self.tracker.running())
                self._record_errors(1)
        if self._endpoints is not None:
            self._endpoints.stop()
        with self._lock:
            clients = [self._ctx.client, *self._retired.values()]
        for client in clients:
            client.close_all()
        with self._lock:
            t = dataclasses.replace(self._tally)
        code = 1 if t.errors else 0
        (log.error if code else log.info)(
            "Server stopped",
            runs=t.runs,
            failed=t.failed,
            cancelled=t.cancelled,
            skipped=t.skipped,
            errors=t.errors,
            images=t.images,
            bytes=t.bytes,
            uptime=f"{time.monotonic() - self._started:.1f}s",
            stop=f"{time.monotonic() - stop_started:.2f}s",
            exit=code,
        )
        return code

    def _signal_flights(self, *, copies: bool) -> None:
        """Stop every run's planning (a plan made now would not be applied); with `copies`,
        their copies too."""
        with self._lock:
            flights = list(self._flights.values())
        for flight in flights:
            if copies:
                flight.stop.cancel("server stopping")
            else:
                flight.stop.stop_planning("server stopping")

    def _wait_idle(self, timeout: float) -> bool:
        """Wait for runs to end, a second signal ending the wait (it cancels at once)."""
        deadline = time.monotonic() + max(0.0, timeout)
        while not self.tracker.wait_idle(min(TICK, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or self.controls.cancel.cancelled:
                return False
        return True
