"""Go text/template's parser: tokens into a tree of nodes, with Go's parse-time checks
(undefined variables and functions, break outside range, nesting depth)."""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from regplan.errors import TemplateError
from regplan.gotemplate.format import format_value
from regplan.gotemplate.lexer import Lexer, Tok
from regplan.gotemplate.values import MAX_DEPTH


@dataclass
class Node:
    pos: int


@dataclass
class Text(Node):
    text: str


@dataclass
class FieldArg(Node):  # .A.B (relative to dot)
    names: tuple[str, ...]


@dataclass
class VarArg(Node):  # $x.A.B
    name: str
    names: tuple[str, ...]


@dataclass
class Literal(Node):
    value: Any


@dataclass
class Dot(Node):
    pass


@dataclass
class Nil(Node):
    pass


@dataclass
class Ident(Node):  # a function name
    name: str


@dataclass
class Chain(Node):  # (pipeline).A.B or ident.A
    node: Node
    names: tuple[str, ...]


@dataclass
class Command(Node):
    args: list[Node]


@dataclass
class Pipe(Node):
    decls: list[str]
    is_assign: bool
    cmds: list[Command]


@dataclass
class Action(Node):
    pipe: Pipe


@dataclass
class Branch(Node):  # if / with / range
    kind: str
    pipe: Pipe
    body: list[Node]
    else_body: list[Node] = field(default_factory=list)


@dataclass
class Break(Node):
    pass


@dataclass
class Continue(Node):
    pass


def describe(node: Node) -> str:
    """Node text for error messages, as Go prints `<.Field>`."""
    if isinstance(node, FieldArg):
        return "." + ".".join(node.names)
    if isinstance(node, VarArg):
        return node.name + "".join("." + n for n in node.names)
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Chain):
        return describe(node.node) + "".join("." + n for n in node.names)
    if isinstance(node, Pipe):
        return "(" + " | ".join(describe(c) for c in node.cmds) + ")"
    if isinstance(node, Command):
        return " ".join(describe(a) for a in node.args)
    if isinstance(node, Literal):
        return json.dumps(node.value) if isinstance(node.value, str) else format_value(node.value)
    if isinstance(node, Dot):
        return "."
    if isinstance(node, Nil):
        return "nil"
    return type(node).__name__


