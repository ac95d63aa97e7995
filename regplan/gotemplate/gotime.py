"""Go `time` values for templates: reference-layout formatting/parsing and the methods people call.

regsync's `time` template function returns `Now()` and `Parse(layout, value)`; their results are Go
`time.Time` values, used as `{{ (time.Now).Format "2006-01-02" }}` or `.Unix`. Layouts are Go's
reference time `Mon Jan 2 15:04:05 MST 2006` (`2006-01-02T15:04:05Z07:00`), tokenised the way Go's
`nextStdChunk` does.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from typing import Any

from regplan.durations import format_duration_ns

_LONG_MONTHS = [calendar.month_name[i] for i in range(1, 13)]
_SHORT_MONTHS = [m[:3] for m in _LONG_MONTHS]
_LONG_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_SHORT_DAYS = [d[:3] for d in _LONG_DAYS]
_NS_PER_S = 1_000_000_000


class GoTimeError(ValueError):
    """A layout/value pair that Go's time.Parse refuses."""


class GoDuration(int):
    """A Go `time.Duration` (nanoseconds) that prints as `1h0m0s` but compares as an integer."""

    def __str__(self) -> str:
        return format_duration_ns(int(self))

    def go_method(self, name: str) -> Callable[..., Any] | None:
        methods: dict[str, Callable[..., Any]] = {
            "String": lambda: str(self),
            "Seconds": lambda: int(self) / _NS_PER_S,
            "Minutes": lambda: int(self) / (60 * _NS_PER_S),
            "Hours": lambda: int(self) / (3600 * _NS_PER_S),
            "Milliseconds": lambda: int(self) // 1_000_000,
            "Microseconds": lambda: int(self) // 1_000,
            "Nanoseconds": lambda: int(self),
        }
        return methods.get(name)


class GoMonth(int):
    """`time.Month`: prints `January`, compares as 1."""

    def __str__(self) -> str:
        return _LONG_MONTHS[self - 1] if 1 <= self <= 12 else f"%!Month({int(self)})"

    def go_method(self, name: str) -> Callable[..., Any] | None:
        return (lambda: str(self)) if name == "String" else None


class GoWeekday(int):
    """`time.Weekday`: prints `Sunday`, compares as 0."""

    def __str__(self) -> str:
        return _LONG_DAYS[self] if 0 <= self <= 6 else f"%!Weekday({int(self)})"

    def go_method(self, name: str) -> Callable[..., Any] | None:
        return (lambda: str(self)) if name == "String" else None


# -- layout tokens ----------------------------------------------------------------------------
def _starts_lower(s: str) -> bool:
    return bool(s) and "a" <= s[0] <= "z"


def _is_digit(s: str, i: int) -> bool:
    return i < len(s) and "0" <= s[i] <= "9"


def next_std_chunk(layout: str) -> tuple[str, str, str]:
    """(literal prefix, std token or "", rest): Go's nextStdChunk."""
    i = 0
    n = len(layout)
    while i < n:
        c = layout[i]
        rest = layout[i:]
        if c == "J" and rest.startswith("Jan"):
            if rest.startswith("January"):
                return layout[:i], "January", layout[i + 7 :]
            if not _starts_lower(layout[i + 3 :]):
                return layout[:i], "Jan", layout[i + 3 :]
        elif c == "M" and rest.startswith("Mon"):
            if rest.startswith("Monday"):
                return layout[:i], "Monday", layout[i + 6 :]
            if not _starts_lower(layout[i + 3 :]):
                return layout[:i], "Mon", layout[i + 3 :]
        elif c == "M" and rest.startswith("MST"):
            return layout[:i], "MST", layout[i + 3 :]
        elif c == "0" and i + 1 < n and "1" <= layout[i + 1] <= "6":
            return layout[:i], layout[i : i + 2], layout[i + 2 :]
        elif c == "0" and rest.startswith("002"):
            return layout[:i], "002", layout[i + 3 :]
        elif c == "1":
            if rest.startswith("15"):
                return layout[:i], "15", layout[i + 2 :]
            return layout[:i], "1", layout[i + 1 :]
        elif c == "2":
            if rest.startswith("2006"):
                return layout[:i], "2006", layout[i + 4 :]
            return layout[:i], "2", layout[i + 1 :]
        elif c == "_":
            if rest.startswith("_2"):
                if rest.startswith("_2006"):
                    return layout[: i + 1], "2006", layout[i + 5 :]
                return layout[:i], "_2", layout[i + 2 :]
            if rest.startswith("__2"):
                return layout[:i], "__2", layout[i + 3 :]
        elif c in "345":
            return layout[:i], c, layout[i + 1 :]
        elif c == "P" and rest.startswith("PM"):
            return layout[:i], "PM", layout[i + 2 :]
        elif c == "p" and rest.startswith("pm"):
            return layout[:i], "pm", layout[i + 2 :]
        elif c in "-Z":
            for tok in ("070000", "07:00:00", "0700", "07:00", "07"):
                if rest[1:].startswith(tok):
                    return layout[:i], c + tok, layout[i + 1 + len(tok) :]
        elif c in ".," and i + 1 < n and layout[i + 1] in "09":
            ch = layout[i + 1]
            j = i + 1
            while j < n and layout[j] == ch:
                j += 1
            if not _is_digit(layout, j):
                return layout[:i], layout[i:j], layout[j:]
        i += 1
    return layout, "", ""


