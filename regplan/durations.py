"""Go `time.Duration` text: parsing (`1h15m`, `1.5h`, `300ms`) and printing (`1h15m0s`).

regsync reads every duration in its config with Go's `time.ParseDuration`, and templates print
them with `Duration.String()`; both are reproduced here exactly, on integer nanoseconds so that
`1.1s` stays exact and the printed text round-trips.
"""

from __future__ import annotations

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC Greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_MAX = (1 << 63) - 1  # Go's Duration is an int64 of nanoseconds


class DurationError(ValueError):
    """Text that Go's time.ParseDuration would refuse."""


def parse_duration_ns(text: str) -> int:
    """Nanoseconds in `text`, with Go's grammar: `[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+` or `0`."""
    orig = text
    s = text
    neg = False
    if s and s[0] in "-+":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f'time: invalid duration "{orig}"')
    total = 0
    while s:
        i = 0
        while i < len(s) and s[i].isascii() and s[i].isdigit():
            i += 1
        whole = s[:i]
        s = s[i:]
        frac = ""
        if s.startswith("."):
            s = s[1:]
            j = 0
            while j < len(s) and s[j].isascii() and s[j].isdigit():
                j += 1
            frac = s[:j]
            s = s[j:]
        if not whole and not frac:
            raise DurationError(f'time: invalid duration "{orig}"')
        j = 0
        while j < len(s) and s[j] != "." and not (s[j].isascii() and s[j].isdigit()):
            j += 1
        unit_text = s[:j]
        s = s[j:]
        if not unit_text:
            raise DurationError(f'time: missing unit in duration "{orig}"')
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise DurationError(f'time: unknown unit "{unit_text}" in duration "{orig}"')
        value = int(whole or "0") * unit
        if frac:
            # Exact: the fraction in units, truncated to whole nanoseconds (as Go does).
            value += int(frac) * unit // (10 ** len(frac))
        total += value
        if total > _MAX + (1 if neg else 0):
            raise DurationError(f'time: invalid duration "{orig}"')
    return -total if neg else total


def parse_duration(text: str) -> float:
    """Seconds in Go duration text (`60m` → 3600.0)."""
    return parse_duration_ns(text) / SECOND


def _fmt_frac(value: int, prec: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of `value` with `prec` digits, trailing zeros dropped."""
    digits = ""
    printed = False
    for _ in range(prec):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits = str(digit) + digits
        value //= 10
    return ("." + digits if printed else ""), value


def format_duration_ns(ns: int) -> str:
    """Go's `Duration.String()`: `1h0m0s`, `1.5s`, `300ms`, `0s`."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u < MICROSECOND:
            text = f"{u}ns"
        elif u < MILLISECOND:
            frac, whole = _fmt_frac(u, 3)
            text = f"{whole}{frac}µs"
        else:
            frac, whole = _fmt_frac(u, 6)
            text = f"{whole}{frac}ms"
    else:
        frac, whole = _fmt_frac(u, 9)
        secs = whole % 60
        whole //= 60
        text = f"{secs}{frac}s"
        if whole > 0:
            mins = whole % 60
            hours = whole // 60
            text = f"{mins}m{text}"
            if hours > 0:
                text = f"{hours}h{text}"
    return "-" + text if neg else text


def format_duration(seconds: float) -> str:
    """Go duration text for a number of seconds (`3600.0` → `1h0m0s`)."""
    return format_duration_ns(round(seconds * SECOND))
