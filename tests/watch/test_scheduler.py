"""When steps run: regsync's schedule/interval rule, the scheduler thread, skip-if-running."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from regplan.config.model import SyncStep
from regplan.schedule import ScheduleError
from regplan.watch.runs import FULL, SUCCESS, RunResult
from regplan.watch.scheduler import ScheduledStep, Scheduler, build_timetable, schedule_of

pytestmark = pytest.mark.timeout(30)


def step(index: int = 0, *, schedule: str = "", interval: float = 0.0) -> SyncStep:
    return SyncStep(
        index=index,
        line=0,
        source=f"ocidir:///src{index}:v1",
        target=f"ocidir:///dst{index}:v1",
        type="image",
        schedule=schedule,
        interval=interval,
    )


@pytest.mark.parametrize(
    ("schedule", "interval", "text", "every", "cron"),
    [
        ("", 3600.0, "@every 1h0m0s", 3600.0, ""),  # regsync: "@every " + interval.String()
        ("", 90.5, "@every 1m30.5s", 90.0, ""),  # robfig truncates to whole seconds
        ("15 3 * * *", 60.0, "15 3 * * *", 0.0, "15 3 * * *"),  # schedule overrides interval
        ("@hourly", 0.0, "@hourly", 0.0, "0 * * * *"),
        ("@every 2s", 0.0, "@every 2s", 2.0, ""),
        ("CRON_TZ=Europe/Paris 0 1 * * *", 0.0, "CRON_TZ=Europe/Paris 0 1 * * *", 0.0, "0 1 * * *"),
    ],
)
def test_schedule_of(schedule: str, interval: float, text: str, every: float, cron: str) -> None:
    got = schedule_of(step(schedule=schedule, interval=interval))
    assert got is not None
    assert (got.text, got.every, got.cron) == (text, every, cron)


def test_schedule_of_neither_and_invalid() -> None:
    assert schedule_of(step()) is None
    with pytest.raises(ScheduleError):
        schedule_of(step(schedule="0 0 * * * *"))  # six fields are refused


def test_cron_schedules_are_local_time_unless_cron_tz() -> None:
    local = schedule_of(step(schedule="30 2 * * *"))
    tokyo_schedule = schedule_of(step(schedule="CRON_TZ=Asia/Tokyo 30 2 * * *"))
    assert local is not None and tokyo_schedule is not None
    start = dt.datetime(2026, 3, 1, 0, 0).astimezone()
    assert local.next_after(start) == dt.datetime(2026, 3, 1, 2, 30).astimezone()
    tokyo = tokyo_schedule.next_after(start)
    assert (tokyo.hour, tokyo.minute, str(tokyo.tzinfo)) == (2, 30, "Asia/Tokyo")


def test_timetable_logs_regsync_messages(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="regplan")
    table = build_timetable(
        [step(0, interval=60), step(1), step(2, schedule="61 * * * *"), step(3, schedule="@daily")]
    )
    assert [e.step.index for e in table.entries] == [0, 3]
    assert table.ignored == (1,)
    assert [i for i, _ in table.errors] == [2]
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("DEBUG", "Scheduled task") in messages
    assert ("ERROR", "No schedule or interval found, ignoring") in messages
    assert ("ERROR", "Failed to schedule cron") in messages


@dataclass(frozen=True)
class FastSchedule:
    """A schedule in tenths of a second, so the scheduler can be tested in real time."""

    period: float
    text: str = "fast"

    def next_after(self, when: dt.datetime) -> dt.datetime:
        return when + dt.timedelta(seconds=self.period)


def test_scheduler_fires_each_entry_on_its_own_period() -> None:
    fired: list[int] = []
    nexts: dict[int, dt.datetime] = {}
    entries = [
        ScheduledStep(step(0), FastSchedule(0.1)),  # type: ignore[arg-type]
        ScheduledStep(step(1), FastSchedule(0.35)),  # type: ignore[arg-type]
    ]
    scheduler = Scheduler(
        entries,
        lambda e: fired.append(e.step.index),
        on_next=lambda e, when: nexts.__setitem__(e.step.index, when),
    )
    scheduler.start()
    time.sleep(1.05)
    scheduler.stop()
    count = len(fired)
    time.sleep(0.3)
    assert len(fired) == count  # nothing fires after stop
    assert 5 <= fired.count(0) <= 11  # generous: a loaded CI machine fires late
    assert 1 <= fired.count(1) <= 3
    assert set(nexts) == {0, 1}
    assert set(scheduler.next_times()) == {0, 1}


def test_scheduler_replace_takes_the_new_timetable() -> None:
    fired: list[int] = []
    scheduler = Scheduler(
        [ScheduledStep(step(0), FastSchedule(0.1))], lambda e: fired.append(e.step.index)
    )  # type: ignore[arg-type]
    scheduler.start()
    time.sleep(0.35)
    scheduler.replace([ScheduledStep(step(5), FastSchedule(0.1))])  # type: ignore[arg-type]
    fired.clear()
    time.sleep(0.35)
    scheduler.stop()
    assert fired and set(fired) == {5}


def test_a_failing_fire_callback_does_not_stop_the_schedule() -> None:
    calls: list[int] = []

    def fire(entry: ScheduledStep) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    scheduler = Scheduler([ScheduledStep(step(0), FastSchedule(0.05))], fire)  # type: ignore[arg-type]
    scheduler.start()
    deadline = time.monotonic() + 30  # a hang detector, not a timing: three fires must come
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    assert len(calls) >= 3


class SlowRunner:
    """Stands in for StepRunner: each run takes `seconds`; records how many overlap."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.active: dict[int, int] = {}
        self.max_active = 0
        self.runs = 0

    def run(self, ctx: object, s: SyncStep, mode: str, signals: object = None) -> RunResult:
        with self.lock:
            self.active[s.index] = self.active.get(s.index, 0) + 1
            self.max_active = max(self.max_active, self.active[s.index])
            self.runs += 1
        time.sleep(self.seconds)
        with self.lock:
            self.active[s.index] -= 1
        now = time.time()
        return RunResult(s.index, mode, SUCCESS, now - self.seconds, now, self.seconds)


def test_a_step_never_runs_twice_at_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Fires every 50 ms, runs take 300 ms: the fires in between are skipped and logged."""
    from tests.watch.embedded import layout_server

    server = layout_server(tmp_path)
    runner = SlowRunner(0.3)
    server.runner = runner  # type: ignore[assignment]
    entry = ScheduledStep(server._ctx.config.sync[0], FastSchedule(0.05))  # type: ignore[arg-type]
    server.metrics.describe_steps([entry])
    scheduler = Scheduler([entry], lambda e: server._start_run(e.step, FULL))
    caplog.set_level(logging.INFO, logger="regplan")
    scheduler.start()
    time.sleep(1.0)
    scheduler.stop()
    assert server.tracker.wait_idle(2)

    assert runner.max_active == 1
    assert 2 <= runner.runs <= 4
    skipped = [
        r for r in caplog.records if r.getMessage() == "Skipping task, previous run still going"
    ]
    assert len(skipped) >= 5
    text = server.metrics.render().decode()
    assert f'regplan_runs_skipped_total{{step="0"}} {float(len(skipped))}' in text
    assert (
        f'regplan_runs_total{{mode="full",outcome="success",step="0"}} {float(runner.runs)}' in text
    )
