"""YAML text → a node tree with positions, via strictyaml's parser with anchors let through.

A config of only ordinary text is composed by libyaml (PyYAML's C parser) instead, resolving
scalars by the same YAML 1.2 rules: the same nodes, values, tags, styles and start positions, in
a tenth of the time. Anything it may read differently (tags, directives, tabs, unusual line
breaks) or refuses goes through strictyaml's parser, whose error messages are the ones reported.

strictyaml refuses anchors and aliases; regsync configs use them (`x-` blocks merged with `<<:`).
`_AnchorLoader` is strictyaml's loader with only that refusal lifted: tags (`!!python/...`) are
still refused, flow lists are allowed. We stop at the composed node tree (nothing is
constructed), so every scalar keeps its original text (`3.10` stays "3.10") and every value keeps
the parser's mark: a value that comes through an alias is reported where its anchor defines it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from regplan.errors import ConfigError

MAX_MERGE_DEPTH = 32  # `<<` merges of merges; deeper (or cyclic) merges are refused

_NULL_TAG = "tag:yaml.org,2002:null"
# The first run of a plain scalar in block context: up to a space, tab, line break, NUL, or a
# `:` followed by one of those (YAML 1.2, as ruamel's scanner reads it).
_PLAIN_LINE = re.compile(r"(?:[^\0 \t\r\n\x85\u2028\u2029:]|:(?=[^\0 \t\r\n\x85\u2028\u2029]))*")
_NEXT_LINE = re.compile(r"\n( *)(.)", re.DOTALL)
_COUNTED = re.compile("[\r\n\ufeff]")
_MERGE_TAG = "tag:yaml.org,2002:merge"
# What libyaml may read otherwise than strictyaml (or that strictyaml refuses): `!` (tags), a
# `%` directive, tabs, NEL/LS/PS line breaks, BOMs, control characters. Text without any of them
# is composed by libyaml; `!` in a quoted value only costs the slower parse.
_NOT_FOR_LIBYAML = re.compile(
    '[^\n\r "#-~\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]|^%',
    re.MULTILINE,
)
# YAML 1.2's implicit scalar tags as strictyaml's resolver has them (its VersionedResolver at 1.2)
_RESOLVE_12 = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (
        "tag:yaml.org,2002:float",
        r"""^(?:
         [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        "-+0123456789.",
    ),
    (
        "tag:yaml.org,2002:int",
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0o?[0-7_]+
        |[-+]?[0-9_]+
        |[-+]?0x[0-9a-fA-F_]+)$""",
        "-+0123456789",
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
    ("tag:yaml.org,2002:null", r"^(?: ~ |null|Null|NULL | )$", ["~", "n", "N", ""]),
    (
        "tag:yaml.org,2002:timestamp",
        r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
        (?:[Tt]|[ \t]+)[0-9][0-9]?
        :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
        (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
        "0123456789",
    ),
    ("tag:yaml.org,2002:value", r"^(?:=)$", "="),
)


@functools.cache
def _libyaml_loader() -> type | None:
    """libyaml's parser and composer with YAML 1.2 scalar resolution, or None without libyaml."""
    try:
        import yaml
        from yaml.cyaml import CParser
    except ImportError:
        return None

    class _Resolver12(yaml.resolver.BaseResolver):
        pass

    for tag, pattern, first in _RESOLVE_12:
        _Resolver12.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))

    class _LibyamlLoader(CParser, _Resolver12):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Resolver12.__init__(self)

    return _LibyamlLoader


def _compose_libyaml(text: str) -> tuple[bool, Any]:
    """(True, root node or None) when libyaml composed the text; (False, None) when it is not
    for libyaml or libyaml refused it (strictyaml's parser then reads it, and says why)."""
    loader_class = _libyaml_loader()
    if loader_class is None or _NOT_FOR_LIBYAML.search(text):
        return False, None
    import yaml

    loader = loader_class(text)
    try:
        return True, loader.get_single_node()
    except yaml.YAMLError:
        return False, None
    finally:
        loader.dispose()


