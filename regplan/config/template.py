"""regsync's template functions, given to the Go template engine as a function map.

regsync (regclient's `pkg/template`) adds `default env file join json jsonPretty lower upper
split trimSpace time printPretty` to Go's engine; so does this module. `env` and `file` read the
process environment and the disk, which is why they live here and not in `regplan.gotemplate`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any

from regplan.gotemplate import (
    ExecError,
    Func,
    FuncMap,
    Template,
    is_nil,
    json_text,
    need_str,
    type_name,
)
from regplan.gotemplate.gotime import TimeFuncs

MAX_FILE = 16 << 20  # the `file` function reads at most this much


def _default(default: Any, value: Any) -> Any:
    if is_nil(value):
        return default
    if isinstance(value, bool | int | float | str) and not value:
        return default
    return value


def _file(path: Any) -> str:
    """regsync: file contents, whitespace-trimmed; any read error gives "" (never an error)."""
    name = need_str(path)
    try:
        with open(name, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return ""  # a FIFO or device could block or never end
            data = f.read(MAX_FILE + 1)
    except (OSError, ValueError):
        return ""
    if len(data) > MAX_FILE:
        raise ExecError(f"file {name!r} is larger than {MAX_FILE >> 20} MiB")
    return data.decode("utf-8", "replace").strip()


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        raise ExecError(f"wrong type for value; expected []string; got {type_name(items)}")
    return need_str(sep).join(items)


def _split(s: Any, sep: Any) -> list[str]:
    text, sep_text = need_str(s), need_str(sep)
    if sep_text == "":
        return list(text)
    return text.split(sep_text)


def _time() -> TimeFuncs:
    return TimeFuncs()


def _string_fn(f: Callable[[str], str]) -> Callable[[Any], str]:
    return lambda s: f(need_str(s))


def _env(key: Any) -> str:
    return os.environ.get(need_str(key), "")


REGSYNC_FUNCS: dict[str, Func] = {
    "default": Func(_default, 2, 2),
    "env": Func(_env, 1, 1),
    "file": Func(_file, 1, 1),
    "join": Func(_join, 2, 2),
    "json": Func(lambda v: json_text(v, None), 1, 1),
    "jsonPretty": Func(lambda v: json_text(v, 2), 1, 1),
    "printPretty": Func(lambda v: json_text(v, 2), 1, 1),
    "lower": Func(_string_fn(str.lower), 1, 1),
    "upper": Func(_string_fn(str.upper), 1, 1),
    "split": Func(_split, 2, 2),
    "trimSpace": Func(_string_fn(str.strip), 1, 1),
    "time": Func(_time, 0, 0),
}


def _watched_file(on_missing_file: Callable[[str], None]) -> FuncMap:
    """`file` that also reports a path that does not exist (regsync reads it as "")."""

    def read(path: Any) -> str:
        if isinstance(path, str) and not os.path.isfile(path):
            on_missing_file(path)
        return _file(path)

    return {"file": Func(read, 1, 1)}


def parse(text: str, *, name: str = "") -> Callable[..., str]:
    """Parse once, render many times: returns `render(data, on_missing_file=None) -> str`."""
    template = Template(text, name=name, funcs=REGSYNC_FUNCS)

    def run(data: Any, on_missing_file: Callable[[str], None] | None = None) -> str:
        return template.execute(data, _watched_file(on_missing_file) if on_missing_file else None)

    return run


def render(
    text: str,
    data: Any,
    *,
    name: str = "",
    on_missing_file: Callable[[str], None] | None = None,
) -> str:
    """Render Go template `text` with `data` (`.`) and regsync's functions; errors raise
    TemplateError. `on_missing_file(path)` hears of each `file` call whose file does not exist."""
    return parse(text, name=name)(data, on_missing_file)
