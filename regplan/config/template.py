"""Go text/template, the subset regsync configs use, with regsync's template functions.

No PyPI package implements Go templates usably, so this is a small lexer, parser and evaluator
that follow Go's `text/template` semantics: `{{ }}` actions with `{{-`/`-}}` trim markers,
comments, field chains, variables, pipelines, parentheses, literals, `if`/`else if`/`else`,
`range` (with `break`/`continue`), `with`/`else with`, the built-in functions and regsync's own
(`default env file join json jsonPretty lower upper split trimSpace time printPretty`).

Data is plain Python: dicts are Go maps (a missing key prints `<no value>`), lists are slices,
`GoStruct` values are Go structs (a missing field is an error, as in Go), and objects with a
`go_method(name)` method expose Go methods (`time.Now.Format "2006"`).

Hostile input cannot hang or exhaust the process: nesting depth, evaluation steps, output size
and the size of every intermediate value are bounded, and every failure is a `TemplateError`.
"""

from __future__ import annotations

import json
import math
import os
import stat
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from regplan.config import gotime
from regplan.config.gotime import GoDuration, GoTime, GoTimeError, TimeFuncs
from regplan.errors import TemplateError

MAX_DEPTH = 64  # nested actions, parentheses and control structures
MAX_STEPS = 200_000  # evaluation steps per render (range iterations, commands, ...)
MAX_OUTPUT = 1 << 20  # bytes of output, and of any single intermediate string
MAX_ITEMS = 100_000  # elements of any intermediate list
MAX_FILE = 16 << 20  # the `file` function reads at most this much
MAX_WIDTH = 1_000_000  # printf width/precision, as Go's fmt limits them

# -----------------------------------------------------------------------------------------------
# Values


class _NoValue:
    """Go's invalid reflect.Value: a missing map key or a field of nil data."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()
_MISSING = object()  # "no final value" in a pipeline


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


def _type_name(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, GoDuration):
        return "time.Duration"
    if isinstance(v, gotime.GoMonth):
        return "time.Month"
    if isinstance(v, gotime.GoWeekday):
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


def _shortest_digits(f: float) -> tuple[str, str, int]:
    """(sign, significant digits, decimal point position) of the shortest round-trip text."""
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    _, digit_tuple, exp = Decimal(repr(abs(f))).as_tuple()
    digits = "".join(map(str, digit_tuple))
    if not digits.strip("0"):
        return sign, "0", 1
    assert isinstance(exp, int)
    return sign, digits.rstrip("0"), len(digits) + exp


def _go_float(f: float, verb: str = "g", prec: int = -1) -> str:
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
    if isinstance(v, GoDuration | gotime.GoMonth | gotime.GoWeekday):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
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


def _print_value(v: Any) -> str:
    """How an action prints its pipeline's value."""
    if v is NO_VALUE:
        return "<no value>"
    return format_value(v)


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


