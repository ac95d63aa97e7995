"""`regplan watch`: the long-running server (regsync `server`, spec §1.10).

Life of the server:
1. load the config (an error here exits 1 at once) and start the HTTP listener;
2. build the timetable (`schedule`, else `@every <interval>`; neither: logged and ignored);
3. initial pass: every scheduled step once in missing mode, concurrently; then ready;
4. scheduled runs in full mode; a step still running when it is due again is skipped;
5. SIGTERM/SIGINT: stop scheduling, let in-flight images finish within the grace period, then
   cancel them (tags are pushed last, so a cancelled image never gets its tag); a second
   signal cancels at once. SIGHUP re-reads the config and keeps the old one if it is invalid.
Exit 0 when the server saw no error in its whole life, else 1 (regsync's rule).

Signal handlers only set flags; the main thread does the work.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from regplan import logs
from regplan.config.model import SyncStep
from regplan.errors import RegplanError
from regplan.watch.runs import (
    CANCELLED,
    FAILURE,
    FULL,
    MISSING,
    RunContext,
    RunControls,
    RunResult,
    RunTracker,
    StepRunner,
)
from regplan.watch.scheduler import ScheduledStep, Scheduler, Timetable, build_timetable

log = logs.get(__name__)

AFTER_CANCEL_WAIT = (
    15.0  # seconds for cancelled runs to unwind (a blob stream stops between chunks)
)
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class WatchSettings:
    config_path: str
    listen: str = "127.0.0.1:9090"  # "" = no HTTP listener
    grace_period: float = 30.0  # seconds
    plan_dir: Path | None = None
    abort_on_error: bool = False
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


def _identity(step: SyncStep) -> SyncStep:
    """A step without its position: moving it in the file is not a change."""
    return dataclasses.replace(step, index=0, line=0)


class WatchServer:
    def __init__(self, settings: WatchSettings) -> None:
        from regplan.config import load_config
        from regplan.registry.api import RequestCounter
        from regplan.registry.client import RegistryClient
        from regplan.watch.metrics import WatchMetrics

        self.settings = settings
        config = load_config(settings.config_path)
        self._counter = RequestCounter()  # one counter across reloads: metrics stay monotonic
        self._ctx = RunContext(config, RegistryClient.from_config(config, counter=self._counter))
        self._clients = [self._ctx.client]
        self._lock = threading.Lock()
        self._tally = _Tally()
        self.metrics = WatchMetrics(lambda: self._ctx.client)
        self.tracker = RunTracker()
        self.controls = RunControls(
            drain=threading.Event(),
            cancel=threading.Event(),
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
        self._scheduler: Scheduler | None = None
        self._timetable = Timetable(())
        self._endpoints: Any = None
        self._started = time.monotonic()

    # -- signals ----------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested.set()
        else:
            self._signals += 1
            if self._signals == 1:
                self._stop_requested.set()
            else:  # a second TERM/INT: do not wait for the grace period
                self.controls.drain.set()
                self.controls.cancel.set()
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

    # -- readiness --------------------------------------------------------------------------
    def not_ready(self) -> str | None:
        if self._stopping:
            return "stopping"
        if not self._ready:
            return "initial pass running"
        return None

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

    def _start_run(self, step: SyncStep, mode: str) -> threading.Thread | None:
        """Start a run on its own thread, unless the step is running already."""
        if self._stopping:
            return None
        if not self.tracker.try_start(step.index):
            log.info(
                "Skipping task, previous run still going",
                step=step.index,
                source=step.source,
                target=step.target,
            )
            self.metrics.runs_skipped.labels(str(step.index)).inc()
            with self._lock:
                self._tally.skipped += 1
            return None
        ctx = self._ctx
        self.metrics.run_started(step.index)

        def body() -> None:
            try:
                self._record(self.runner.run(ctx, step, mode))
            finally:
                self.tracker.finish(step.index)
                self._wakeup.set()

        thread = threading.Thread(target=body, name=f"run-step{step.index}", daemon=True)
        thread.start()
        return thread

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
        previous = self._install_signals()
        try:
            if self.settings.listen:
                from regplan.watch.endpoints import Endpoints

                self._endpoints = Endpoints(
                    self.settings.listen, metrics=self.metrics.render, not_ready=self.not_ready
                )
                self._endpoints.start()
            self._use_timetable(build_timetable(self._ctx.config.sync))
            if self._initial_pass() and not self._stop_requested.is_set():
                self._ready = True
                self.metrics.ready.set(1)
                log.info(
                    "Initial pass finished, running on schedule", steps=len(self._timetable.entries)
                )
                self._scheduler = Scheduler(
                    self._timetable.entries, self._fire, on_next=self._next_run
                )
                self._scheduler.start()
                self._serve_until_stopped()
            return self._shutdown()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _initial_pass(self) -> bool:
        """Every scheduled step once in missing mode. False when --abort-on-error saw an error."""
        steps = [e.step for e in self._timetable.entries]
        if not steps:
            return True
        if self._ctx.config.defaults.parallel > 0:
            threads = [self._start_run(step, MISSING) for step in steps]
            self._wait_for(threads)
        else:  # regsync: sequential when parallel is 0
            for step in steps:
                if self._stop_requested.is_set():
                    break
                self._wait_for([self._start_run(step, MISSING)])
        with self._lock:
            errors = self._tally.errors
        if errors and self.settings.abort_on_error:
            log.error("Initial pass failed, stopping (--abort-on-error)", errors=errors)
            return False
        return True

    def _wait_for(self, threads: Sequence[threading.Thread | None]) -> None:
        """Wait for runs, still answering signals (a reload waits until the pass is over)."""
        for thread in threads:
            while thread is not None and thread.is_alive():
                if self._stop_requested.is_set():
                    return
                self._wakeup.wait(0.5)
                self._wakeup.clear()

    def _serve_until_stopped(self) -> None:
        while not self._stop_requested.is_set():
            self._wakeup.wait(1.0)
            self._wakeup.clear()
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._reload()

    def _reload(self) -> None:
        from regplan.config import load_config
        from regplan.registry.client import RegistryClient

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
        old = {_identity(s) for s in self._ctx.config.sync}
        changed = [e.step for e in timetable.entries if _identity(e.step) not in old]
        self._ctx = RunContext(config, RegistryClient.from_config(config, counter=self._counter))
        self._clients.append(self._ctx.client)
        self._use_timetable(timetable)
        assert self._scheduler is not None
        self._scheduler.replace(timetable.entries)
        self.metrics.reloads.labels("success").inc()
        log.info("Config reloaded", file=path, steps=len(timetable.entries), changed=len(changed))
        for step in changed:  # new or edited steps get their missing pass now
            self._start_run(step, MISSING)

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
        running = self.tracker.running()
        stop_started = time.monotonic()
        log.debug("Waiting on running tasks", steps=running, grace=f"{grace:g}s")
        if not self.tracker.wait_idle(grace):
            log.warn(
                "Grace period over, cancelling running tasks",
                steps=self.tracker.running(),
                grace=f"{grace:g}s",
            )
            self.controls.cancel.set()
            if not self.tracker.wait_idle(AFTER_CANCEL_WAIT):
                log.error("Tasks did not stop, exiting anyway", steps=self.tracker.running())
                self._record_errors(1)
        if self._endpoints is not None:
            self._endpoints.stop()
        for client in self._clients:
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
