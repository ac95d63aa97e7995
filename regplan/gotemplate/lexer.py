"""Go text/template's lexer: text and `{{ }}` actions (trim markers, comments) into tokens."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from regplan.errors import TemplateError

_SPACE = " \t\r\n"
_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)


_SINGLE = {"|": "pipe", "=": "assign", ",": "comma"}  # one-character tokens


def _starts_number(text: str, pos: int) -> bool:
    """A sign that begins a number literal (`-1`, `+.5`), not an operator."""
    return pos + 1 < len(text) and text[pos + 1] in "0123456789."


@dataclass(frozen=True)
class Tok:
    kind: str  # text, ldelim, rdelim, ident, field, var, string, char, number, bool, nil, dot,
    # pipe, lparen, rparen, declare, assign, comma, keyword, eof
    val: Any
    pos: int
    space_before: bool = False


class Lexer:
    def __init__(self, text: str, fail: Callable[[str, int], TemplateError]) -> None:
        self.text = text
        self.fail = fail
        self.toks: list[Tok] = []

    def run(self) -> list[Tok]:
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
                self.toks.append(Tok("text", chunk, pos))
            if start < 0:
                break
            self.toks.append(Tok("ldelim", "{{", start))
            pos = after + (2 if trim_left else 0)
            pos, trim_next = self._action(pos, start)
        self.toks.append(Tok("eof", None, len(text)))
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
            return self._comment(pos)
        paren = 0
        space = False
        while True:
            is_delim, trim, npos = self._right_delim(pos)
            if is_delim and paren == 0:
                self.toks.append(Tok("rdelim", "}}", pos))
                return npos, trim
            if is_delim and paren:
                raise self.fail("unclosed left paren", pos)
            if pos >= len(text):
                raise self.fail("unclosed action", start)
            c = text[pos]
            if c in _SPACE:
                pos = self._skip_space(pos)
                space = True
                continue
            tok_start = pos
            if c in "()":
                paren += 1 if c == "(" else -1
                if paren < 0:
                    raise self.fail("unexpected right paren", pos)
                self._add("lparen" if c == "(" else "rparen", c, pos, space)
                pos += 1
            else:
                pos = self._token(pos, space)
            space = False
            assert pos > tok_start

    def _comment(self, pos: int) -> tuple[int, bool]:
        text = self.text
        close = text.find("*/", pos + 2)
        if close < 0:
            raise self.fail("unclosed comment", pos)
        is_delim, trim, npos = self._right_delim(close + 2)
        if not is_delim:
            raise self.fail("comment ends before closing delimiter", close + 2)
        self.toks.pop()  # the ldelim: a comment is not an action
        return npos, trim

    def _skip_space(self, pos: int) -> int:
        text = self.text
        while pos < len(text) and text[pos] in _SPACE:
            if self._right_delim(pos)[0]:
                break  # " -}}": the space belongs to the trim marker
            pos += 1
        return pos

    def _word_end(self, pos: int) -> int:
        text = self.text
        while pos < len(text) and (text[pos].isalnum() or text[pos] == "_"):
            pos += 1
        return pos

    def _token(self, pos: int, space: bool) -> int:
        """One token other than a parenthesis; the position after it."""
        text = self.text
        c = text[pos]
        if c in _SINGLE:
            self._add(_SINGLE[c], c, pos, space)
            return pos + 1
        if c == ":":
            if text[pos + 1 : pos + 2] != "=":
                raise self.fail("expected :=", pos)
            self._add("declare", ":=", pos, space)
            return pos + 2
        if c == '"':
            return self._string(pos, space)
        if c == "`":
            return self._raw_string(pos, space)
        if c == "'":
            return self._char(pos, space)
        if c == "$":
            end = self._word_end(pos + 1)
            self._add("var", text[pos:end], pos, space)
            return end
        next_is_digit = pos + 1 < len(text) and text[pos + 1].isdigit()
        if c == "." and not next_is_digit:
            return self._field(pos, space)
        if c.isdigit() or (c == "." and next_is_digit) or (c in "+-" and _starts_number(text, pos)):
            return self._number(pos, space)
        if c.isalpha() or c == "_":
            return self._word(pos, space)
        raise self.fail(f"unrecognized character in action: {c!r}", pos)

    def _raw_string(self, pos: int, space: bool) -> int:
        end = self.text.find("`", pos + 1)
        if end < 0:
            raise self.fail("unterminated raw quoted string", pos)
        self._add("string", self.text[pos + 1 : end], pos, space)
        return end + 1

    def _field(self, pos: int, space: bool) -> int:
        end = self._word_end(pos + 1)
        if end == pos + 1:
            self._add("dot", ".", pos, space)
        else:
            self._add("field", self.text[pos + 1 : end], pos, space)
        return end

    def _word(self, pos: int, space: bool) -> int:
        end = self._word_end(pos)
        word = self.text[pos:end]
        if word in ("true", "false"):
            self._add("bool", word == "true", pos, space)
        elif word == "nil":
            self._add("nil", None, pos, space)
        else:
            self._add("keyword" if word in _KEYWORDS else "ident", word, pos, space)
        return end

    def _add(self, kind: str, val: Any, pos: int, space: bool) -> None:
        self.toks.append(Tok(kind, val, pos, space))

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
        value = parse_number(word)
        if value is None:
            raise self.fail(f"bad number syntax: {word!r}", pos)
        self._add("number", value, pos, space)
        return end


def parse_number(word: str) -> int | float | None:
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
