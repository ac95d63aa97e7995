"""Go's fmt for template values: %v (how actions print), Sprint, Sprintln and Sprintf."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from regplan.gotemplate.gotime import GoDuration, GoMonth, GoTime, GoWeekday
from regplan.gotemplate.values import (
    MAX_OUTPUT,
    MAX_WIDTH,
    NO_VALUE,
    ExecError,
    GoStruct,
    is_nil,
    type_name,
)


def _shortest_digits(f: float) -> tuple[str, str, int]:
    """(sign, significant digits, decimal point position) of the shortest round-trip text."""
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    _, digit_tuple, exp = Decimal(repr(abs(f))).as_tuple()
    digits = "".join(map(str, digit_tuple))
    if not digits.strip("0"):
        return sign, "0", 1
    assert isinstance(exp, int)
    return sign, digits.rstrip("0"), len(digits) + exp


def go_float(f: float, verb: str = "g", prec: int = -1) -> str:
    """Go's fmt of a float64: %v/%g shortest (exponent form below 1e-4 and from 1e21... as
    strconv does: from 1e6 for shortest), %e/%f default precision 6."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if verb in "eEfF":
        text = f"{f:.{6 if prec < 0 else prec}{verb.lower()}}"
    elif prec >= 0:
        text = f"{f:.{prec or 1}g}"
    else:
        sign, digits, dp = _shortest_digits(f)
        exp = dp - 1
        if exp < -4 or exp >= 6:
            mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
            text = f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
        elif dp <= 0:
            text = f"{sign}0.{'0' * -dp}{digits}"
        elif dp >= len(digits):
            text = sign + digits + "0" * (dp - len(digits))
        else:
            text = f"{sign}{digits[:dp]}.{digits[dp:]}"
    return text.upper() if verb in "EFG" else text


def format_value(v: Any, plus: bool = False) -> str:
    """fmt's %v (and %+v) of a template value."""
    if v is NO_VALUE or v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, GoDuration | GoMonth | GoWeekday):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list | tuple):
        return "[" + " ".join(format_value(x, plus) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: str(kv[0]))
        return (
            "map[" + " ".join(f"{format_value(k)}:{format_value(x, plus)}" for k, x in items) + "]"
        )
    if isinstance(v, GoStruct):
        if plus:
            return "{" + " ".join(f"{k}:{format_value(x, plus)}" for k, x in v.fields) + "}"
        return "{" + " ".join(format_value(x) for _, x in v.fields) + "}"
    return str(v)


def print_value(v: Any) -> str:
    """How an action prints its pipeline's value."""
    if v is NO_VALUE:
        return "<no value>"
    return format_value(v)


def sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(a))
    return "".join(out)


def sprintln(args: Sequence[Any]) -> str:
    return " ".join(format_value(a) for a in args) + "\n"


_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif ch.isprintable() and code != 0x7F:
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _bad_verb(verb: str, arg: Any) -> str:
    if is_nil(arg):
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(arg)}={format_value(arg)})"


def _pad(text: str, width: int | None, minus: bool) -> str:
    if width and len(text) < width:
        return text.ljust(width) if minus else text.rjust(width)
    return text


def _format_int(verb: str, flags: str, width: int | None, prec: int | None, n: int) -> str:
    minus, plus, sharp, space, zero = (f in flags for f in "-+# 0")
    if verb == "c":
        return _pad(chr(n) if 0 <= n <= 0x10FFFF else "\ufffd", width, minus)
    if verb == "U":
        return _pad(f"U+{n:04X}", width, minus)
    if verb == "q":
        body = _go_quote(chr(n) if 0 <= n <= 0x10FFFF else "\ufffd")[1:-1]
        return _pad("'" + body.replace('\\"', '"').replace("'", "\\'") + "'", width, minus)
    digits = format(abs(n), verb)
    if prec is not None:
        digits = digits.rjust(prec, "0") if prec else ("" if n == 0 else digits)
    if sharp:
        digits = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "") + digits
    sign = "-" if n < 0 else ("+" if plus else (" " if space else ""))
    if zero and not minus and width and prec is None:
        return sign + digits.rjust(width - len(sign), "0")
    return _pad(sign + digits, width, minus)


