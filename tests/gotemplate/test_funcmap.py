"""The engine knows only Go's built-ins; a caller's functions come in a function map."""

from __future__ import annotations

from typing import Any

import pytest

from regplan.errors import TemplateError
from regplan.gotemplate import BUILTINS, ExecError, Func, Template


def test_the_engine_alone_has_no_regsync_functions() -> None:
    for name in ("env", "file", "time", "lower"):
        assert name not in BUILTINS
        with pytest.raises(TemplateError, match=f'function "{name}" not defined'):
            Template(f'{{{{ {name} "x" }}}}', name="t")


def test_a_function_map_adds_functions_checked_at_parse_time() -> None:
    calls: list[str] = []

    def shout(s: Any) -> str:
        calls.append(s)
        return f"{s}!"

    t = Template('{{ shout "hi" }} {{ "a" | shout }}', funcs={"shout": Func(shout, 1, 1)})
    assert t.execute(None) == "hi! a!"
    assert calls == ["hi", "a"]
    two = Template('{{ shout "a" "b" }}', funcs={"shout": Func(shout, 1, 1)})
    with pytest.raises(TemplateError, match="wrong number of args for shout: want 1 got 2"):
        two.execute(None)


def test_functions_can_be_replaced_for_one_run() -> None:
    t = Template("{{ who }}", funcs={"who": Func(lambda: "parse-time", 0, 0)})
    assert t.execute(None, {"who": Func(lambda: "this run", 0, 0)}) == "this run"
    assert t.execute(None) == "parse-time"


def test_a_map_function_wins_over_a_builtin_of_the_same_name() -> None:
    t = Template('{{ len "abc" }}', funcs={"len": Func(lambda s: "mine", 1, 1)})
    assert t.execute(None) == "mine"


def test_a_function_fails_a_render_with_its_own_message() -> None:
    def refuse(_: Any) -> str:
        raise ExecError("too big")

    t = Template('{{ refuse "x" }}', name="t", funcs={"refuse": Func(refuse, 1, 1)})
    with pytest.raises(TemplateError, match=r"^template: t:1:4: executing at <refuse>: too big$"):
        t.execute(None)
