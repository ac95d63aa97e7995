"""The typed schema of a regsync config file, and the reader that checks a node tree against it.

Each mapping in the file has a table of its keys and their types. The reader turns the composed
YAML nodes into `Section`s of typed Python values, each with the node it came from so later
checks can name the file, line and column. Unknown keys are errors with a "did you mean" hint,
except `x-` keys (user extensions) which are skipped wherever they appear.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from regplan.config.yamlsource import error_at, is_null, kind, mapping_items
from regplan.durations import DurationError, parse_duration_ns

# -- types -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    """A leaf value: str, int, uint, float, bool, duration (→ int nanoseconds), bytes (→ int)."""

    type: str


@dataclass(frozen=True)
class StrList:
    pass


@dataclass(frozen=True)
class StrMap:
    pass


@dataclass(frozen=True)
class Obj:
    keys: dict[str, Any]
    name: str  # for messages: "tags", "ratelimit"


@dataclass(frozen=True)
class ObjList:
    item: Obj


@dataclass(frozen=True)
class Ignored:
    """Accepted for compatibility and not used; the loader warns."""

    why: str


STR = Scalar("str")
INT = Scalar("int")
UINT = Scalar("uint")
FLOAT = Scalar("float")
BOOL = Scalar("bool")
DURATION = Scalar("duration")
BYTES = Scalar("bytes")

HOOKS = Ignored("hooks are parsed but never run (regsync does not run them either)")
RATELIMIT = Obj({"min": INT, "retry": DURATION}, "ratelimit")
TAGS = Obj({"allow": StrList(), "deny": StrList(), "semverRange": StrList(), "latest": INT}, "tags")
REPOS = Obj({"allow": StrList(), "deny": StrList()}, "repos")
REFERRER_FILTER = Obj({"artifactType": STR, "annotations": StrMap()}, "referrerFilters entry")

# Keys shared by `defaults` and each `sync` entry (what defaults can set for every step).
_STEP_DEFAULTS: dict[str, Any] = {
    "backup": STR,
    "interval": DURATION,
    "schedule": STR,
    "ratelimit": RATELIMIT,
    "digestTags": BOOL,
    "referrers": BOOL,
    "referrerFilters": ObjList(REFERRER_FILTER),
    "referrerSource": STR,
    "referrerTarget": STR,
    "referrerSlow": BOOL,
    "fastCheck": BOOL,
    "fastCopy": BOOL,  # the documented name; regsync's code reads fastCheck
    "forceRecursive": BOOL,
    "includeExternal": BOOL,
    "mediaTypes": StrList(),
    "hooks": HOOKS,
    # regplan extensions (lifecycle)
    "prune": BOOL,
    "pruneProtect": StrList(),
    "pruneMax": INT,
    "minTags": INT,
    "immutableTags": StrList(),
}

DEFAULTS = Obj(
    {
        **_STEP_DEFAULTS,
        "parallel": INT,
        "blobLimit": BYTES,
        "cacheCount": INT,
        "cacheTime": DURATION,
        "skipDockerConfig": BOOL,
        "userAgent": STR,
    },
    "defaults",
)

SYNC = Obj(
    {
        **_STEP_DEFAULTS,
        "source": STR,
        "target": STR,
        "type": STR,
        "tags": TAGS,
        "tagSets": ObjList(TAGS),
        "repos": REPOS,
        "platform": STR,
        "platforms": StrList(),
    },
    "sync entry",
)

CREDS = Obj(
    {
        "registry": STR,
        "hostname": STR,
        "user": STR,
        "pass": STR,
        "token": STR,
        "credHelper": STR,
        "credExpire": DURATION,
        "credHost": STR,
        "tls": STR,
        "regcert": STR,
        "clientCert": STR,
        "clientKey": STR,
        "pathPrefix": STR,
        "mirrors": StrList(),
        "priority": UINT,
        "repoAuth": BOOL,
        "apiOpts": StrMap(),
        "blobChunk": BYTES,
        "blobMax": BYTES,
        "reqPerSec": FLOAT,
        "reqConcurrent": INT,
        "scheme": Ignored("Scheme is deprecated, for http set TLS to disabled"),
        "api": Ignored("api is deprecated and ignored"),
    },
    "creds entry",
)

ROOT = Obj(
    {"version": INT, "creds": ObjList(CREDS), "defaults": DEFAULTS, "sync": ObjList(SYNC)},
    "top level",
)


# -- values ----------------------------------------------------------------------------------


@dataclass
class Section:
    """One mapping's typed values, with the nodes they came from."""

    path: str  # "sync[1]", "defaults.ratelimit", "" for the top level
    node: Any  # the mapping node (None when the section is absent)
    values: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, Any] = field(default_factory=dict)  # key → value node
    ignored: dict[str, str] = field(default_factory=dict)  # key → why (for warnings)

    def has(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def node_of(self, key: str) -> Any:
        return self.nodes.get(key, self.node)

    def sub(self, key: str) -> Section:
        value = self.values.get(key)
        return value if isinstance(value, Section) else Section(f"{self.path}.{key}", None)


def _hint(key: str, known: list[str]) -> str:
    lower = {k.lower(): k for k in known}
    if key.lower() in lower:
        return f' (did you mean "{lower[key.lower()]}"?)'
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)|0[xX][0-9a-fA-F_]+|0[oO][0-7_]+")
_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})