def _loader_class(label: str) -> type:
    # strictyaml's loader scans with ruamel's round-trip scanner, which gathers comments on
    # every token check (87 % of a big config's load). We compose nodes and never need the
    # comments: the plain scanner reads the same tokens several times faster. What strictyaml
    # refuses is still refused here: tags. Anchors are let through; flow style is allowed.
    from strictyaml import exceptions
    from strictyaml.parser import StrictYAMLConstructor
    from strictyaml.ruamel.composer import Composer
    from strictyaml.ruamel.parser import RoundTripParser
    from strictyaml.ruamel.reader import Reader
    from strictyaml.ruamel.resolver import VersionedResolver
    from strictyaml.ruamel.scanner import Scanner
    from strictyaml.ruamel.tokens import ScalarToken, TagToken

    class _AnchorLoader(
        Reader, Scanner, RoundTripParser, Composer, StrictYAMLConstructor, VersionedResolver
    ):
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream, loader=self)
            Scanner.__init__(self, loader=self)
            RoundTripParser.__init__(self, loader=self)
            Composer.__init__(self, loader=self)
            StrictYAMLConstructor.__init__(self, loader=self)
            VersionedResolver.__init__(self, None, loader=self)
            self._settled = -1

        def forward(self, length: int = 1) -> None:
            # the reader moves one character at a time to count lines; a span without line
            # breaks (or BOMs, which take no column) only moves the column
            if length > 1:
                if self.pointer + length + 1 >= len(self.buffer):
                    self.update(length + 1)
                span = self.buffer[self.pointer : self.pointer + length]
                if not _COUNTED.search(span):
                    self.pointer += length
                    self.index += length
                    self.column += length
                    return
            Reader.forward(self, length)

        def scan_plain(self) -> Any:
            # A one-line scalar in block context (nearly every value of a generated config):
            # its end found by one regex instead of a Python loop per character. Anything
            # that may continue (spaces after it, a more indented next line) is scanned as
            # ruamel does.
            reader = self.reader
            if self.flow_level or reader.peek() == "#":
                return Scanner.scan_plain(self)
            buffer, start = reader.buffer, reader.pointer
            found = _PLAIN_LINE.match(buffer, start)  # `*`: always matches, maybe empty
            end = found.end() if found else start
            if end == start or not _ends_plain(buffer, end, self.indent + 1):
                return Scanner.scan_plain(self)
            start_mark = reader.get_mark()
            self.allow_simple_key = False
            reader.forward(end - start)
            return ScalarToken(buffer[start:end], True, start_mark, reader.get_mark())

        def check_token(self, *choices: Any) -> bool:
            # The parser checks the same front token several times; once no more tokens are
            # needed for it, none are until it is taken (get_token counts it).
            if self._settled != self.tokens_taken:
                while self.need_more_tokens():
                    self.fetch_more_tokens()
                self._settled = self.tokens_taken
            if not self.tokens:
                return False
            token = self.tokens[0]
            if isinstance(token, TagToken):
                raise exceptions.TagTokenDisallowed(
                    "While scanning",
                    token.end_mark,
                    "Found disallowed tag tokens (do not specify types in markup)",
                    token.start_mark,
                )
            return not choices or isinstance(token, choices)

    _AnchorLoader.label = label
    return _AnchorLoader


def _ends_plain(buffer: str, end: int, indent: int) -> bool:
    """Whether a plain scalar surely ends at `end`: before `: ` or a NUL, or before a line break
    whose next line is a comment or indented less than `indent` (else it may continue)."""
    ch = buffer[end]
    if ch == ":" or ch == "\0":
        return True  # `:` here is followed by a space, tab or break (see _PLAIN_LINE)
    if ch != "\n":
        return False
    following = _NEXT_LINE.match(buffer, end)
    if following is None:
        return False
    first = following.group(2)
    if first in "#\0":
        return True
    return len(following.group(1)) < indent and first not in "\r\n\x85\u2028\u2029"


@dataclass(frozen=True)
class Where:
    """A position in the file, 1-based."""

    line: int
    column: int


def where(node: Any) -> Where:
    mark = node.start_mark
    return Where(mark.line + 1, mark.column + 1)


def error_at(label: str, node: Any, message: str) -> ConfigError:
    if node is None:
        return ConfigError(message, file=label)
    w = where(node)
    return ConfigError(message, file=label, line=w.line, column=w.column)


