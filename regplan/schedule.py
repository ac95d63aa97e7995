"""Step schedules: regsync's robfig/cron syntax, evaluated with croniter.

Accepted, as robfig/cron v3's standard parser accepts them:
- five fields `minute hour day-of-month month day-of-week` (`*`, `?`, lists, ranges, steps,
  month and weekday names);
- descriptors `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`;
- `@every <Go duration>` (rounded up to whole seconds, at least 1s);
- an optional `CRON_TZ=Zone ` or `TZ=Zone ` prefix; without it, local time.
Six fields are refused with a clear message: robfig reads seconds first, croniter last, so a
6-field spec would silently mean something else.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from regplan.durations import SECOND, DurationError, format_duration_ns, parse_duration_ns


class ScheduleError(ValueError):
    """A schedule that does not parse."""


_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_VALUE = r"(?:[0-9]+|[A-Za-z]{3})"
_ITEM = rf"(?:\*|\?|{_VALUE}(?:-{_VALUE})?)(?:/[0-9]+)?"
_FIELD_RE = re.compile(rf"{_ITEM}(?:,{_ITEM})*")
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: either a cron expression or a fixed `@every` delay."""

    text: str  # as written
    cron: str = ""  # five-field expression for croniter ("" for @every)
    every: float = 0.0  # seconds, for @every
    zone: str = ""  # IANA zone from CRON_TZ=/TZ=; "" = local time

    def _tz(self) -> dt.tzinfo | None:
        if not self.zone:
            return None
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.zone)

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first run strictly after `when` (naive datetimes are local time); the result is
        aware, in the schedule's zone (local time unless CRON_TZ/TZ)."""
        tz = self._tz()
        start = when if when.tzinfo else when.astimezone()
        start = start.astimezone(tz) if tz else start.astimezone()
        if self.every:
            # robfig's ConstantDelaySchedule: whole seconds after the (truncated) current second.
            return start.replace(microsecond=0) + dt.timedelta(seconds=self.every)
        from croniter import croniter

        nxt = croniter(self.cron, start).get_next(dt.datetime)
        assert isinstance(nxt, dt.datetime)
        return nxt

    def __str__(self) -> str:
        return self.text


def every(seconds: float) -> Schedule:
    """The schedule regsync builds from `interval` (`@every 1h0m0s`)."""
    return parse_schedule("@every " + format_duration_ns(round(seconds * SECOND)))


def parse_schedule(text: str) -> Schedule:
    spec = text.strip()
    zone = ""
    if spec.startswith(("CRON_TZ=", "TZ=")):
        head, _, spec = spec.partition(" ")
        zone = head.split("=", 1)[1]
        spec = spec.strip()
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(zone)
        except Exception:
            raise ScheduleError(f'unknown time zone "{zone}" in schedule "{text}"') from None
    if not spec:
        raise ScheduleError(f'empty schedule "{text}"')
    if spec.startswith("@every"):
        rest = spec[len("@every") :]
        if not rest[:1].isspace():
            raise ScheduleError(f'invalid schedule "{text}": @every needs a duration')
        try:
            ns = parse_duration_ns(rest.strip())
        except DurationError as e:
            raise ScheduleError(f'invalid schedule "{text}": {e}') from None
        if ns <= 0:
            raise ScheduleError(f'invalid schedule "{text}": @every needs a positive duration')
        secs = max(ns // SECOND, 1)  # robfig truncates to whole seconds, minimum one second
        return Schedule(text=text, every=float(secs), zone=zone)
    if spec.startswith("@"):
        cron = _DESCRIPTORS.get(spec.lower() if spec.lower() in _DESCRIPTORS else spec)
        if cron is None:
            raise ScheduleError(f'unrecognized descriptor "{spec}" in schedule "{text}"')
        return Schedule(text=text, cron=cron, zone=zone)
    fields = spec.split()
    if len(fields) == 6:
        raise ScheduleError(
            f'invalid schedule "{text}": 6 fields (with seconds) are not supported; '
            "use 5 fields: minute hour day-of-month month day-of-week"
        )
    if len(fields) != 5:
        raise ScheduleError(
            f'invalid schedule "{text}": expected 5 fields '
            f"(minute hour day-of-month month day-of-week), found {len(fields)}"
        )
    for name, value in zip(_FIELD_NAMES, fields, strict=True):
        if not _FIELD_RE.fullmatch(value):
            raise ScheduleError(f'invalid schedule "{text}": bad {name} field "{value}"')
    cron = " ".join(fields)
    from croniter import croniter

    try:
        it = croniter(cron, dt.datetime(2000, 1, 1))
    except Exception as e:
        raise ScheduleError(f'invalid schedule "{text}": {e}') from None
    try:
        it.get_next(dt.datetime)
    except Exception:
        # e.g. "0 0 31 2 *": robfig accepts it and never runs the step; say so now instead.
        raise ScheduleError(f'invalid schedule "{text}": it never fires') from None
    return Schedule(text=text, cron=cron, zone=zone)