class Parser:
    def __init__(self, text: str, name: str, funcs: Container[str]) -> None:
        self.text = text
        self.name = name
        self.funcs = funcs  # the function names a template may call
        self.toks = Lexer(text, self.error).run()
        self.i = 0
        self.depth = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    # errors
    def error(self, msg: str, pos: int) -> TemplateError:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return TemplateError(f"template: {self.name}:{line}:{col}: {msg}")

    def peek(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def expect(self, kind: str, context: str) -> Tok:
        tok = self.next()
        if tok.kind != kind:
            raise self.error(f"unexpected {self._tok_text(tok)} in {context}", tok.pos)
        return tok

    @staticmethod
    def _tok_text(tok: Tok) -> str:
        if tok.kind == "eof":
            return "EOF"
        if tok.kind == "rdelim":
            return '"}}"'
        if tok.kind == "string":
            return json.dumps(tok.val)
        if tok.kind == "field":
            return f"<.{tok.val}>"
        return f"<{tok.val}>" if tok.val is not None else f"<{tok.kind}>"

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"template nested more than {MAX_DEPTH} levels deep", pos)

    # top level
    def parse(self) -> list[Node]:
        body, end = self.item_list(top=True)
        assert end is None
        return body

    def item_list(self, top: bool = False) -> tuple[list[Node], str | None]:
        """Items until EOF (top) or until {{end}} / {{else ...}} (returned as the terminator)."""
        out: list[Node] = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                if top:
                    return out, None
                raise self.error("unexpected EOF", tok.pos)
            if tok.kind == "text":
                self.next()
                out.append(Text(tok.pos, tok.val))
                continue
            self.expect("ldelim", "template")
            kw = self.peek()
            if kw.kind == "keyword" and kw.val in ("end", "else"):
                if top:
                    raise self.error(f"unexpected {{{{{kw.val}}}}}", kw.pos)
                self.next()
                return out, kw.val
            out.append(self.action())

    def action(self) -> Node:
        tok = self.peek()
        if tok.kind == "keyword":
            self.next()
            if tok.val in ("if", "with", "range"):
                return self.branch(tok.val, tok.pos)
            if tok.val in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.error(f"{{{{{tok.val}}}}} outside {{{{range}}}}", tok.pos)
                self.expect("rdelim", tok.val)
                return Break(tok.pos) if tok.val == "break" else Continue(tok.pos)
            raise self.error(f"{{{{{tok.val}}}}} is not supported in regsync templates", tok.pos)
        pipe = self.pipeline("command", tok.pos)
        return Action(tok.pos, pipe)

    def branch(self, kind: str, pos: int) -> Branch:
        self.enter(pos)
        mark = len(self.vars)
        pipe = self.pipeline(kind, pos, allow_range_decl=kind == "range")
        body_mark = len(self.vars)  # the pipeline's variables reach the else branch too
        if kind == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        node = Branch(pos, kind, pipe, body)
        if end == "else":
            del self.vars[body_mark:]
            nxt = self.peek()
            if kind in ("if", "with") and nxt.kind == "keyword" and nxt.val == kind:
                # {{else if ...}} / {{else with ...}}: a nested branch that ends with our {{end}}
                self.next()
                node.else_body = [self.branch(kind, nxt.pos)]
            else:
                self.expect("rdelim", "else")
                else_body, end2 = self.item_list()
                if end2 != "end":
                    raise self.error("expected end; found {{else}}", self.peek().pos)
                node.else_body = else_body
                self.expect("rdelim", "end")
        else:
            self.expect("rdelim", "end")
        del self.vars[mark:]
        self.depth -= 1
        return node

    def pipeline(self, context: str, pos: int, allow_range_decl: bool = False) -> Pipe:
        decls: list[str] = []
        is_assign = False
        # declarations: $x := / $x = / $i, $v :=
        if self.peek().kind == "var":
            save = self.i
            v1 = self.next()
            nxt = self.peek()
            if nxt.kind in ("declare", "assign"):
                self.next()
                decls = [v1.val]
                is_assign = nxt.kind == "assign"
            elif nxt.kind == "comma" and allow_range_decl:
                self.next()
                v2 = self.expect("var", "range declaration")
                op = self.next()
                if op.kind not in ("declare", "assign"):
                    raise self.error("expected := or = in range declaration", op.pos)
                decls = [v1.val, v2.val]
                is_assign = op.kind == "assign"
            else:
                self.i = save
        if is_assign:
            for name in decls:
                if name not in self.vars:
                    raise self.error(f'undefined variable "{name}"', pos)
        cmds: list[Command] = []
        while True:
            tok = self.peek()
            if tok.kind in ("rdelim", "rparen"):
                if context != "paren" and tok.kind == "rparen":
                    raise self.error("unexpected right paren", tok.pos)
                if context == "paren" and tok.kind == "rdelim":
                    raise self.error("unclosed left paren", tok.pos)
                self.next()
                break
            if tok.kind == "eof":
                raise self.error(f"unclosed action in {context}", tok.pos)
            cmds.append(self.command())
            sep = self.peek()
            if sep.kind == "pipe":
                self.next()
                if self.peek().kind in ("rdelim", "rparen"):
                    raise self.error("missing command after |", sep.pos)
        if not cmds:
            raise self.error(f"missing value for {context}", pos)
        for c in cmds[1:]:
            first = c.args[0]
            if isinstance(first, Literal | Nil | Dot):
                raise self.error(
                    f"non executable command in pipeline stage {cmds.index(c) + 1}", first.pos
                )
        if not is_assign:
            self.vars.extend(decls)
        return Pipe(pos, decls, is_assign, cmds)

    def command(self) -> Command:
        start = self.peek().pos
        args: list[Node] = []
        while True:
            tok = self.peek()
            if tok.kind in ("rdelim", "rparen", "pipe"):
                break
            if args and not tok.space_before and tok.kind != "field":
                raise self.error(f"missing space before {self._tok_text(tok)}", tok.pos)
            args.append(self.operand())
        if not args:
            raise self.error("empty command", start)
        if isinstance(args[0], Nil):
            raise self.error("nil is not a command", args[0].pos)
        return Command(start, args)

    def operand(self) -> Node:
        node = self.term()
        names: list[str] = []
        while self.peek().kind == "field" and not self.peek().space_before:
            names.append(self.next().val)
        if not names:
            return node
        if isinstance(node, FieldArg):
            return FieldArg(node.pos, node.names + tuple(names))
        if isinstance(node, VarArg):
            return VarArg(node.pos, node.name, node.names + tuple(names))
        if isinstance(node, Literal | Nil | Dot):
            raise self.error(f"unexpected . after term {describe(node)!r}", node.pos)
        return Chain(node.pos, node, tuple(names))

    def term(self) -> Node:
        tok = self.next()
        if tok.kind == "field":
            return FieldArg(tok.pos, (tok.val,))
        if tok.kind == "var":
            if tok.val not in self.vars:
                raise self.error(f'undefined variable "{tok.val}"', tok.pos)
            return VarArg(tok.pos, tok.val, ())
        if tok.kind in ("string", "number", "bool"):
            return Literal(tok.pos, tok.val)
        if tok.kind == "nil":
            return Nil(tok.pos)
        if tok.kind == "dot":
            return Dot(tok.pos)
        if tok.kind == "ident":
            if tok.val not in self.funcs:
                raise self.error(f'function "{tok.val}" not defined', tok.pos)
            return Ident(tok.pos, tok.val)
        if tok.kind == "lparen":
            self.enter(tok.pos)
            pipe = self.pipeline("paren", tok.pos)
            self.depth -= 1
            return pipe
        raise self.error(f"unexpected {self._tok_text(tok)} in operand", tok.pos)
