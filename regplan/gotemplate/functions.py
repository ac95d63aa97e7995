"""Go text/template's built-in functions (`and or not len index slice print printf println eq
ne lt le gt ge html js urlquery`). A template's own functions come in a function map."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from regplan.gotemplate.format import format_value, go_sprintf, sprint, sprintln
from regplan.gotemplate.values import NO_VALUE, ExecError, is_nil, need_str, truth, type_name


@dataclass(frozen=True)
class Func:
    """A template function and how many arguments it takes."""

    call: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: variadic


FuncMap = Mapping[str, Func]


def _need_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise ExecError(f"cannot index slice/array with type {type_name(v)}")


def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise ExecError("missing argument for comparison")
    k1 = _basic_kind(a)
    for b in others:
        k2 = _basic_kind(b)
        if k1 != k2:
            if not is_nil(a) and not is_nil(b):
                raise ExecError("incompatible types for comparison")
            continue
        if k1 != "other":
            if a == b:
                return True
            continue
        if is_nil(a) or is_nil(b):
            if is_nil(a) and is_nil(b):
                return True
            continue
        if isinstance(a, list | tuple | dict) or isinstance(b, list | tuple | dict):
            raise ExecError(f"non-comparable type {format_value(a)}: {type_name(a)}")
        if a == b:
            return True
    return False


def _ordered(a: Any, b: Any) -> int:
    k1, k2 = _basic_kind(a), _basic_kind(b)
    if k1 != k2:
        raise ExecError("incompatible types for comparison")
    if k1 not in ("int", "float", "string"):
        raise ExecError("invalid type for comparison")
    return (a > b) - (a < b)


def _length(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogatepass"))
    if isinstance(v, list | tuple | dict):
        return len(v)
    raise ExecError(f"len of type {type_name(v)}")


def _index(item: Any, *indexes: Any) -> Any:
    for idx in indexes:
        if is_nil(item):
            raise ExecError("index of untyped nil")
        if isinstance(item, dict):
            if not isinstance(idx, str):
                raise ExecError(f"value has type {type_name(idx)}; should be string")
            item = item.get(idx, NO_VALUE)
        elif isinstance(item, list | tuple | str):
            seq: Sequence[Any] = item.encode() if isinstance(item, str) else item
            i = _need_int(idx)
            if not 0 <= i < len(seq):
                raise ExecError(f"index out of range: {i}")
            item = seq[i]
        else:
            raise ExecError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if is_nil(item):
        raise ExecError("slice of untyped nil")
    if len(indexes) > 3:
        raise ExecError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise ExecError("cannot 3-index slice a string")
        seq: Any = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, list | tuple):
        seq = list(item)
    else:
        raise ExecError(f"can't slice item of type {type_name(item)}")
    idx = [_need_int(i) for i in indexes]
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(seq)
    cap = idx[2] if len(idx) > 2 else len(seq)
    if not 0 <= lo <= hi <= cap <= len(seq):
        raise ExecError(
            f"invalid slice index: {lo} > {hi}" if lo > hi else "slice index out of range"
        )
    out = seq[lo:hi]
    return out.decode("utf-8", "replace") if isinstance(out, bytes) else out


def _html(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else sprint(args)
    for a, b in (
        ("&", "&amp;"),
        ("'", "&#39;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ('"', "&#34;"),
        ("\0", "\ufffd"),
    ):
        text = text.replace(a, b)
    return text


def _js(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else sprint(args)
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append('\\"')
        elif ch in "<>&=`" or ord(ch) < 0x20 or not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else sprint(args)
    return urllib.parse.quote_plus(text, safe="-_.~")


def _not(v: Any) -> bool:
    return not truth(v)


BUILTINS: dict[str, Func] = {
    "and": Func(lambda *a: a, 1, None),  # evaluated lazily by the executor
    "or": Func(lambda *a: a, 1, None),
    "not": Func(_not, 1, 1),
    "len": Func(_length, 1, 1),
    "index": Func(_index, 1, None),
    "slice": Func(_slice, 1, None),
    "print": Func(lambda *a: sprint(a), 0, None),
    "printf": Func(lambda f, *a: go_sprintf(need_str(f), a), 1, None),
    "println": Func(lambda *a: sprintln(a), 0, None),
    "eq": Func(_eq, 1, None),
    "ne": Func(lambda a, b: not _eq(a, b), 2, 2),
    "lt": Func(lambda a, b: _ordered(a, b) < 0, 2, 2),
    "le": Func(lambda a, b: _ordered(a, b) <= 0, 2, 2),
    "gt": Func(lambda a, b: _ordered(a, b) > 0, 2, 2),
    "ge": Func(lambda a, b: _ordered(a, b) >= 0, 2, 2),
    "html": Func(_html, 0, None),
    "js": Func(_js, 0, None),
    "urlquery": Func(_urlquery, 0, None),
}
