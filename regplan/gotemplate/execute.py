"""Go text/template's executor: walks a parsed tree over data, with the bounds of `values`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from regplan.errors import TemplateError
from regplan.gotemplate.format import format_value, print_value
from regplan.gotemplate.functions import BUILTINS, Func, FuncMap
from regplan.gotemplate.gotime import GoTimeError
from regplan.gotemplate.parser import (
    Action,
    Branch,
    Break,
    Chain,
    Command,
    Continue,
    Dot,
    FieldArg,
    Ident,
    Literal,
    Nil,
    Node,
    Parser,
    Pipe,
    Text,
    VarArg,
    describe,
)
from regplan.gotemplate.values import (
    MAX_ITEMS,
    MAX_OUTPUT,
    MAX_STEPS,
    MISSING,
    NO_VALUE,
    ExecError,
    GoStruct,
    is_nil,
    truth,
    type_name,
)


class BreakLoop(Exception):
    pass


class ContinueLoop(Exception):
    pass


class Exec:
    def __init__(self, parser: Parser, data: Any, funcs: FuncMap) -> None:
        self.p = parser
        self.funcs = funcs
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.out: list[str] = []
        self.size = 0
        self.steps = 0

    def fail(self, node: Node, msg: str) -> TemplateError:
        base = self.p.error("", node.pos)
        where = str(base).rstrip(": ").rstrip()
        return TemplateError(f"{where}: executing at <{describe(node)}>: {msg}")

    def step(self, node: Node) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.fail(node, f"template took more than {MAX_STEPS} steps")

    def emit(self, text: str, node: Node) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise self.fail(node, f"template output exceeds {MAX_OUTPUT >> 20} MiB")
        self.out.append(text)

    # variables
    def var(self, name: str) -> Any:
        for key, value in reversed(self.vars):
            if key == name:
                return value
        raise ExecError(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise ExecError(f"undefined variable: {name}")

    # walking
    def walk(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            self.step(node)
            if isinstance(node, Text):
                self.emit(node.text, node)
            elif isinstance(node, Action):
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decls:
                    self.emit(print_value(value), node)
            elif isinstance(node, Branch):
                self.branch(dot, node)
            elif isinstance(node, Break):
                raise BreakLoop()
            elif isinstance(node, Continue):
                raise ContinueLoop()

    def branch(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(dot, node)
                return
            value = self.pipeline(dot, node.pipe)
            if truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            else:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def range(self, dot: Any, node: Branch) -> None:
        pipe = node.pipe
        value = self.eval_pipe_value(dot, pipe)
        items: Iterable[tuple[Any, Any]]
        if isinstance(value, list | tuple):
            items, count = enumerate(value), len(value)
        elif isinstance(value, dict):
            keys = sorted(value, key=lambda k: (str(type(k)), k))
            items, count = ((k, value[k]) for k in keys), len(keys)
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(pipe.decls) > 1:
                raise self.fail(node, "can't use two iteration variables when ranging over an int")
            items, count = ((i, i) for i in range(max(value, 0))), max(value, 0)
        elif is_nil(value):
            items, count = (), 0
        else:
            raise self.fail(node, f"range can't iterate over {format_value(value)}")
        if not count:
            self.walk(dot, node.else_body)
            return
        mark = len(self.vars)
        for key, elem in items:
            self.step(node)
            del self.vars[mark:]
            if len(pipe.decls) == 1:
                self.declare(pipe, pipe.decls[0], elem)
            elif len(pipe.decls) == 2:
                self.declare(pipe, pipe.decls[0], key)
                self.declare(pipe, pipe.decls[1], elem)
            try:
                self.walk(elem, node.body)
            except ContinueLoop:
                continue
            except BreakLoop:
                break

    def declare(self, pipe: Pipe, name: str, value: Any) -> None:
        if pipe.is_assign:
            self.set_var(name, value)
        else:
            self.vars.append((name, value))

    def eval_pipe_value(self, dot: Any, pipe: Pipe) -> Any:
        """A pipeline's value without its declarations (range assigns them per element)."""
        value: Any = MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
        return value

    def pipeline(self, dot: Any, pipe: Pipe) -> Any:
        value = self.eval_pipe_value(dot, pipe)
        for name in pipe.decls:
            try:
                self.declare(pipe, name, value)
            except ExecError as e:
                raise self.fail(pipe, str(e)) from None
        return value

    def command(self, dot: Any, cmd: Command, final: Any) -> Any:
        self.step(cmd)
        first = cmd.args[0]
        try:
            if isinstance(first, FieldArg):
                return self.field_chain(dot, dot, first.names, cmd.args, final, first)
            if isinstance(first, VarArg):
                value = self.var(first.name)
                if not first.names:
                    self.not_a_function(cmd.args, final, first)
                    return value
                return self.field_chain(dot, value, first.names, cmd.args, final, first)
            if isinstance(first, Chain):
                base = self.arg(dot, first.node)
                return self.field_chain(dot, base, first.names, cmd.args, final, first)
            if isinstance(first, Ident):
                return self.function(dot, first, cmd.args[1:], final)
            self.not_a_function(cmd.args, final, first)
            return self.arg(dot, first)
        except ExecError as e:
            raise self.fail(first, str(e)) from None

    def not_a_function(self, args: list[Node], final: Any, node: Node) -> None:
        if len(args) > 1 or final is not MISSING:
            raise ExecError(f"can't give argument to non-function {describe(node)}")

    def arg(self, dot: Any, node: Node) -> Any:
        self.step(node)
        try:
            if isinstance(node, Literal):
                return node.value
            if isinstance(node, Dot):
                return dot
            if isinstance(node, Nil):
                return None
            if isinstance(node, FieldArg):
                return self.field_chain(dot, dot, node.names, [node], MISSING, node)
            if isinstance(node, VarArg):
                value = self.var(node.name)
                return (
                    self.field_chain(dot, value, node.names, [node], MISSING, node)
                    if node.names
                    else value
                )
            if isinstance(node, Pipe):
                return self.pipeline(dot, node)
            if isinstance(node, Chain):
                base = self.arg(dot, node.node)
                return self.field_chain(dot, base, node.names, [node], MISSING, node)
            if isinstance(node, Ident):
                return self.function(dot, node, [], MISSING)
        except ExecError as e:
            raise self.fail(node, str(e)) from None
        raise self.fail(node, "can't evaluate")

    def field_chain(
        self,
        dot: Any,
        receiver: Any,
        names: tuple[str, ...],
        args: list[Node],
        final: Any,
        node: Node,
    ) -> Any:
        for name in names[:-1]:
            receiver = self.field(dot, receiver, name, [], MISSING)
        return self.field(dot, receiver, names[-1], args[1:], final)

    def field(self, dot: Any, receiver: Any, name: str, args: list[Node], final: Any) -> Any:
        method = getattr(receiver, "go_method", None)
        fn = method(name) if callable(method) else None
        if fn is not None:
            argv = [self.arg(dot, a) for a in args]
            if final is not MISSING:
                argv.append(final)
            return self.call(name, fn, argv)
        if receiver is NO_VALUE or receiver is None:
            return NO_VALUE  # a field of nil data or of a missing key: Go's zero Value
        has_args = bool(args) or final is not MISSING
        if isinstance(receiver, dict):
            if has_args:
                raise ExecError(f"{name} is not a method but has arguments")
            return receiver.get(name, NO_VALUE)
        if isinstance(receiver, GoStruct):
            try:
                value = receiver.get(name)
            except KeyError:
                raise ExecError(
                    f"can't evaluate field {name} in type {receiver.type_name}"
                ) from None
            if has_args:
                raise ExecError(f"{name} has arguments but cannot be invoked as function")
            return value
        raise ExecError(f"can't evaluate field {name} in type {type_name(receiver)}")

    def function(self, dot: Any, ident: Ident, args: list[Node], final: Any) -> Any:
        spec = self.funcs[ident.name]
        nargs = len(args) + (final is not MISSING)
        if nargs < spec.min_args or (spec.max_args is not None and nargs > spec.max_args):
            want = spec.min_args if spec.max_args == spec.min_args else f"at least {spec.min_args}"
            raise ExecError(f"wrong number of args for {ident.name}: want {want} got {nargs}")
        if ident.name in ("and", "or"):
            # Short-circuit: return the first falsy (and) / truthy (or) argument, else the last.
            value: Any = None
            values = [*args, final] if final is not MISSING else list(args)
            for i, a in enumerate(values):
                value = a if i == len(args) else self.arg(dot, a)
                if truth(value) != (ident.name == "and"):
                    return value
            return value
        argv = [self.arg(dot, a) for a in args]
        if final is not MISSING:
            argv.append(final)
        return self.call(ident.name, spec.call, argv)

    def call(self, name: str, fn: Callable[..., Any], argv: list[Any]) -> Any:
        try:
            result = fn(*argv)
        except ExecError:
            raise
        except GoTimeError as e:
            raise ExecError(f"error calling {name}: {e}") from None
        except TypeError as e:
            raise ExecError(f"wrong arguments for {name}: {e}") from None
        except (ValueError, OverflowError, KeyError, IndexError, AttributeError) as e:
            raise ExecError(f"error calling {name}: {e}") from None
        if isinstance(result, str) and len(result) > MAX_OUTPUT:
            raise ExecError(f"result of {name} exceeds {MAX_OUTPUT >> 20} MiB")
        if isinstance(result, list) and len(result) > MAX_ITEMS:
            raise ExecError(f"result of {name} has more than {MAX_ITEMS} items")
        return result


class Template:
    """A parsed template: parse once, execute many times (Go's `template.New(name).Funcs(fm)
    .Parse(text)`). Functions are the built-ins plus `funcs`, which win over built-ins of the
    same name, as in Go; names are checked at parse time."""

    def __init__(self, text: str, *, name: str = "", funcs: FuncMap | None = None) -> None:
        if not isinstance(text, str):
            raise TemplateError("template text must be a string")
        self.funcs: dict[str, Func] = {**BUILTINS, **(funcs or {})}
        self._parser = Parser(text, name or "template", self.funcs)
        try:
            self._tree = self._parser.parse()
        except RecursionError:
            raise self._parser.error("template nested too deeply", 0) from None

    def execute(self, data: Any, funcs: FuncMap | None = None) -> str:
        """The output for `data` (`.`). `funcs` replaces functions for this run only (e.g. one
        that reports what it read), as Go's `Funcs` may after parsing."""
        ex = Exec(self._parser, data, {**self.funcs, **funcs} if funcs else self.funcs)
        try:
            ex.walk(data, self._tree)
        except RecursionError:
            raise self._parser.error("template nested too deeply", 0) from None
        return "".join(ex.out)
