"""Template values as Go sees them: no value, structs, type names, truth, JSON, and the bounds
every render keeps to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from regplan.gotemplate.gotime import GoDuration, GoMonth, GoTime, GoWeekday, TimeFuncs

# Hostile input cannot hang or exhaust the process: these bound every render.
MAX_DEPTH = 64  # nested actions, parentheses and control structures
MAX_STEPS = 200_000  # evaluation steps per render (range iterations, commands, ...)
MAX_OUTPUT = 1 << 20  # bytes of output, and of any single intermediate string
MAX_ITEMS = 100_000  # elements of any intermediate list
MAX_WIDTH = 1_000_000  # printf width/precision, as Go's fmt limits them


class ExecError(Exception):
    """An execution failure before it is located at a node; functions raise it to fail a
    render with their own message."""


class NoValue:
    """Go's invalid reflect.Value: a missing map key or a field of nil data."""

    _instance: NoValue | None = None

    def __new__(cls) -> NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = NoValue()
MISSING = object()  # "no final value" in a pipeline


@dataclass(frozen=True)
class GoStruct:
    """A Go struct value: named fields in order, an optional JSON name for each."""

    type_name: str
    fields: tuple[tuple[str, Any], ...]
    json_names: tuple[str, ...] = ()

    def get(self, name: str) -> Any:
        for key, value in self.fields:
            if key == name:
                return value
        raise KeyError(name)

    def replace(self, **changes: Any) -> GoStruct:
        fields = tuple((k, changes.get(k, v)) for k, v in self.fields)
        return GoStruct(self.type_name, fields, self.json_names)


def is_nil(v: Any) -> bool:
    return v is None or v is NO_VALUE


def type_name(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, GoDuration):
        return "time.Duration"
    if isinstance(v, GoMonth):
        return "time.Month"
    if isinstance(v, GoWeekday):
        return "time.Weekday"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        if v and all(isinstance(x, str) for x in v):
            return "[]string"
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, GoStruct):
        return v.type_name
    if isinstance(v, GoTime):
        return "time.Time"
    if isinstance(v, TimeFuncs):
        return "*template.TimeFuncs"
    return type(v).__name__


def truth(v: Any) -> bool:
    """Go template truth: false, 0, nil, and empty strings/slices/maps are false."""
    if v is NO_VALUE or v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | list | tuple | dict):
        return len(v) > 0
    return True


def need_str(v: Any, what: str = "value") -> str:
    if isinstance(v, str):
        return v
    if v is NO_VALUE:
        raise ExecError("invalid value; expected string")
    raise ExecError(f"wrong type for {what}; expected string; got {type_name(v)}")


def to_json(v: Any) -> Any:
    if v is NO_VALUE:
        return None
    if isinstance(v, GoStruct):
        names = v.json_names or tuple(k for k, _ in v.fields)
        return {n: to_json(x) for n, (_, x) in zip(names, v.fields, strict=True)}
    if isinstance(v, GoTime):
        return v.rfc3339nano()
    if isinstance(v, list | tuple):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, TimeFuncs):
        return {}
    if isinstance(v, bool | int | float | str) or v is None:
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else v
    return str(v)


def json_text(v: Any, indent: int | None) -> str:
    text = json.dumps(
        to_json(v),
        ensure_ascii=False,
        indent=indent,
        separators=(",", ": ") if indent else (",", ":"),
    )
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"
