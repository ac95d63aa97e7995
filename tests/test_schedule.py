"""Schedules (robfig/cron syntax via croniter) and Go durations."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from regplan.durations import (
    DurationError,
    format_duration,
    format_duration_ns,
    parse_duration,
    parse_duration_ns,
)
from regplan.schedule import ScheduleError, every, parse_schedule

UTC = dt.UTC
START = dt.datetime(2024, 1, 1, 12, 0, 30, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60m", 3600.0),
        ("1h15m", 4500.0),
        ("30s", 30.0),
        ("12h", 43200.0),
        ("1.5h", 5400.0),
        ("300ms", 0.3),
        ("1us", 1e-6),
        ("1µs", 1e-6),
        ("1μs", 1e-6),
        ("10ns", 1e-8),
        ("0", 0.0),
        ("-1m", -60.0),
        ("+5m", 300.0),
        ("1h0m0s", 3600.0),
        (".5s", 0.5),
        ("2h45m30.5s", 9930.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1d", "5", "h", "1.2.3s", "--1s", "1 h", "1hh", ".s", "1e3s"])
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(DurationError, match="time: "):
        parse_duration(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (3600 * 10**9, "1h0m0s"),
        (300 * 10**9, "5m0s"),
        (30 * 10**9, "30s"),
        (1_500_000_000, "1.5s"),
        (300_000_000, "300ms"),
        (1_000, "1µs"),
        (5, "5ns"),
        (4500 * 10**9, "1h15m0s"),
        (-90 * 10**9, "-1m30s"),
        (100 * 3600 * 10**9, "100h0m0s"),
    ],
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration_ns(ns) == text
    assert parse_duration_ns(text) == ns


def test_format_duration_seconds() -> None:
    assert format_duration(900.0) == "15m0s"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("15 3 * * *", dt.datetime(2024, 1, 2, 3, 15, tzinfo=UTC)),
        ("15 01 * * *", dt.datetime(2024, 1, 2, 1, 15, tzinfo=UTC)),
        ("*/15 * * * *", dt.datetime(2024, 1, 1, 12, 15, tzinfo=UTC)),
        ("0 9 * * MON-FRI", dt.datetime(2024, 1, 2, 9, 0, tzinfo=UTC)),  # 2024-01-01 is a Monday
        ("0 0 1 JAN *", dt.datetime(2025, 1, 1, tzinfo=UTC)),
        ("30 12 * * ?", dt.datetime(2024, 1, 1, 12, 30, tzinfo=UTC)),
        ("0,30 * * * *", dt.datetime(2024, 1, 1, 12, 30, tzinfo=UTC)),
        ("@hourly", dt.datetime(2024, 1, 1, 13, 0, tzinfo=UTC)),
        ("@daily", dt.datetime(2024, 1, 2, tzinfo=UTC)),
        ("@midnight", dt.datetime(2024, 1, 2, tzinfo=UTC)),
        ("@weekly", dt.datetime(2024, 1, 7, tzinfo=UTC)),
        ("@monthly", dt.datetime(2024, 2, 1, tzinfo=UTC)),
        ("@yearly", dt.datetime(2025, 1, 1, tzinfo=UTC)),
        ("@annually", dt.datetime(2025, 1, 1, tzinfo=UTC)),
        ("@every 1h", dt.datetime(2024, 1, 1, 13, 0, 30, tzinfo=UTC)),
        ("@every 1h0m0s", dt.datetime(2024, 1, 1, 13, 0, 30, tzinfo=UTC)),
        ("@every 90s", dt.datetime(2024, 1, 1, 12, 2, 0, tzinfo=UTC)),
        ("@every 100ms", dt.datetime(2024, 1, 1, 12, 0, 31, tzinfo=UTC)),  # at least 1s
    ],
)
def test_next_after(text: str, want: dt.datetime) -> None:
    assert parse_schedule(text).next_after(START) == want


def test_cron_tz_prefix() -> None:
    sched = parse_schedule("CRON_TZ=America/New_York 0 9 * * *")
    nxt = sched.next_after(START)
    assert nxt == dt.datetime(2024, 1, 1, 14, 0, tzinfo=UTC)
    assert nxt.utcoffset() == dt.timedelta(hours=-5)
    assert parse_schedule("TZ=Europe/Paris @daily").next_after(START) == dt.datetime(
        2024, 1, 1, 23, 0, tzinfo=UTC
    )


def test_naive_is_local_time() -> None:
    sched = parse_schedule("0 * * * *")
    nxt = sched.next_after(dt.datetime(2024, 6, 1, 10, 30))
    assert nxt.tzinfo is not None
    assert nxt.replace(tzinfo=None) == dt.datetime(2024, 6, 1, 11, 0)


def test_every_from_interval() -> None:
    sched = every(3600.0)
    assert sched.text == "@every 1h0m0s"
    assert sched.every == 3600.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 15 3 * * *", "6 fields (with seconds) are not supported"),
        ("15 3 * *", "expected 5 fields"),
        ("61 * * * *", "out of range"),
        ("0 0 L * *", 'bad day of month field "L"'),
        ("0 0 * * 1#2", 'bad day of week field "1#2"'),
        ("0 0 31 2 *", "never fires"),
        ("@reboot", "unrecognized descriptor"),
        ("@every", "needs a duration"),
        ("@every 1d", 'unknown unit "d"'),
        ("@every 0s", "positive duration"),
        ("CRON_TZ=Mars/Olympus 0 0 * * *", 'unknown time zone "Mars/Olympus"'),
        ("", "empty schedule"),
        ("every hour", "expected 5 fields"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(message)):
        parse_schedule(text)