# -- formatting -------------------------------------------------------------------------------
def _offset_parts(t: dt.datetime) -> tuple[str, int, int, int]:
    off = t.utcoffset() or dt.timedelta(0)
    secs = int(off.total_seconds())
    sign = "-" if secs < 0 else "+"
    secs = abs(secs)
    return sign, secs // 3600, (secs // 60) % 60, secs % 60


def _format_std(t: dt.datetime, ns: int, std: str) -> str:
    if std == "2006":
        return f"{t.year:04d}"
    if std == "06":
        return f"{t.year % 100:02d}"
    if std == "January":
        return _LONG_MONTHS[t.month - 1]
    if std == "Jan":
        return _SHORT_MONTHS[t.month - 1]
    if std == "1":
        return str(t.month)
    if std == "01":
        return f"{t.month:02d}"
    if std == "Monday":
        return _LONG_DAYS[(t.weekday() + 1) % 7]
    if std == "Mon":
        return _SHORT_DAYS[(t.weekday() + 1) % 7]
    if std == "2":
        return str(t.day)
    if std == "_2":
        return f"{t.day:2d}"
    if std == "02":
        return f"{t.day:02d}"
    if std == "__2":
        return f"{t.timetuple().tm_yday:3d}"
    if std == "002":
        return f"{t.timetuple().tm_yday:03d}"
    if std == "15":
        return f"{t.hour:02d}"
    if std in ("3", "03"):
        hr = t.hour % 12 or 12
        return str(hr) if std == "3" else f"{hr:02d}"
    if std == "4":
        return str(t.minute)
    if std == "04":
        return f"{t.minute:02d}"
    if std == "5":
        return str(t.second)
    if std == "05":
        return f"{t.second:02d}"
    if std == "PM":
        return "PM" if t.hour >= 12 else "AM"
    if std == "pm":
        return "pm" if t.hour >= 12 else "am"
    if std == "MST":
        name = t.tzname() or ""
        if name and name[0] not in "+-":
            return name
        sign, h, m, _ = _offset_parts(t)
        return f"{sign}{h:02d}{m:02d}" if m else f"{sign}{h:02d}"
    if std[0] in "-Z":
        sign, h, m, s = _offset_parts(t)
        if std[0] == "Z" and (h, m, s) == (0, 0, 0):
            return "Z"
        body = std[1:]
        if body == "07":
            return f"{sign}{h:02d}"
        if body == "0700":
            return f"{sign}{h:02d}{m:02d}"
        if body == "07:00":
            return f"{sign}{h:02d}:{m:02d}"
        if body == "070000":
            return f"{sign}{h:02d}{m:02d}{s:02d}"
        return f"{sign}{h:02d}:{m:02d}:{s:02d}"
    # fractional seconds: .000 keeps every digit, .999 drops trailing zeros (and the dot)
    digits = f"{ns:09d}"[: len(std) - 1]
    if std[1] == "9":
        digits = digits.rstrip("0")
        return std[0] + digits if digits else ""
    return std[0] + digits


def format_time(t: dt.datetime, ns: int, layout: str) -> str:
    out: list[str] = []
    while layout:
        prefix, std, layout = next_std_chunk(layout)
        out.append(prefix)
        if not std:
            break
        out.append(_format_std(t, ns, std))
    return "".join(out)


# -- parsing ----------------------------------------------------------------------------------
def _getnum(value: str, fixed: bool) -> tuple[int, str] | None:
    if not _is_digit(value, 0):
        return None
    if not _is_digit(value, 1):
        if fixed:
            return None
        return int(value[0]), value[1:]
    return int(value[:2]), value[2:]


def _lookup(names: list[str], value: str) -> tuple[int, str] | None:
    for i, name in enumerate(names):
        if value[: len(name)].lower() == name.lower():
            return i, value[len(name) :]
    return None