class Reader:
    def __init__(self, label: str) -> None:
        self.label = label

    def fail(self, node: Any, message: str) -> Exception:
        return error_at(self.label, node, message)

    def section(self, node: Any, schema: Obj, path: str) -> Section:
        where_text = path or "the top level"
        if kind(node) != "mapping":
            raise self.fail(node, f"{where_text}: expected a mapping, found {_found(node)}")
        out = Section(path, node)
        known = list(schema.keys)
        for key, key_node, value_node in mapping_items(node, self.label):
            if key.startswith("x-"):
                continue  # user extension: never parsed
            spec = schema.keys.get(key)
            if spec is None:
                raise self.fail(key_node, f'unknown key "{key}" in {where_text}{_hint(key, known)}')
            child_path = f"{path}.{key}" if path else key
            if is_null(value_node):
                continue  # `key:` with no value is the same as leaving it out (Go zero value)
            out.nodes[key] = value_node
            out.values[key] = self.value(value_node, spec, child_path)
            if isinstance(spec, Ignored):
                out.ignored[key] = spec.why
        return out

    def value(self, node: Any, spec: Any, path: str) -> Any:
        if isinstance(spec, Scalar):
            return self.scalar(node, spec, path)
        if isinstance(spec, StrList):
            if kind(node) != "sequence":
                raise self.fail(node, f"{path}: expected a list of strings, found {_found(node)}")
            items: list[str] = []
            for item in node.value:
                if kind(item) == "null":
                    items.append("")
                elif kind(item) != "scalar":
                    raise self.fail(item, f"{path}: expected a string, found {_found(item)}")
                else:
                    items.append(str(item.value))
            return items
        if isinstance(spec, StrMap):
            if kind(node) != "mapping":
                raise self.fail(
                    node, f"{path}: expected a mapping of strings, found {_found(node)}"
                )
            pairs: dict[str, str] = {}
            for key, _, value_node in mapping_items(node, self.label):
                if kind(value_node) == "null":
                    pairs[key] = ""
                elif kind(value_node) != "scalar":
                    raise self.fail(
                        value_node, f"{path}.{key}: expected a string, found {_found(value_node)}"
                    )
                else:
                    pairs[key] = str(value_node.value)
            return pairs
        if isinstance(spec, Obj):
            return self.section(node, spec, path)
        if isinstance(spec, ObjList):
            if kind(node) != "sequence":
                raise self.fail(node, f"{path}: expected a list, found {_found(node)}")
            return [
                self.section(item, spec.item, f"{path}[{i}]") for i, item in enumerate(node.value)
            ]
        if isinstance(spec, Ignored):
            return node
        raise AssertionError(spec)

    def scalar(self, node: Any, spec: Scalar, path: str) -> Any:
        if kind(node) != "scalar":
            raise self.fail(node, f"{path}: expected {_expected(spec)}, found {_found(node)}")
        text = str(node.value)
        t = spec.type
        if t == "str":
            return text
        if t in ("int", "uint", "bytes"):
            plain = text.strip()
            if not _INT_RE.fullmatch(plain) or plain.endswith("_"):
                raise self.fail(node, f'{path}: expected {_expected(spec)}, found "{text}"')
            value = (
                int(plain.replace("_", ""), 0)
                if plain[:2].lower() in ("0x", "0o")
                else int(plain.replace("_", ""))
            )
            if t == "uint" and value < 0:
                raise self.fail(node, f"{path}: must not be negative, found {value}")
            if t == "bytes" and value < -1:
                raise self.fail(node, f"{path}: expected a size in bytes (or -1), found {value}")
            if abs(value) >= 1 << 63:
                raise self.fail(node, f"{path}: {value} is out of range")
            return value
        if t == "float":
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise self.fail(node, f'{path}: expected a number, found "{text}"')
            return number
        if t == "bool":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise self.fail(node, f'{path}: expected true or false, found "{text}"')
        if t == "duration":
            try:
                return parse_duration_ns(text.strip())
            except DurationError as e:
                hint = ""
                if text.strip().lstrip("+-").isdigit() and text.strip() not in ("0", "-0", "+0"):
                    hint = f' (did you mean "{text.strip()}s"?)'
                raise self.fail(
                    node, f"{path}: {e}{hint}; use Go duration text like 1h15m or 30s"
                ) from None
        raise AssertionError(t)


def _expected(spec: Scalar) -> str:
    return {
        "str": "a string",
        "int": "an integer",
        "uint": "a non-negative integer",
        "float": "a number",
        "bool": "true or false",
        "duration": "a duration",
        "bytes": "a size in bytes",
    }[spec.type]


def _found(node: Any) -> str:
    k = kind(node)
    if k == "scalar":
        return f'"{node.value}"'
    return {"mapping": "a mapping", "sequence": "a list", "null": "nothing"}[k]
