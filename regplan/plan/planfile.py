"""The plan file: JSON via orjson, versioned, integrity-checked, saved atomically.

File format `format_version` major.minor: readers refuse an unknown major version and ignore
unknown keys. `integrity` is the sha256 of the canonical body (sorted keys, no `integrity`).
A plan is data from outside: its integrity digest is no signature, so a crafted file can carry
a valid one; a wrong type must be a PlanFileError here, not an internal error in render or apply.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import orjson

from regplan import collector
from regplan.errors import PlanFileError
from regplan.frozen import filled
from regplan.plan.model import (
    DELETE,
    FORMAT_MAJORS,
    TAG_KINDS,
    Action,
    Kind,
    Plan,
    StepSummary,
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# What each field annotation accepts in the JSON file.
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "Kind": lambda v: isinstance(v, str),  # which kinds: checked apart, with its own message
    "int": _is_int,
    "str | None": lambda v: v is None or isinstance(v, str),
    "bytes | None": lambda v: v is None or isinstance(v, str),  # base64 text
    "tuple[int, ...]": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    "tuple[str, ...]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "tuple[dict[str, str], ...]": lambda v: (
        isinstance(v, list)
        and all(isinstance(x, dict) and all(isinstance(y, str) for y in x.values()) for x in v)
    ),
    "dict[str, Any] | None": lambda v: (
        v is None or (isinstance(v, dict) and all(_is_int(x) or x is None for x in v.values()))
    ),
}

Checks = tuple[tuple[str, Callable[[Any], bool]], ...]


def _checks(cls: type, order: tuple[str, ...] = ()) -> Checks:
    """Each field's check, worked out once per class rather than once per action: a plan of
    100,000 actions is loaded with 100,000 lookups of the same answers otherwise."""
    by_name = {f.name: _JSON_TYPES[str(f.type)] for f in fields(cls)}
    names = [*order, *(n for n in by_name if n not in order)]
    return tuple((n, by_name[n]) for n in names)


# Checked in the order the fields were once declared, so the first wrong field named is too.
_ACTION_CHECKS = _checks(
    Action,
    (
        "id",
        "kind",
        "reason",
        "target",
        "digest",
        "media_type",
        "size",
        "source",
        "steps",
        "group",
        "before",
        "source_tag",
        "source_digest",
        "mount_from",
        "subject",
        "artifact_type",
        "platform",
        "manifest",
        "depends_on",
        "bytes",
        "delete_by",
    ),
)
# The same checks by exact JSON type for the scalar fields (orjson makes only exact types):
# one dict lookup and one set test per key, the cost of loading a plan of 100,000 actions.
_SCALAR_TYPES: dict[str, frozenset[type]] = {
    "str": frozenset({str}),
    "Kind": frozenset({str}),
    "int": frozenset({int}),
    "str | None": frozenset({str, type(None)}),
    "bytes | None": frozenset({str, type(None)}),
}
_ACTION_SCALARS = {
    f.name: _SCALAR_TYPES[str(f.type)] for f in fields(Action) if str(f.type) in _SCALAR_TYPES
}
_ACTION_LISTS = {name: ok for name, ok in _ACTION_CHECKS if name not in _ACTION_SCALARS}
_STEP_CHECKS = _checks(StepSummary)
_STEP_FIELDS = frozenset(name for name, _ in _STEP_CHECKS)
# Action fields without a default: written even when empty, since decoding needs them back
_REQUIRED = frozenset(
    f.name
    for f in fields(Action)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)


def _check_types(cls: type, checks: Checks, values: dict[str, Any]) -> None:
    for name, ok in checks:
        if name in values and not ok(values[name]):
            raise ValueError(f"{cls.__name__} field {name!r} has the wrong type")


# -- actions and steps --------------------------------------------------------------------------
def action_to_json(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(action):
        value = getattr(action, f.name)
        if f.name == "manifest":
            if value is not None:
                out["manifest"] = base64.b64encode(value).decode()
        elif f.name in ("steps", "depends_on"):
            out[f.name] = list(value)
        elif f.name == "before":
            if action.kind in TAG_KINDS or action.kind == DELETE:
                out["before"] = value  # null means "absent", which matters
        elif value not in ("", 0) or f.name in ("size", "bytes") or f.name in _REQUIRED:
            out[f.name] = value
    return out


def action_from_json(data: dict[str, Any]) -> Action:
    values: dict[str, Any] = {}
    wrong = False
    for key, value in data.items():  # one pass over what is there, not over every field
        allowed = _ACTION_SCALARS.get(key)
        if allowed is not None:
            wrong = wrong or type(value) not in allowed
        elif key in _ACTION_LISTS:
            wrong = wrong or not _ACTION_LISTS[key](value)
        else:
            continue  # unknown keys are ignored
        values[key] = value
    if wrong:
        _check_types(Action, _ACTION_CHECKS, values)  # names the first wrong field, in order
    kind = values.get("kind")
    if kind not in _KINDS:
        # an action this regplan cannot perform: applying the rest would be a partial apply
        raise ValueError(f"action {values.get('id', '?')} has unknown kind {kind!r}")
    values["kind"] = _KINDS[kind]
    if values.get("manifest") is not None:
        values["manifest"] = base64.b64decode(values["manifest"], validate=True)
    values["steps"] = tuple(values.get("steps", ()))
    values["depends_on"] = tuple(values.get("depends_on", ()))
    if not values.keys() >= _ACTION_NEEDED:
        return Action(**values)  # raises, naming what is missing
    return _built(values)


def _built(values: dict[str, Any]) -> Action:
    """The action `values` describe, every field checked above (the frozen __init__ was half
    the time of a 100,000-action load)."""
    return filled(Action, {**_ACTION_DEFAULTS, **values})


_ACTION_DEFAULTS = {
    f.name: f.default for f in fields(Action) if f.default is not dataclasses.MISSING
}
_ACTION_NEEDED = frozenset(f.name for f in fields(Action)) - _ACTION_DEFAULTS.keys()
_KINDS = {k.value: k for k in Kind}


def step_to_json(step: StepSummary) -> dict[str, Any]:
    out = asdict(step)
    for key in ("skipped", "dropped", "pruning", "errors"):
        out[key] = list(getattr(step, key))
    return out


def step_from_json(data: dict[str, Any]) -> StepSummary:
    values = {k: v for k, v in data.items() if k in _STEP_FIELDS}
    _check_types(StepSummary, _STEP_CHECKS, values)
    for key in ("skipped", "dropped", "pruning", "errors"):
        values[key] = tuple(values.get(key, ()))
    return StepSummary(**values)


# -- the whole plan -----------------------------------------------------------------------------
def body_of(plan: Plan) -> dict[str, Any]:
    """The plan file's content, without its `integrity`."""
    config = {"path": plan.config_path, "digest": plan.config_digest}
    if plan.config_path_as_written:
        config["as_written"] = plan.config_path_as_written
    body: dict[str, Any] = {
        "format_version": plan.format_version,
        "regplan_version": plan.regplan_version,
        "created_at": plan.created_at,
        "config": config,
        "mode": plan.mode,
        "has_changes": plan.has_changes,
        "summary": asdict(plan.summary),
        "warnings": list(plan.warnings),
        "steps": [step_to_json(s) for s in plan.steps],
        "actions": [action_to_json(a) for a in plan.actions],
    }
    if plan.selected_steps is not None:  # absent unless --step: plans without it unchanged
        body["selected_steps"] = list(plan.selected_steps)
    return body