def compose(text: str, label: str) -> Any:
    """The document's root node, or None for an empty document."""
    composed, root = _compose_libyaml(text)
    if composed:
        return root
    return _compose_strictyaml(text, label)


def _compose_strictyaml(text: str, label: str) -> Any:
    from strictyaml.ruamel.error import MarkedYAMLError, YAMLError
    from strictyaml.ruamel.reader import ReaderError

    try:
        # the loader's reader checks every character up front: a NUL or other control
        # character fails here, before parsing starts
        loader = _loader_class(label)(text)
    except ReaderError as e:
        line = text.count("\n", 0, max(0, e.position)) + 1
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        problem = f"unacceptable character {char}: {e.reason}"
        raise ConfigError(problem, file=label, line=line) from None
    try:
        return loader.get_single_node()
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = _plain_problem(e) or " ".join(str(p) for p in (e.context, e.problem) if p)
        problem = (problem or "invalid YAML").replace("\n", " ")
        if mark is None:
            raise ConfigError(problem, file=label) from None
        raise ConfigError(problem, file=label, line=mark.line + 1, column=mark.column + 1) from None
    except YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}".replace("\n", " "), file=label) from None
    finally:
        loader.dispose()


def _plain_problem(e: Any) -> str:
    """What the parser means, for the mistakes people make: the parser's own wording
    ("expected <block end>, but found '<block mapping start>'") names its internals."""
    context, problem = str(e.context or ""), str(e.problem or "")
    if "disallowed tag tokens" in problem:
        return (
            "YAML tags such as !!str are not allowed: every value is read as text already, "
            "quote it if it needs quoting"
        )
    if "block" in context and "expected <block end>" in problem:
        start = e.context_mark.line + 1 if e.context_mark is not None else 0
        where = f" started at line {start}" if start else ""
        return (
            f"bad indentation: this line does not line up with the entries of the block{where} "
            "(indent every key of one mapping by the same number of spaces)"
        )
    if "mapping values are not allowed here" in problem:
        return (
            "unexpected ':' here: a value with ': ' in it needs quotes, "
            "or a key is indented too far"
        )
    if "could not find expected ':'" in problem:
        return "bad indentation or a missing ':' after a key"
    return ""


def kind(node: Any) -> str:
    """'mapping', 'sequence', 'null' or 'scalar'."""
    # both parsers' node classes have these names (and no subclasses are made of them)
    name = type(node).__name__
    if name == "MappingNode":
        return "mapping"
    if name == "SequenceNode":
        return "sequence"
    if is_null(node):
        return "null"
    return "scalar"


def is_null(node: Any) -> bool:
    """A plain `~`, `null` or empty value (a quoted "null" is a string)."""
    return getattr(node, "tag", None) == _NULL_TAG and not getattr(node, "style", None)


def mapping_items(node: Any, label: str, depth: int = 0) -> Iterator[tuple[str, Any, Any]]:
    """(key, key node, value node) of a mapping with `<<` merges applied: explicit keys win over
    merged ones, and earlier merge sources over later ones. Duplicate explicit keys are refused."""
    if depth > MAX_MERGE_DEPTH:
        raise error_at(label, node, "merges (<<) nested too deeply or in a cycle")
    explicit: dict[str, tuple[Any, Any]] = {}
    merged: dict[str, tuple[Any, Any]] = {}
    for key_node, value_node in node.value:
        if kind(key_node) != "scalar":
            raise error_at(label, key_node, "mapping keys must be plain text")
        key = str(key_node.value)
        if key_node.tag == _MERGE_TAG or key == "<<":
            sources = value_node.value if kind(value_node) == "sequence" else [value_node]
            for source in sources:
                if kind(source) != "mapping":
                    raise error_at(label, source, "<< merges need a mapping (or a list of them)")
                for mkey, mkey_node, mvalue in mapping_items(source, label, depth + 1):
                    merged.setdefault(mkey, (mkey_node, mvalue))
            continue
        if key in explicit:
            first = where(explicit[key][0])
            raise error_at(label, key_node, f'duplicate key "{key}" (first at line {first.line})')
        explicit[key] = (key_node, value_node)
    for key, (key_node, value_node) in {**merged, **explicit}.items():
        yield key, key_node, value_node
