"""YAML text → a node tree with positions, via strictyaml's parser with anchors let through.

strictyaml refuses anchors and aliases; regsync configs use them (`x-` blocks merged with `<<:`).
`_AnchorLoader` is strictyaml's loader with only that refusal lifted: tags (`!!python/...`) are
still refused, flow lists are allowed. We stop at the composed node tree (nothing is
constructed), so every scalar keeps its original text (`3.10` stays "3.10") and every value keeps
the parser's mark: a value that comes through an alias is reported where its anchor defines it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from regplan.errors import ConfigError

MAX_MERGE_DEPTH = 32  # `<<` merges of merges; deeper (or cyclic) merges are refused

_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _loader_class(label: str) -> type:
    from strictyaml.parser import StrictYAMLLoader
    from strictyaml.ruamel.tokens import AnchorToken

    class _AnchorLoader(StrictYAMLLoader):  # type: ignore[misc]
        allow_flow_style = True

        def check_token(self, *choices: Any) -> bool:
            # strictyaml raises on AnchorToken here; let anchors through, refuse the rest as it does.
            while self.need_more_tokens():
                self.fetch_more_tokens()
            self._gather_comments()
            if (
                self.tokens
                and isinstance(self.tokens[0], AnchorToken)
                and any(isinstance(self.tokens[0], c) for c in choices)
            ):
                return True
            return bool(super().check_token(*choices))

    _AnchorLoader.label = label
    return _AnchorLoader


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
    from strictyaml.ruamel.nodes import MappingNode, SequenceNode

    if isinstance(node, MappingNode):
        return "mapping"
    if isinstance(node, SequenceNode):
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