def encode(plan: Plan) -> bytes:
    body = body_of(plan)
    body["integrity"] = integrity_of(body)
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def decode(data: bytes, *, name: str = "plan") -> Plan:
    # millions of new objects and no cycles: collection passes were a third of the load of a
    # 100,000-action plan
    with collector.paused():
        return _decode(data, name)


def _decode(data: bytes, name: str) -> Plan:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise PlanFileError(f"{name}: not a plan file (invalid JSON: {e})") from None
    if not isinstance(body, dict):
        raise PlanFileError(f"{name}: not a plan file")
    version = body.get("format_version")
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        raise PlanFileError(f"{name}: not a plan file (no format_version)")
    major = int(version.split(".")[0])
    if major not in FORMAT_MAJORS:
        reads = " and ".join(f"{m}.x" for m in FORMAT_MAJORS)
        raise PlanFileError(
            f"{name}: plan format {version} is not supported by this regplan (reads {reads})"
        )
    recorded = body.pop("integrity", None)
    if recorded != integrity_of(body):
        raise PlanFileError(
            f"{name}: integrity check failed: the plan file was modified or is corrupt"
        )
    try:
        plan = _plan_of(body, version)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        # AttributeError: a list or object where the other was expected (e.g. actions: {})
        raise PlanFileError(f"{name}: malformed plan file ({type(e).__name__}: {e})") from None
    problem = graph_problem(plan.actions)
    if problem:
        raise PlanFileError(f"{name}: {problem}; nothing was applied")
    return plan