def parse_time(layout: str, value: str) -> GoTime:
    """Go's time.Parse: no zone in the value means UTC."""
    orig_layout, orig_value = layout, value
    year, month, day, hour, minute, second, ns = 1, 1, 1, 0, 0, 0, 0
    pm_set = am_set = False
    tz: dt.tzinfo | None = None

    def fail(elem: str, std: str) -> GoTimeError:
        return GoTimeError(
            f'parsing time "{orig_value}" as "{orig_layout}": cannot parse "{elem}" as "{std}"'
        )

    while True:
        prefix, std, layout = next_std_chunk(layout)
        if not value.startswith(prefix):
            raise fail(value, prefix)
        value = value[len(prefix) :]
        if not std:
            if value:
                raise GoTimeError(
                    f'parsing time "{orig_value}": extra text: "{value}"'
                    if not layout
                    else f'parsing time "{orig_value}" as "{orig_layout}": cannot parse "{value}"'
                )
            break
        hold = value
        got: tuple[int, str] | None
        if std == "2006":
            if len(value) < 4 or not value[:4].isdigit():
                raise fail(hold, std)
            year, value = int(value[:4]), value[4:]
        elif std == "06":
            got = _getnum(value, True)
            if got is None:
                raise fail(hold, std)
            year = got[0] + (1900 if got[0] >= 69 else 2000)
            value = got[1]
        elif std in ("January", "Jan"):
            got = _lookup(_LONG_MONTHS if std == "January" else _SHORT_MONTHS, value)
            if got is None:
                raise fail(hold, std)
            month, value = got[0] + 1, got[1]
        elif std in ("Monday", "Mon"):
            got = _lookup(_LONG_DAYS if std == "Monday" else _SHORT_DAYS, value)
            if got is None:
                raise fail(hold, std)
            value = got[1]
        elif std in ("1", "01"):
            got = _getnum(value, std == "01")
            if got is None or not 1 <= got[0] <= 12:
                raise GoTimeError(f'parsing time "{orig_value}": month out of range')
            month, value = got
        elif std in ("2", "_2", "02"):
            if std == "_2" and value.startswith(" "):
                value = value[1:]
            got = _getnum(value, std == "02")
            if got is None:
                raise fail(hold, std)
            day, value = got
        elif std in ("__2", "002"):
            raise GoTimeError(f'parsing time "{orig_value}": day-of-year layouts are not supported')
        elif std in ("15", "3", "03"):
            got = _getnum(value, std == "03")
            limit = 24 if std == "15" else 13
            if got is None or got[0] >= limit:
                raise GoTimeError(f'parsing time "{orig_value}": hour out of range')
            hour, value = got
        elif std in ("4", "04", "5", "05"):
            got = _getnum(value, std in ("04", "05"))
            if got is None or got[0] >= 60:
                what = "minute" if std in ("4", "04") else "second"
                raise GoTimeError(f'parsing time "{orig_value}": {what} out of range')
            if std in ("4", "04"):
                minute, value = got
            else:
                second, value = got
                # Go accepts a fractional second after the seconds even if the layout has none.
                nxt = next_std_chunk(layout)[1]
                if (
                    len(value) >= 2
                    and value[0] in ".,"
                    and _is_digit(value, 1)
                    and not (nxt and nxt[0] in ".,")
                ):
                    j = 1
                    while _is_digit(value, j):
                        j += 1
                    ns = int((value[1:j] + "000000000")[:9])
                    value = value[j:]
        elif std in ("PM", "pm"):
            word = value[:2]
            if word.upper() == "PM":
                pm_set = True
            elif word.upper() == "AM":
                am_set = True
            else:
                raise fail(hold, std)
            value = value[2:]
        elif std[0] in "-Z":
            if std[0] == "Z" and value.startswith("Z"):
                tz = dt.UTC
                value = value[1:]
                continue
            body = std[1:]
            width = {"07": 3, "0700": 5, "07:00": 6, "070000": 7, "07:00:00": 9}[body]
            chunk = value[:width]
            if len(chunk) < width or chunk[0] not in "+-":
                raise fail(hold, std)
            digits = chunk[1:].replace(":", "")
            if ":" in body and chunk[3] != ":":
                raise fail(hold, std)
            if not digits.isdigit():
                raise fail(hold, std)
            hh, mm, ss = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
            off = dt.timedelta(hours=hh, minutes=mm, seconds=ss)
            tz = dt.timezone(-off if chunk[0] == "-" else off)
            value = value[width:]
        elif std == "MST":
            j = 0
            while j < len(value) and "A" <= value[j] <= "Z":
                j += 1
            if j < 3:
                raise fail(hold, std)
            name = value[:j]
            tz = dt.UTC if name in ("UTC", "GMT") else dt.timezone(dt.timedelta(0), name)
            value = value[j:]
        else:  # fractional seconds
            ndigit = len(std) - 1
            if len(value) < 1 or value[0] not in ".,":
                if std[1] == "9":
                    continue
                raise fail(hold, std)
            j = 1
            while _is_digit(value, j):
                j += 1
            if std[1] == "0" and j - 1 != ndigit:
                raise fail(hold, std)
            ns = int((value[1:j] + "000000000")[:9])
            value = value[j:]
    if pm_set and hour < 12:
        hour += 12
    elif am_set and hour == 12:
        hour = 0
    if not 1 <= day <= 31 or day > calendar.monthrange(year, month)[1]:
        raise GoTimeError(f'parsing time "{orig_value}": day out of range')
    try:
        t = dt.datetime(year, month, day, hour, minute, second, ns // 1000, tzinfo=tz or dt.UTC)
    except ValueError as e:
        raise GoTimeError(f'parsing time "{orig_value}": {e}') from None
    return GoTime(t, ns)


class GoTime:
    """A Go `time.Time`: an aware datetime plus nanoseconds within the second."""

    def __init__(self, t: dt.datetime, ns: int | None = None) -> None:
        self.t = t if t.tzinfo else t.astimezone()
        self.ns = t.microsecond * 1000 if ns is None else ns

    @classmethod
    def now(cls) -> GoTime:
        return cls(dt.datetime.now().astimezone())

    def format(self, layout: str) -> str:
        return format_time(self.t, self.ns, layout)

    def __str__(self) -> str:
        return self.format("2006-01-02 15:04:05.999999999 -0700 MST")

    def unix_nano(self) -> int:
        base = self.t.replace(microsecond=0)
        return int(base.timestamp()) * _NS_PER_S + self.ns

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoTime) and self.unix_nano() == other.unix_nano()

    def __hash__(self) -> int:
        return hash(self.unix_nano())

    def _with(self, t: dt.datetime) -> GoTime:
        return GoTime(t, self.ns)

    def _add_date(self, years: int, months: int, days: int) -> GoTime:
        # Go normalises out-of-range months and days (Jan 31 + 1 month = Mar 3).
        total_months = self.t.month - 1 + months
        year = self.t.year + years + total_months // 12
        month = total_months % 12 + 1
        first = self.t.replace(year=year, month=month, day=1)
        return self._with(first + dt.timedelta(days=self.t.day - 1 + days))

    def go_method(self, name: str) -> Callable[..., Any] | None:
        t = self.t
        methods: dict[str, Callable[..., Any]] = {
            "Format": self.format,
            "String": lambda: str(self),
            "Unix": lambda: self.unix_nano() // _NS_PER_S,
            "UnixMilli": lambda: self.unix_nano() // 1_000_000,
            "UnixMicro": lambda: self.unix_nano() // 1_000,
            "UnixNano": self.unix_nano,
            "Year": lambda: t.year,
            "Month": lambda: GoMonth(t.month),
            "Day": lambda: t.day,
            "Hour": lambda: t.hour,
            "Minute": lambda: t.minute,
            "Second": lambda: t.second,
            "Nanosecond": lambda: self.ns,
            "Weekday": lambda: GoWeekday((t.weekday() + 1) % 7),
            "YearDay": lambda: t.timetuple().tm_yday,
            "UTC": lambda: self._with(t.astimezone(dt.UTC)),
            "Local": lambda: self._with(t.astimezone()),
            "IsZero": lambda: False,
            "AddDate": self._add_date,
            "Add": lambda d: GoTime.from_unix_nano(self.unix_nano() + int(d), t.tzinfo),
            "Sub": lambda other: GoDuration(self.unix_nano() - other.unix_nano()),
            "Before": lambda other: self.unix_nano() < other.unix_nano(),
            "After": lambda other: self.unix_nano() > other.unix_nano(),
            "Equal": lambda other: self.unix_nano() == other.unix_nano(),
        }
        return methods.get(name)

    @classmethod
    def from_unix_nano(cls, ns: int, tz: dt.tzinfo | None) -> GoTime:
        secs, frac = divmod(ns, _NS_PER_S)
        t = dt.datetime.fromtimestamp(secs, tz or dt.UTC).replace(microsecond=frac // 1000)
        return cls(t, frac)

    def rfc3339nano(self) -> str:
        return self.format("2006-01-02T15:04:05.999999999Z07:00")


class TimeFuncs:
    """What the `time` template function returns: `.Now` and `.Parse LAYOUT VALUE`."""

    def go_method(self, name: str) -> Callable[..., Any] | None:
        if name == "Now":
            return GoTime.now
        if name == "Parse":
            return parse_time
        return None

    def __str__(self) -> str:
        return "&{}"
