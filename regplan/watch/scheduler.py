"""When each step runs: regsync's schedule/interval rule, and the thread that fires the steps.

regsync builds one robfig/cron entry per step: `schedule` if set, else `@every <interval>`; a
step with neither is logged and ignored. The scheduler here fires each entry at its next time
and computes the following one from the moment it fired (robfig's rule), so a slow run never
shifts the timetable. It does not run anything itself: `fire` must return at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from regplan import logs
from regplan.config.model import SyncStep
from regplan.schedule import Schedule, ScheduleError, every, parse_schedule

log = logs.get(__name__)

MAX_SLEEP = 30.0  # seconds; re-read the wall clock at least this often (clock jumps, DST)


StepKey = SyncStep  # a step without its position (see step_key)


def step_key(step: SyncStep) -> StepKey:
    """What a step is, not where it stands in the file: its resolved type, source, target and
    options. Runs are tracked by it, so inserting or moving steps in a reload shifts nothing."""
    return dataclasses.replace(step, index=0, line=0)


@dataclass(frozen=True)
class ScheduledStep:
    step: SyncStep
    schedule: Schedule

    @property
    def key(self) -> StepKey:
        return step_key(self.step)


@dataclass(frozen=True)
class Timetable:
    """The steps that will run, and the problems found building their schedules."""

    entries: tuple[ScheduledStep, ...]
    errors: tuple[tuple[int, str], ...] = ()  # (step index, message): invalid schedules, exit 1
    ignored: tuple[
        int, ...
    ] = ()  # steps with neither schedule nor interval (regsync: not an error)


def schedule_of(step: SyncStep) -> Schedule | None:
    """`schedule` overrides `interval`; None when the step has neither. Raises ScheduleError."""
    if step.schedule:
        return parse_schedule(step.schedule)
    if step.interval > 0:
        return every(step.interval)
    return None


def build_timetable(steps: Sequence[SyncStep]) -> Timetable:
    """Schedules for `steps`, logged with regsync's messages."""
    entries: list[ScheduledStep] = []
    errors: list[tuple[int, str]] = []
    ignored: list[int] = []
    for step in steps:
        try:
            schedule = schedule_of(step)
        except ScheduleError as e:
            log.error(
                "Failed to schedule cron",
                step=step.index,
                source=step.source,
                target=step.target,
                sched=step.schedule,
                err=str(e),
            )
            errors.append((step.index, f"{step.name}: {e}"))
            continue
        if schedule is None:
            log.error(
                "No schedule or interval found, ignoring",
                step=step.index,
                source=step.source,
                target=step.target,
                type=step.type,
            )
            ignored.append(step.index)
            continue
        log.debug(
            "Scheduled task",
            source=step.source,
            target=step.target,
            type=step.type,
            sched=schedule.text,
        )
        entries.append(ScheduledStep(step, schedule))
    return Timetable(tuple(entries), tuple(errors), tuple(ignored))


def local_now() -> dt.datetime:
    return dt.datetime.now().astimezone()


class Scheduler:
    """Fires every armed entry of a timetable on time, from one thread, until stopped.

    `fire(entry)` is called from the scheduler thread and must not block (start the run
    elsewhere). `on_next(entry, when)` reports each entry's next fire time (for metrics).
    An entry that is not armed is not fired: the server arms a step once its missing-mode
    run is over, so each step's schedule starts on its own, whatever the others do.
    `beat` is the monotonic time of the loop's last turn (a liveness heartbeat)."""

    def __init__(
        self,
        entries: Sequence[ScheduledStep],
        fire: Callable[[ScheduledStep], None],
        *,
        on_next: Callable[[ScheduledStep, dt.datetime], None] | None = None,
        now: Callable[[], dt.datetime] = local_now,
        armed: Collection[StepKey] | None = None,
    ) -> None:
        self._fire = fire
        self._on_next = on_next
        self._now = now
        self._lock = threading.Lock()
        self._entries: dict[StepKey, ScheduledStep] = {}
        self._next: dict[StepKey, dt.datetime] = {}  # armed entries only
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.beat = time.monotonic()
        self.replace(entries, armed=armed)

    def replace(
        self, entries: Sequence[ScheduledStep], *, armed: Collection[StepKey] | None = None
    ) -> None:
        """Swap the timetable (config reload); next times are computed from now. `armed`:
        the keys that may fire (None: all)."""
        now = self._now()
        with self._lock:
            self._entries = {e.key: e for e in entries}
            self._next = {
                k: e.schedule.next_after(now)
                for k, e in self._entries.items()
                if armed is None or k in armed
            }
            announced = [(self._entries[k], when) for k, when in self._next.items()]
        for entry, when in announced:
            self._announce(entry, when)
        self._wake.set()

    def arm(self, key: StepKey) -> None:
        """Let an entry fire, from its next time after now; no-op for an unknown or armed one."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or key in self._next:
                return
            when = self._next[key] = entry.schedule.next_after(self._now())
        self._announce(entry, when)
        self._wake.set()

    def armed(self) -> set[StepKey]:
        with self._lock:
            return set(self._next)

    def next_times(self) -> dict[int, dt.datetime]:
        """Next fire time by step index (armed entries)."""
        with self._lock:
            return {self._entries[k].step.index: when for k, when in self._next.items()}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _announce(self, entry: ScheduledStep, when: dt.datetime) -> None:
        if self._on_next is not None:
            self._on_next(entry, when)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.beat = time.monotonic()
            self._wake.clear()
            now = self._now()
            with self._lock:
                due = [k for k, when in self._next.items() if when <= now]
                for k in due:
                    self._next[k] = self._entries[k].schedule.next_after(now)
                announced = [(self._entries[k], self._next[k]) for k in due]
                soonest = min(self._next.values(), default=None)
            for entry, _ in announced:
                if self._stop.is_set():
                    return
                try:
                    self._fire(entry)
                except Exception as e:  # a broken callback must not stop every schedule
                    log.error("Failed to start task", step=entry.step.index, error=repr(e))
            for entry, when in announced:
                self._announce(entry, when)
            delay = MAX_SLEEP if soonest is None else (soonest - self._now()).total_seconds()
            self._wake.wait(min(max(delay, 0.0), MAX_SLEEP))