def _to_json(v: Any) -> Any:
    if v is NO_VALUE:
        return None
    if isinstance(v, GoStruct):
        names = v.json_names or tuple(k for k, _ in v.fields)
        return {n: _to_json(x) for n, (_, x) in zip(names, v.fields, strict=True)}
    if isinstance(v, GoTime):
        return v.rfc3339nano()
    if isinstance(v, list | tuple):
        return [_to_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _to_json(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, TimeFuncs):
        return {}
    if isinstance(v, bool | int | float | str) or v is None:
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else v
    return str(v)


def _json_text(v: Any, indent: int | None) -> str:
    text = json.dumps(
        _to_json(v),
        ensure_ascii=False,
        indent=indent,
        separators=(",", ": ") if indent else (",", ":"),
    )
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


# -----------------------------------------------------------------------------------------------
# Lexer

_SPACE = " \t\r\n"
_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # text, ldelim, rdelim, ident, field, var, string, char, number, bool, nil, dot,
    # pipe, lparen, rparen, declare, assign, comma, keyword, eof
    val: Any
    pos: int
    space_before: bool = False


class _Lexer:
    def __init__(self, text: str, fail: Callable[[str, int], TemplateError]) -> None:
        self.text = text
        self.fail = fail
        self.toks: list[_Tok] = []

    def run(self) -> list[_Tok]:
        text = self.text
        pos = 0
        trim_next = False
        while pos <= len(text):
            start = text.find("{{", pos)
            chunk = text[pos:] if start < 0 else text[pos:start]
            if trim_next:
                chunk = chunk.lstrip(_SPACE)
            after = start + 2
            trim_left = (
                start >= 0
                and text[after : after + 1] == "-"
                and (text[after + 1 : after + 2] in tuple(_SPACE))
            )
            if trim_left:
                chunk = chunk.rstrip(_SPACE)
            if chunk:
                self.toks.append(_Tok("text", chunk, pos))
            if start < 0:
                break
            self.toks.append(_Tok("ldelim", "{{", start))
            pos = after + (2 if trim_left else 0)
            pos, trim_next = self._action(pos, start)
        self.toks.append(_Tok("eof", None, len(text)))
        return self.toks

    def _right_delim(self, pos: int) -> tuple[bool, bool, int]:
        text = self.text
        if text[pos : pos + 1] in tuple(_SPACE) and text[pos + 1 : pos + 4] == "-}}":
            return True, True, pos + 4
        if text.startswith("}}", pos):
            return True, False, pos + 2
        return False, False, pos

    def _action(self, pos: int, start: int) -> tuple[int, bool]:
        text = self.text
        # A comment starts right after "{{" or "{{- " and must end right before "}}" or " -}}".
        if text.startswith("/*", pos):
            close = text.find("*/", pos + 2)
            if close < 0:
                raise self.fail("unclosed comment", pos)
            is_delim, trim, npos = self._right_delim(close + 2)
            if not is_delim:
                raise self.fail("comment ends before closing delimiter", close + 2)
            self.toks.pop()  # the ldelim: a comment is not an action
            return npos, trim
        paren = 0
        space = False
        while True:
            is_delim, trim, npos = self._right_delim(pos)
            if is_delim and paren == 0:
                self.toks.append(_Tok("rdelim", "}}", pos))
                return npos, trim
            if is_delim and paren:
                raise self.fail("unclosed left paren", pos)
            if pos >= len(text):
                raise self.fail("unclosed action", start)
            c = text[pos]
            if c in _SPACE:
                while pos < len(text) and text[pos] in _SPACE:
                    is_delim, _, _ = self._right_delim(pos)
                    if is_delim:
                        break
                    pos += 1
                space = True
                continue
            tok_start = pos
            if c == "|":
                self._add("pipe", "|", pos, space)
                pos += 1
            elif c == "(":
                paren += 1
                self._add("lparen", "(", pos, space)
                pos += 1
            elif c == ")":
                paren -= 1
                if paren < 0:
                    raise self.fail("unexpected right paren", pos)
                self._add("rparen", ")", pos, space)
                pos += 1
            elif c == ":":
                if text[pos + 1 : pos + 2] != "=":
                    raise self.fail("expected :=", pos)
                self._add("declare", ":=", pos, space)
                pos += 2
            elif c == "=":
                self._add("assign", "=", pos, space)
                pos += 1
            elif c == ",":
                self._add("comma", ",", pos, space)
                pos += 1
            elif c == '"':
                pos = self._string(pos, space)
            elif c == "`":
                end = text.find("`", pos + 1)
                if end < 0:
                    raise self.fail("unterminated raw quoted string", pos)
                self._add("string", text[pos + 1 : end], pos, space)
                pos = end + 1
            elif c == "'":
                pos = self._char(pos, space)
            elif c == "$":
                end = pos + 1
                while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                    end += 1
                self._add("var", text[pos:end], pos, space)
                pos = end
            elif c == "." and pos + 1 < len(text) and text[pos + 1].isdigit():
                pos = self._number(pos, space)
            elif c == ".":
                end = pos + 1
                while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                    end += 1
                if end == pos + 1:
                    self._add("dot", ".", pos, space)
                else:
                    self._add("field", text[pos + 1 : end], pos, space)
                pos = end
            elif c.isdigit() or (
                c in "+-" and pos + 1 < len(text) and text[pos + 1] in "0123456789."
            ):
                pos = self._number(pos, space)
            elif c.isalpha() or c == "_":
                end = pos
                while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                    end += 1
                word = text[pos:end]
                if word in ("true", "false"):
                    self._add("bool", word == "true", pos, space)
                elif word == "nil":
                    self._add("nil", None, pos, space)
                elif word in _KEYWORDS:
                    self._add("keyword", word, pos, space)
                else:
                    self._add("ident", word, pos, space)
                pos = end
            else:
                raise self.fail(f"unrecognized character in action: {c!r}", pos)
            space = False
            assert pos > tok_start

    def _add(self, kind: str, val: Any, pos: int, space: bool) -> None:
        self.toks.append(_Tok(kind, val, pos, space))

    def _string(self, pos: int, space: bool) -> int:
        text = self.text
        i = pos + 1
        out: list[str] = []
        while True:
            if i >= len(text) or text[i] == "\n":
                raise self.fail("unterminated quoted string", pos)
            c = text[i]
            if c == '"':
                break
            if c == "\\":
                ch, i = self._escape(i, '"')
                out.append(ch)
                continue
            out.append(c)
            i += 1
        self._add("string", "".join(out), pos, space)
        return i + 1

    def _escape(self, i: int, quote: str) -> tuple[str, int]:
        text = self.text
        simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
        simple["\\"] = "\\"
        simple[quote] = quote
        c = text[i + 1 : i + 2]
        if c in simple:
            return simple[c], i + 2
        widths = {"x": 2, "u": 4, "U": 8}
        if c in widths:
            digits = text[i + 2 : i + 2 + widths[c]]
            if len(digits) != widths[c] or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.fail("invalid escape in quoted string", i)
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.fail("invalid escape in quoted string", i)
            return chr(code), i + 2 + widths[c]
        if c and c in "01234567":
            digits = text[i + 1 : i + 4]
            if len(digits) != 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise self.fail("invalid escape in quoted string", i)
            return chr(int(digits, 8)), i + 4
        raise self.fail("invalid escape in quoted string", i)

    def _char(self, pos: int, space: bool) -> int:
        text = self.text
        i = pos + 1
        if text[i : i + 1] == "\\":
            ch, i = self._escape(i, "'")
        elif i < len(text) and text[i] not in "'\n":
            ch, i = text[i], i + 1
        else:
            raise self.fail("malformed character constant", pos)
        if text[i : i + 1] != "'":
            raise self.fail("unterminated character constant", pos)
        self._add("number", ord(ch), pos, space)
        return i + 1

    def _number(self, pos: int, space: bool) -> int:
        text = self.text
        end = pos + 1 if text[pos] in "+-" else pos
        hexa = text[end : end + 2].lower() == "0x"
        exp_marks = "pP" if hexa else "eE"
        while end < len(text):
            c = text[end]
            if c.isalnum() or c in "._" or (c in "+-" and text[end - 1] in exp_marks):
                end += 1
            else:
                break
        word = text[pos:end]
        value = _parse_number(word)
        if value is None:
            raise self.fail(f"bad number syntax: {word!r}", pos)
        self._add("number", value, pos, space)
        return end


def _parse_number(word: str) -> int | float | None:
    """Go's number literals: decimal, 0x/0o/0b, legacy 0-octal, `_` separators, floats."""
    if not word.isascii() or word.endswith("_") or "__" in word:
        return None
    unsigned = word.lstrip("+-")
    if unsigned.startswith("_") or len(word) - len(unsigned) > 1:
        return None
    try:
        if unsigned[:2].lower() in ("0x", "0o", "0b"):
            if unsigned[:2].lower() == "0x" and any(c in unsigned.lower() for c in ".p"):
                return float.fromhex(word.replace("_", ""))
            return int(word, 0)
        body = word.replace("_", "")
        digits = body.lstrip("+-")
        if digits.isdigit():
            if len(digits) > 1 and digits.startswith("0"):
                return int(body[: len(body) - len(digits)] + "0o" + digits[1:], 0)
            return int(body)
        if not all(c in "0123456789.eE+-" for c in body):
            return None
        value = float(body)
        return None if math.isinf(value) else value
    except ValueError:
        return None


# -----------------------------------------------------------------------------------------------
# Parse tree


@dataclass
class _Node:
    pos: int


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _FieldArg(_Node):  # .A.B (relative to dot)
    names: tuple[str, ...]


@dataclass
class _VarArg(_Node):  # $x.A.B
    name: str
    names: tuple[str, ...]


@dataclass
class _Literal(_Node):
    value: Any


@dataclass
class _Dot(_Node):
    pass


@dataclass
class _Nil(_Node):
    pass


@dataclass
class _Ident(_Node):  # a function name
    name: str


@dataclass
class _Chain(_Node):  # (pipeline).A.B or ident.A
    node: _Node
    names: tuple[str, ...]


@dataclass
class _Command(_Node):
    args: list[_Node]


@dataclass
class _Pipe(_Node):
    decls: list[str]
    is_assign: bool
    cmds: list[_Command]


@dataclass
class _Action(_Node):
    pipe: _Pipe


@dataclass
class _Branch(_Node):  # if / with / range
    kind: str
    pipe: _Pipe
    body: list[_Node]
    else_body: list[_Node] = field(default_factory=list)


@dataclass
class _Break(_Node):
    pass


@dataclass
class _Continue(_Node):
    pass


def _describe(node: _Node) -> str:
    """Node text for error messages, as Go prints `<.Field>`."""
    if isinstance(node, _FieldArg):
        return "." + ".".join(node.names)
    if isinstance(node, _VarArg):
        return node.name + "".join("." + n for n in node.names)
    if isinstance(node, _Ident):
        return node.name
    if isinstance(node, _Chain):
        return _describe(node.node) + "".join("." + n for n in node.names)
    if isinstance(node, _Pipe):
        return "(" + " | ".join(_describe(c) for c in node.cmds) + ")"
    if isinstance(node, _Command):
        return " ".join(_describe(a) for a in node.args)
    if isinstance(node, _Literal):
        return json.dumps(node.value) if isinstance(node.value, str) else format_value(node.value)
    if isinstance(node, _Dot):
        return "."
    if isinstance(node, _Nil):
        return "nil"
    return type(node).__name__


# -----------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.toks = _Lexer(text, self.error).run()
        self.i = 0
        self.depth = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    # errors
    def error(self, msg: str, pos: int) -> TemplateError:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return TemplateError(f"template: {self.name}:{line}:{col}: {msg}")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def expect(self, kind: str, context: str) -> _Tok:
        tok = self.next()
        if tok.kind != kind:
            raise self.error(f"unexpected {self._tok_text(tok)} in {context}", tok.pos)
        return tok

    @staticmethod
    def _tok_text(tok: _Tok) -> str:
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
    def parse(self) -> list[_Node]:
        body, end = self.item_list(top=True)
        assert end is None
        return body

    def item_list(self, top: bool = False) -> tuple[list[_Node], str | None]:
        """Items until EOF (top) or until {{end}} / {{else ...}} (returned as the terminator)."""
        out: list[_Node] = []
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                if top:
                    return out, None
                raise self.error("unexpected EOF", tok.pos)
            if tok.kind == "text":
                self.next()
                out.append(_Text(tok.pos, tok.val))
                continue
            self.expect("ldelim", "template")
            kw = self.peek()
            if kw.kind == "keyword" and kw.val in ("end", "else"):
                if top:
                    raise self.error(f"unexpected {{{{{kw.val}}}}}", kw.pos)
                self.next()
                return out, kw.val
            out.append(self.action())

    def action(self) -> _Node:
        tok = self.peek()
        if tok.kind == "keyword":
            self.next()
            if tok.val in ("if", "with", "range"):
                return self.branch(tok.val, tok.pos)
            if tok.val in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.error(f"{{{{{tok.val}}}}} outside {{{{range}}}}", tok.pos)
                self.expect("rdelim", tok.val)
                return _Break(tok.pos) if tok.val == "break" else _Continue(tok.pos)
            raise self.error(f"{{{{{tok.val}}}}} is not supported in regsync templates", tok.pos)
        pipe = self.pipeline("command", tok.pos)
        return _Action(tok.pos, pipe)

    def branch(self, kind: str, pos: int) -> _Branch:
        self.enter(pos)
        mark = len(self.vars)
        pipe = self.pipeline(kind, pos, allow_range_decl=kind == "range")
        body_mark = len(self.vars)  # the pipeline's variables reach the else branch too
        if kind == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        node = _Branch(pos, kind, pipe, body)
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

    def pipeline(self, context: str, pos: int, allow_range_decl: bool = False) -> _Pipe:
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
        cmds: list[_Command] = []
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
            if isinstance(first, _Literal | _Nil | _Dot):
                raise self.error(
                    f"non executable command in pipeline stage {cmds.index(c) + 1}", first.pos
                )
        if not is_assign:
            self.vars.extend(decls)
        return _Pipe(pos, decls, is_assign, cmds)

    def command(self) -> _Command:
        start = self.peek().pos
        args: list[_Node] = []
        while True:
            tok = self.peek()
            if tok.kind in ("rdelim", "rparen", "pipe"):
                break
            if args and not tok.space_before and tok.kind != "field":
                raise self.error(f"missing space before {self._tok_text(tok)}", tok.pos)
            args.append(self.operand())
        if not args:
            raise self.error("empty command", start)
        if isinstance(args[0], _Nil):
            raise self.error("nil is not a command", args[0].pos)
        return _Command(start, args)

    def operand(self) -> _Node:
        node = self.term()
        names: list[str] = []
        while self.peek().kind == "field" and not self.peek().space_before:
            names.append(self.next().val)
        if not names:
            return node
        if isinstance(node, _FieldArg):
            return _FieldArg(node.pos, node.names + tuple(names))
        if isinstance(node, _VarArg):
            return _VarArg(node.pos, node.name, node.names + tuple(names))
        if isinstance(node, _Literal | _Nil | _Dot):
            raise self.error(f"unexpected . after term {_describe(node)!r}", node.pos)
        return _Chain(node.pos, node, tuple(names))

    def term(self) -> _Node:
        tok = self.next()
        if tok.kind == "field":
            return _FieldArg(tok.pos, (tok.val,))
        if tok.kind == "var":
            if tok.val not in self.vars:
                raise self.error(f'undefined variable "{tok.val}"', tok.pos)
            return _VarArg(tok.pos, tok.val, ())
        if tok.kind in ("string", "number", "bool"):
            return _Literal(tok.pos, tok.val)
        if tok.kind == "nil":
            return _Nil(tok.pos)
        if tok.kind == "dot":
            return _Dot(tok.pos)
        if tok.kind == "ident":
            if tok.val not in FUNCTIONS:
                raise self.error(f'function "{tok.val}" not defined', tok.pos)
            return _Ident(tok.pos, tok.val)
        if tok.kind == "lparen":
            self.enter(tok.pos)
            pipe = self.pipeline("paren", tok.pos)
            self.depth -= 1
            return pipe
        raise self.error(f"unexpected {self._tok_text(tok)} in operand", tok.pos)


# -----------------------------------------------------------------------------------------------
# Functions


class _Break_(Exception):
    pass


class _Continue_(Exception):
    pass


class _ExecError(Exception):
    """An execution failure before it is located at a node."""


def _need_str(v: Any, what: str = "value") -> str:
    if isinstance(v, str):
        return v
    if v is NO_VALUE:
        raise _ExecError("invalid value; expected string")
    raise _ExecError(f"wrong type for {what}; expected string; got {_type_name(v)}")


def _need_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise _ExecError(f"cannot index slice/array with type {_type_name(v)}")


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


def _is_nil(v: Any) -> bool:
    return v is None or v is NO_VALUE


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise _ExecError("missing argument for comparison")
    k1 = _basic_kind(a)
    for b in others:
        k2 = _basic_kind(b)
        if k1 != k2:
            if not _is_nil(a) and not _is_nil(b):
                raise _ExecError("incompatible types for comparison")
            continue
        if k1 != "other":
            if a == b:
                return True
            continue
        if _is_nil(a) or _is_nil(b):
            if _is_nil(a) and _is_nil(b):
                return True
            continue
        if isinstance(a, list | tuple | dict) or isinstance(b, list | tuple | dict):
            raise _ExecError(f"non-comparable type {format_value(a)}: {_type_name(a)}")
        if a == b:
            return True
    return False


def _ordered(a: Any, b: Any) -> int:
    k1, k2 = _basic_kind(a), _basic_kind(b)
    if k1 != k2:
        raise _ExecError("incompatible types for comparison")
    if k1 not in ("int", "float", "string"):
        raise _ExecError("invalid type for comparison")
    return (a > b) - (a < b)


def _length(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogatepass"))
    if isinstance(v, list | tuple | dict):
        return len(v)
    raise _ExecError(f"len of type {_type_name(v)}")


def _index(item: Any, *indexes: Any) -> Any:
    for idx in indexes:
        if _is_nil(item):
            raise _ExecError("index of untyped nil")
        if isinstance(item, dict):
            if not isinstance(idx, str):
                raise _ExecError(f"value has type {_type_name(idx)}; should be string")
            item = item.get(idx, NO_VALUE)
        elif isinstance(item, list | tuple | str):
            seq: Sequence[Any] = item.encode() if isinstance(item, str) else item
            i = _need_int(idx)
            if not 0 <= i < len(seq):
                raise _ExecError(f"index out of range: {i}")
            item = seq[i]
        else:
            raise _ExecError(f"can't index item of type {_type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if _is_nil(item):
        raise _ExecError("slice of untyped nil")
    if len(indexes) > 3:
        raise _ExecError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _ExecError("cannot 3-index slice a string")
        seq: Any = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, list | tuple):
        seq = list(item)
    else:
        raise _ExecError(f"can't slice item of type {_type_name(item)}")
    idx = [_need_int(i) for i in indexes]
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(seq)
    cap = idx[2] if len(idx) > 2 else len(seq)
    if not 0 <= lo <= hi <= cap <= len(seq):
        raise _ExecError(
            f"invalid slice index: {lo} > {hi}" if lo > hi else "slice index out of range"
        )
    out = seq[lo:hi]
    return out.decode("utf-8", "replace") if isinstance(out, bytes) else out


def _sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(a))
    return "".join(out)


def _sprintln(args: Sequence[Any]) -> str:
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
    if _is_nil(arg):
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_type_name(arg)}={format_value(arg)})"


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
    text = _go_float(f, "g" if verb == "v" else verb, -1 if prec is None else prec)
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
        return _pad(_type_name(arg), width, minus)
    if isinstance(arg, list | tuple) and verb != "v":
        return "[" + " ".join(_format_one(verb, flags, width, prec, x) for x in arg) + "]"
    if isinstance(arg, bool):
        if verb in "vt":
            return _pad("true" if arg else "false", width, minus)
        return _bad_verb(verb, arg)
    if isinstance(arg, GoDuration | gotime.GoMonth | gotime.GoWeekday) and verb in "vs":
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
            raise _ExecError("printf output exceeds the size limit")
    if argi < len(args):
        extra = ", ".join(
            f"{_type_name(a)}={format_value(a)}" if not _is_nil(a) else "<nil>" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _default(default: Any, value: Any) -> Any:
    if _is_nil(value):
        return default
    if isinstance(value, bool | int | float | str) and not value:
        return default
    return value


def _file(path: Any) -> str:
    """regsync: file contents, whitespace-trimmed; any read error gives "" (never an error)."""
    name = _need_str(path)
    try:
        with open(name, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return ""  # a FIFO or device could block or never end
            data = f.read(MAX_FILE + 1)
    except (OSError, ValueError):
        return ""
    if len(data) > MAX_FILE:
        raise _ExecError(f"file {name!r} is larger than {MAX_FILE >> 20} MiB")
    return data.decode("utf-8", "replace").strip()


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        raise _ExecError(f"wrong type for value; expected []string; got {_type_name(items)}")
    return _need_str(sep).join(items)


def _split(s: Any, sep: Any) -> list[str]:
    text, sep_text = _need_str(s), _need_str(sep)
    if sep_text == "":
        return list(text)
    return text.split(sep_text)


def _html(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(args)
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
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(args)
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
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(args)
    return urllib.parse.quote_plus(text, safe="-_.~")


def _not(v: Any) -> bool:
    return not truth(v)


def _time() -> TimeFuncs:
    return TimeFuncs()


def _string_fn(f: Callable[[str], str]) -> Callable[[Any], str]:
    return lambda s: f(_need_str(s))


@dataclass(frozen=True)
class _Func:
    call: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: variadic


FUNCTIONS: dict[str, _Func] = {
    # text/template built-ins
    "and": _Func(lambda *a: a, 1, None),  # evaluated lazily by the executor
    "or": _Func(lambda *a: a, 1, None),
    "not": _Func(_not, 1, 1),
    "len": _Func(_length, 1, 1),
    "index": _Func(_index, 1, None),
    "slice": _Func(_slice, 1, None),
    "print": _Func(lambda *a: _sprint(a), 0, None),
    "printf": _Func(lambda f, *a: go_sprintf(_need_str(f), a), 1, None),
    "println": _Func(lambda *a: _sprintln(a), 0, None),
    "eq": _Func(_eq, 1, None),
    "ne": _Func(lambda a, b: not _eq(a, b), 2, 2),
    "lt": _Func(lambda a, b: _ordered(a, b) < 0, 2, 2),
    "le": _Func(lambda a, b: _ordered(a, b) <= 0, 2, 2),
    "gt": _Func(lambda a, b: _ordered(a, b) > 0, 2, 2),
    "ge": _Func(lambda a, b: _ordered(a, b) >= 0, 2, 2),
    "html": _Func(_html, 0, None),
    "js": _Func(_js, 0, None),
    "urlquery": _Func(_urlquery, 0, None),
    # regsync's pkg/template functions
    "default": _Func(_default, 2, 2),
    "env": _Func(lambda k: os.environ.get(_need_str(k), ""), 1, 1),
    "file": _Func(_file, 1, 1),
    "join": _Func(_join, 2, 2),
    "json": _Func(lambda v: _json_text(v, None), 1, 1),
    "jsonPretty": _Func(lambda v: _json_text(v, 2), 1, 1),
    "printPretty": _Func(lambda v: _json_text(v, 2), 1, 1),
    "lower": _Func(_string_fn(str.lower), 1, 1),
    "upper": _Func(_string_fn(str.upper), 1, 1),
    "split": _Func(_split, 2, 2),
    "trimSpace": _Func(_string_fn(str.strip), 1, 1),
    "time": _Func(_time, 0, 0),
}


# -----------------------------------------------------------------------------------------------
# Executor


class _Exec:
    def __init__(
        self, parser: _Parser, data: Any, on_missing_file: Callable[[str], None] | None = None
    ) -> None:
        self.p = parser
        self.on_missing_file = on_missing_file
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.out: list[str] = []
        self.size = 0
        self.steps = 0

    def fail(self, node: _Node, msg: str) -> TemplateError:
        base = self.p.error("", node.pos)
        where = str(base).rstrip(": ").rstrip()
        return TemplateError(f"{where}: executing at <{_describe(node)}>: {msg}")

    def step(self, node: _Node) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.fail(node, f"template took more than {MAX_STEPS} steps")

    def emit(self, text: str, node: _Node) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise self.fail(node, f"template output exceeds {MAX_OUTPUT >> 20} MiB")
        self.out.append(text)

    # variables
    def var(self, name: str) -> Any:
        for key, value in reversed(self.vars):
            if key == name:
                return value
        raise _ExecError(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise _ExecError(f"undefined variable: {name}")

    # walking
    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            self.step(node)
            if isinstance(node, _Text):
                self.emit(node.text, node)
            elif isinstance(node, _Action):
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decls:
                    self.emit(_print_value(value), node)
            elif isinstance(node, _Branch):
                self.branch(dot, node)
            elif isinstance(node, _Break):
                raise _Break_()
            elif isinstance(node, _Continue):
                raise _Continue_()

    def branch(self, dot: Any, node: _Branch) -> None:
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

    def range(self, dot: Any, node: _Branch) -> None:
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
        elif _is_nil(value):
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
            except _Continue_:
                continue
            except _Break_:
                break

    def declare(self, pipe: _Pipe, name: str, value: Any) -> None:
        if pipe.is_assign:
            self.set_var(name, value)
        else:
            self.vars.append((name, value))

    def eval_pipe_value(self, dot: Any, pipe: _Pipe) -> Any:
        """A pipeline's value without its declarations (range assigns them per element)."""
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
        return value

    def pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        value = self.eval_pipe_value(dot, pipe)
        for name in pipe.decls:
            try:
                self.declare(pipe, name, value)
            except _ExecError as e:
                raise self.fail(pipe, str(e)) from None
        return value

    def command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        self.step(cmd)
        first = cmd.args[0]
        try:
            if isinstance(first, _FieldArg):
                return self.field_chain(dot, dot, first.names, cmd.args, final, first)
            if isinstance(first, _VarArg):
                value = self.var(first.name)
                if not first.names:
                    self.not_a_function(cmd.args, final, first)
                    return value
                return self.field_chain(dot, value, first.names, cmd.args, final, first)
            if isinstance(first, _Chain):
                base = self.arg(dot, first.node)
                return self.field_chain(dot, base, first.names, cmd.args, final, first)
            if isinstance(first, _Ident):
                return self.function(dot, first, cmd.args[1:], final)
            self.not_a_function(cmd.args, final, first)
            return self.arg(dot, first)
        except _ExecError as e:
            raise self.fail(first, str(e)) from None

    def not_a_function(self, args: list[_Node], final: Any, node: _Node) -> None:
        if len(args) > 1 or final is not _MISSING:
            raise _ExecError(f"can't give argument to non-function {_describe(node)}")

    def arg(self, dot: Any, node: _Node) -> Any:
        self.step(node)
        try:
            if isinstance(node, _Literal):
                return node.value
            if isinstance(node, _Dot):
                return dot
            if isinstance(node, _Nil):
                return None
            if isinstance(node, _FieldArg):
                return self.field_chain(dot, dot, node.names, [node], _MISSING, node)
            if isinstance(node, _VarArg):
                value = self.var(node.name)
                return (
                    self.field_chain(dot, value, node.names, [node], _MISSING, node)
                    if node.names
                    else value
                )
            if isinstance(node, _Pipe):
                return self.pipeline(dot, node)
            if isinstance(node, _Chain):
                base = self.arg(dot, node.node)
                return self.field_chain(dot, base, node.names, [node], _MISSING, node)
            if isinstance(node, _Ident):
                return self.function(dot, node, [], _MISSING)
        except _ExecError as e:
            raise self.fail(node, str(e)) from None
        raise self.fail(node, "can't evaluate")

    def field_chain(
        self,
        dot: Any,
        receiver: Any,
        names: tuple[str, ...],
        args: list[_Node],
        final: Any,
        node: _Node,
    ) -> Any:
        for name in names[:-1]:
            receiver = self.field(dot, receiver, name, [], _MISSING)
        return self.field(dot, receiver, names[-1], args[1:], final)

    def field(self, dot: Any, receiver: Any, name: str, args: list[_Node], final: Any) -> Any:
        method = getattr(receiver, "go_method", None)
        fn = method(name) if callable(method) else None
        if fn is not None:
            argv = [self.arg(dot, a) for a in args]
            if final is not _MISSING:
                argv.append(final)
            return self.call(name, fn, argv)
        if receiver is NO_VALUE or receiver is None:
            return NO_VALUE  # a field of nil data or of a missing key: Go's zero Value
        has_args = bool(args) or final is not _MISSING
        if isinstance(receiver, dict):
            if has_args:
                raise _ExecError(f"{name} is not a method but has arguments")
            return receiver.get(name, NO_VALUE)
        if isinstance(receiver, GoStruct):
            try:
                value = receiver.get(name)
            except KeyError:
                raise _ExecError(
                    f"can't evaluate field {name} in type {receiver.type_name}"
                ) from None
            if has_args:
                raise _ExecError(f"{name} has arguments but cannot be invoked as function")
            return value
        raise _ExecError(f"can't evaluate field {name} in type {_type_name(receiver)}")

    def function(self, dot: Any, ident: _Ident, args: list[_Node], final: Any) -> Any:
        spec = FUNCTIONS[ident.name]
        nargs = len(args) + (final is not _MISSING)
        if nargs < spec.min_args or (spec.max_args is not None and nargs > spec.max_args):
            want = spec.min_args if spec.max_args == spec.min_args else f"at least {spec.min_args}"
            raise _ExecError(f"wrong number of args for {ident.name}: want {want} got {nargs}")
        if ident.name in ("and", "or"):
            # Short-circuit: return the first falsy (and) / truthy (or) argument, else the last.
            value: Any = None
            values = [*args, final] if final is not _MISSING else list(args)
            for i, a in enumerate(values):
                value = a if i == len(args) else self.arg(dot, a)
                if truth(value) != (ident.name == "and"):
                    return value
            return value
        argv = [self.arg(dot, a) for a in args]
        if final is not _MISSING:
            argv.append(final)
        if ident.name == "file" and self.on_missing_file is not None and argv:
            # regsync reads a missing file as "": the caller may want to warn about it
            path = argv[0]
            if isinstance(path, str) and not os.path.isfile(path):
                self.on_missing_file(path)
        return self.call(ident.name, spec.call, argv)

    def call(self, name: str, fn: Callable[..., Any], argv: list[Any]) -> Any:
        try:
            result = fn(*argv)
        except _ExecError:
            raise
        except GoTimeError as e:
            raise _ExecError(f"error calling {name}: {e}") from None
        except TypeError as e:
            raise _ExecError(f"wrong arguments for {name}: {e}") from None
        except (ValueError, OverflowError, KeyError, IndexError, AttributeError) as e:
            raise _ExecError(f"error calling {name}: {e}") from None
        if isinstance(result, str) and len(result) > MAX_OUTPUT:
            raise _ExecError(f"result of {name} exceeds {MAX_OUTPUT >> 20} MiB")
        if isinstance(result, list) and len(result) > MAX_ITEMS:
            raise _ExecError(f"result of {name} has more than {MAX_ITEMS} items")
        return result


def parse(text: str, *, name: str = "") -> Callable[..., str]:
    """Parse once, render many times: returns `render(data, on_missing_file=None) -> str`."""
    if not isinstance(text, str):
        raise TemplateError("template text must be a string")
    parser = _Parser(text, name or "template")
    try:
        tree = parser.parse()
    except RecursionError:
        raise parser.error("template nested too deeply", 0) from None

    def run(data: Any, on_missing_file: Callable[[str], None] | None = None) -> str:
        ex = _Exec(parser, data, on_missing_file)
        try:
            ex.walk(data, tree)
        except RecursionError:
            raise parser.error("template nested too deeply", 0) from None
        return "".join(ex.out)

    return run


def render(
    text: str,
    data: Any,
    *,
    name: str = "",
    on_missing_file: Callable[[str], None] | None = None,
) -> str:
    """Render Go template `text` with `data` (`.`); errors raise TemplateError.
    `on_missing_file(path)` hears of each `file` call whose file does not exist."""
    return parse(text, name=name)(data, on_missing_file)