def _plan_of(body: dict[str, Any], version: str) -> Plan:
    config = body["config"]
    return Plan(
        created_at=str(body["created_at"]),
        config_path=str(config["path"]),
        config_digest=str(config["digest"]),
        mode=str(body["mode"]),
        steps=tuple(step_from_json(s) for s in body["steps"]),
        actions=tuple(action_from_json(a) for a in body["actions"]),
        regplan_version=str(body.get("regplan_version", "")),
        format_version=version,
        warnings=_warnings(body.get("warnings", [])),
        config_path_as_written=str(config.get("as_written", "")),
        selected_steps=_selected(body.get("selected_steps")),
    )


def _warnings(value: Any) -> tuple[str, ...]:
    if not _JSON_TYPES["tuple[str, ...]"](value):
        raise ValueError("warnings must be a list of strings")
    return tuple(value)


def _selected(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(_is_int(v) and v >= 0 for v in value):
        raise ValueError("selected_steps must be a list of step indexes")
    return tuple(value)


def graph_problem(actions: tuple[Action, ...]) -> str:
    """What makes the actions' dependency graph unusable ('' when nothing does): a repeated
    id (two actions, one result: a tag could be pushed before half its content), a dependency
    on an action that is not there, a cycle, or a dependency listed after its dependent (plan
    order is dependency order; the applier relies on it)."""
    position: dict[str, int] = {}
    for i, action in enumerate(actions):
        if action.id in position:
            return f"action id {action.id} appears twice (actions {position[action.id] + 1} and {i + 1})"
        position[action.id] = i
    backwards = False
    for i, action in enumerate(actions):
        for dep in action.depends_on:
            at = position.get(dep)
            if at is None:
                return f"plan action {action.id} depends on unknown action {dep}"
            backwards = backwards or at >= i
    if not backwards:
        return ""  # every dependency comes first: no cycle is possible, so none is searched for
    cycle = _cycle(actions)
    if cycle:
        return "dependency cycle: " + " -> ".join(cycle)
    for action in actions:
        for dep in action.depends_on:
            if position[dep] >= position[action.id]:
                return f"plan action {action.id} depends on {dep}, which comes after it"
    return ""


def _cycle(actions: tuple[Action, ...]) -> list[str]:
    """One dependency cycle as a path of ids (first id repeated at the end), or []."""
    deps = {a.id: a.depends_on for a in actions}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in deps:
        if start in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:  # iterative: a long chain must not hit the recursion limit
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            if i < len(deps[node]):
                stack.append((node, i + 1))
                nxt = deps[node][i]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if nxt not in state:
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return []


def integrity_of(body: dict[str, Any]) -> str:
    canonical = orjson.dumps(
        {k: v for k, v in body.items() if k != "integrity"}, option=orjson.OPT_SORT_KEYS
    )
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


# -- files --------------------------------------------------------------------------------------
def save_plan(plan: Plan, path: Path) -> None:
    write_plan_bytes(encode(plan), path)


def write_plan_bytes(data: bytes, path: Path) -> None:
    """Write atomically, so a killed `plan -o` never leaves half a plan behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def read_plan_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise PlanFileError(f"{path}: cannot read plan file: {e.strerror}") from None


def load_plan(path: Path) -> Plan:
    return decode(read_plan_bytes(path), name=str(path))