def _format_float(verb: str, flags: str, width: int | None, prec: int | None, f: float) -> str:
    minus, plus, _, space, zero = (f_ in flags for f_ in "-+# 0")
    text = go_float(f, "g" if verb == "v" else verb, -1 if prec is None else prec)
    if not text.startswith("-") and (plus or space):
        text = ("+" if plus else " ") + text.lstrip("+")
    if zero and not minus and width and not math.isinf(f) and not math.isnan(f):
        sign = text[0] if text[0] in "+- " else ""
        return sign + text[len(sign) :].rjust(width - len(sign), "0")
    return _pad(text, width, minus)


def _format_one(verb: str, flags: str, width: int | None, prec: int | None, arg: Any) -> str:
    """One fmt verb applied to one argument, with Go's %!verb(type=value) for mismatches."""
    minus, plus, sharp = "-" in flags, "+" in flags, "#" in flags
    if verb == "T":
        return _pad(type_name(arg), width, minus)
    if isinstance(arg, list | tuple) and verb != "v":
        return "[" + " ".join(_format_one(verb, flags, width, prec, x) for x in arg) + "]"
    if isinstance(arg, bool):
        if verb in "vt":
            return _pad("true" if arg else "false", width, minus)
        return _bad_verb(verb, arg)
    if isinstance(arg, GoDuration | GoMonth | GoWeekday) and verb in "vs":
        return _pad(str(arg), width, minus)
    if isinstance(arg, int):
        if verb == "v":
            verb = "d"
        if verb in "dboxXcqU":
            return _format_int(verb, flags, width, prec, int(arg))
        return _bad_verb(verb, arg)
    if isinstance(arg, float):
        if verb in "veEfFgG":
            return _format_float(verb, flags, width, prec, arg)
        return _bad_verb(verb, arg)
    if isinstance(arg, str):
        if verb in "vs":
            text = arg if prec is None else arg[:prec]
            return _pad(_go_quote(text) if verb == "v" and sharp else text, width, minus)
        if verb == "q":
            if sharp and "`" not in arg and arg.isprintable():
                return _pad("`" + arg + "`", width, minus)
            return _pad(_go_quote(arg), width, minus)
        if verb in "xX":
            text = arg.encode("utf-8", "surrogatepass").hex()
            return _pad(text.upper() if verb == "X" else text, width, minus)
        return _bad_verb(verb, arg)
    if verb == "v" or (verb == "s" and isinstance(arg, GoTime)):
        return _pad(format_value(arg, plus), width, minus)
    return _bad_verb(verb, arg)


def go_sprintf(fmt: str, args: Sequence[Any]) -> str:
    """fmt.Sprintf for the verbs templates use: %v %+v %s %q %d %x %X %o %b %c %e %f %g %t %T %%."""
    out: list[str] = []
    i = 0
    argi = 0
    size = 0
    n = len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            j = fmt.find("%", i)
            j = n if j < 0 else j
            out.append(fmt[i:j])
            i = j
            continue
        i += 1
        flags = ""
        while i < n and fmt[i] in "-+# 0":
            flags += fmt[i]
            i += 1

        def number(i: int) -> tuple[int | None, int, bool]:
            nonlocal argi
            if i < n and fmt[i] == "*":
                if (
                    argi < len(args)
                    and isinstance(args[argi], int)
                    and not isinstance(args[argi], bool)
                ):
                    value = int(args[argi])
                    argi += 1
                    return value, i + 1, abs(value) <= MAX_WIDTH
                argi += 1
                return None, i + 1, False
            j = i
            while j < n and fmt[j].isdigit():
                j += 1
            if j == i:
                return None, i, True
            value = int(fmt[i:j]) if j - i <= 7 else MAX_WIDTH + 1
            return value, j, value <= MAX_WIDTH

        width, i, ok_w = number(i)
        if not ok_w:
            out.append("%!(BADWIDTH)")
            width = None
        if width is not None and width < 0:
            flags += "-"
            width = -width
        prec = None
        if i < n and fmt[i] == ".":
            prec, i, ok_p = number(i + 1)
            if not ok_p or (prec is not None and prec < 0):
                out.append("%!(BADPREC)")
                prec = None
            elif prec is None:
                prec = 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        out.append(_format_one(verb, flags, width, prec, arg))
        size += len(out[-1])
        if size > MAX_OUTPUT:
            raise ExecError("printf output exceeds the size limit")
    if argi < len(args):
        extra = ", ".join(
            f"{type_name(a)}={format_value(a)}" if not is_nil(a) else "<nil>" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
