"""Go's text/template, the subset regsync configs use, as its own engine.

No PyPI package implements Go templates usably, so this is a small lexer, parser and executor
that follow Go's `text/template` semantics: `{{ }}` actions with `{{-`/`-}}` trim markers,
comments, field chains, variables, pipelines, parentheses, literals, `if`/`else if`/`else`,
`range` (with `break`/`continue`), `with`/`else with`, and the built-in functions. Like Go's
engine it knows no application functions: a caller passes its own as a function map (regsync's
`env`, `file`, `time`... come from the config package), so the engine itself reads nothing from
the environment or the disk.

Data is plain Python: dicts are Go maps (a missing key prints `<no value>`), lists are slices,
`GoStruct` values are Go structs (a missing field is an error, as in Go), and objects with a
`go_method(name)` method expose Go methods (`time.Now.Format "2006"`).

Hostile input cannot hang or exhaust the process: nesting depth, evaluation steps, output size
and the size of every intermediate value are bounded (`values`), and every failure is a
`TemplateError`.
"""

from __future__ import annotations

from regplan.gotemplate.execute import Template
from regplan.gotemplate.format import format_value, go_sprintf
from regplan.gotemplate.functions import BUILTINS, Func, FuncMap
from regplan.gotemplate.values import (
    MAX_OUTPUT,
    NO_VALUE,
    ExecError,
    GoStruct,
    is_nil,
    json_text,
    need_str,
    truth,
    type_name,
)

__all__ = [
    "BUILTINS",
    "MAX_OUTPUT",
    "NO_VALUE",
    "ExecError",
    "Func",
    "FuncMap",
    "GoStruct",
    "Template",
    "format_value",
    "go_sprintf",
    "is_nil",
    "json_text",
    "need_str",
    "truth",
    "type_name",
]
