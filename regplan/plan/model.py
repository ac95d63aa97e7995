"""The plan as data, and its file format (JSON via orjson, versioned, integrity-checked).

A plan is what `plan` decided and `apply` executes: an ordered list of actions, each pinning
what lands by digest and recording what the target held before. Nothing in it is a secret.

File format `format_version` major.minor: readers refuse an unknown major version and ignore
unknown keys. `integrity` is the sha256 of the canonical body (sorted keys, no `integrity`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import orjson

from regplan.errors import PlanFileError

FORMAT_VERSION = "1.1"  # 1.1: summary.deletes, steps[].pruning, actions[].delete_by
# A new action kind is a major version (docs/plan-format.md): a plan with deletes is 2.0, so a
# regplan that cannot delete refuses it up front; a plan without stays 1.x for older readers.
DELETE_FORMAT_VERSION = "2.0"
FORMAT_MAJORS = (1, 2)

# Action kinds, in the words the rendered plan uses.
BLOB = "blob"
MANIFEST = "manifest"  # a manifest present by digest (index child, referrer's content)
TAG = "tag"
DIGEST_TAG = "digest-tag"
REFERRER = "referrer"  # a referrer manifest pushed for its subject (fallback tag kept current)
BACKUP = "backup"
DELETE = "delete"  # a target tag removed (`prune`); `before` is the digest it pointed at
TAG_KINDS = frozenset({TAG, DIGEST_TAG, BACKUP})  # actions that move a tag: checked for staleness
KINDS = (BLOB, MANIFEST, REFERRER, DIGEST_TAG, BACKUP, TAG, DELETE)

# Reasons.
CREATE = "create"  # the tag is absent on the target
UPDATE = "update"  # the tag points elsewhere: an overwrite
REFRESH = "refresh"  # the tag matches; referrers / digest tags / forced recursion need work
MISSING = "missing"  # content the target lacks (blobs, child manifests, referrers)
PRUNE = "prune"  # the tag is no longer in the step's filtered source set

# How a delete removes its tag (`delete_by`).
BY_TAG = "tag"  # DELETE of the tag itself (OCI distribution spec, OCI Layouts)
BY_DIGEST = "digest"  # DELETE of the manifest by digest: removes every tag on it


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# What each field annotation accepts in the JSON file. A plan is data from outside: its
# integrity digest is no signature, so a crafted file can carry a valid one; a wrong type must
# be a PlanFileError here, not an internal error in render or apply.
_JSON_TYPES: dict[str, Any] = {
    "str": lambda v: isinstance(v, str),
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


def _check_types(cls: type, values: dict[str, Any]) -> None:
    for f in fields(cls):
        if f.name in values and not _JSON_TYPES[str(f.type)](values[f.name]):
            raise ValueError(f"{cls.__name__} field {f.name!r} has the wrong type")


@dataclass(frozen=True)
class Action:
    """One change to a target. `target` is `repo:tag` for tag kinds and `repo@digest` otherwise."""

    id: str
    kind: str
    reason: str
    target: str
    digest: str
    media_type: str
    size: int
    source: str  # where the content is read from, pinned: `repo@digest`
    steps: tuple[int, ...]
    group: str  # the image this action serves (id of its top-level action)
    before: str | None = None  # tag kinds: digest the tag held when planned (None = absent)
    source_tag: str = ""  # for people: which source tag was resolved to `digest`
    # tags: the digest `source_tag` pointed at when planned (apply warns when it moved). Not
    # always `digest`: a `platform` step pins one child of the index the tag points at.
    source_digest: str = ""
    mount_from: str = ""  # blobs: a repository on the same registry holding the blob
    subject: str = ""  # referrers: the digest they refer to
    artifact_type: str = ""
    platform: str = ""  # for people: the platform of an index child
    manifest: bytes | None = field(default=None, repr=False)  # manifest bytes, pinned by `digest`
    depends_on: tuple[str, ...] = ()
    bytes: int = 0  # blob bytes this action moves
    delete_by: str = ""  # deletes: BY_TAG or BY_DIGEST

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "manifest":
                if value is not None:
                    out["manifest"] = base64.b64encode(value).decode()
            elif f.name in ("steps", "depends_on"):
                out[f.name] = list(value)
            elif f.name == "before":
                if self.kind in TAG_KINDS or self.kind == DELETE:
                    out["before"] = value  # null means "absent", which matters
            elif value not in ("", 0) or f.name in ("size", "bytes") or f.name in _REQUIRED:
                # required fields are written even when empty: from_json needs them back
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        _check_types(cls, values)
        if values.get("kind") not in KINDS:
            # an action this regplan cannot perform: applying the rest would be a partial apply
            raise ValueError(
                f"action {values.get('id', '?')} has unknown kind {values.get('kind')!r}"
            )
        if "manifest" in values and values["manifest"] is not None:
            values["manifest"] = base64.b64decode(values["manifest"], validate=True)
        values["steps"] = tuple(values.get("steps", ()))
        values["depends_on"] = tuple(values.get("depends_on", ()))
        return cls(**values)


_REQUIRED = frozenset(  # Action fields without a default (MISSING here is a reason)
    f.name
    for f in fields(Action)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)


@dataclass(frozen=True)
class StepSummary:
    """What planning found for one sync step."""

    index: int
    name: str
    type: str
    source: str
    target: str
    images: int = 0  # tags/images considered after filters
    up_to_date: int = 0
    to_sync: int = 0
    skipped: tuple[
        dict[str, str], ...
    ] = ()  # {"ref":..., "why":...}: media type, exists (missing mode)
    dropped: tuple[dict[str, str], ...] = ()  # --explain: {"tag":..., "why":...}
    # prune steps, --explain: {"tag":..., "decision": "keep"|"delete"|"refused", "why":...}
    pruning: tuple[dict[str, str], ...] = ()
    rate_limit: dict[str, Any] | None = None  # lowest RateLimit-Remaining the source reported
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["skipped"] = list(self.skipped)
        out["dropped"] = list(self.dropped)
        out["pruning"] = list(self.pruning)
        out["errors"] = list(self.errors)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepSummary:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        _check_types(cls, values)
        for key in ("skipped", "dropped", "pruning", "errors"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)


@dataclass(frozen=True)
class Summary:
    images: int = 0  # top-level tags written (tags, digest tags, backups)
    tags_create: int = 0
    tags_update: int = 0
    tags_refresh: int = 0
    digest_tags: int = 0
    backups: int = 0
    deletes: int = 0
    referrers: int = 0
    manifests: int = 0  # every manifest pushed (tags and children and referrers)
    blobs: int = 0
    bytes: int = 0
    up_to_date: int = 0
    errors: int = 0

    @classmethod
    def of(cls, actions: list[Action], steps: list[StepSummary]) -> Summary:
        tags = [a for a in actions if a.kind == TAG]
        return cls(
            images=sum(1 for a in actions if a.kind in TAG_KINDS),
            tags_create=sum(1 for a in tags if a.reason == CREATE),
            tags_update=sum(1 for a in tags if a.reason == UPDATE),
            tags_refresh=sum(1 for a in tags if a.reason == REFRESH),
            digest_tags=sum(1 for a in actions if a.kind == DIGEST_TAG),
            backups=sum(1 for a in actions if a.kind == BACKUP),
            deletes=sum(1 for a in actions if a.kind == DELETE),
            referrers=sum(1 for a in actions if a.kind == REFERRER),
            manifests=sum(1 for a in actions if a.kind not in (BLOB, DELETE)),
            blobs=sum(1 for a in actions if a.kind == BLOB),
            bytes=sum(a.bytes for a in actions),
            up_to_date=sum(s.up_to_date for s in steps),
            errors=sum(len(s.errors) for s in steps),
        )


@dataclass(frozen=True)
class Plan:
    created_at: str  # RFC 3339 UTC
    config_path: str
    config_digest: str
    mode: str  # "full" | "missing"
    steps: tuple[StepSummary, ...]
    actions: tuple[Action, ...]
    regplan_version: str = ""
    format_version: str = FORMAT_VERSION
    warnings: tuple[str, ...] = ()
    # the config path as given to `plan` (`config_path` is absolute since format 1.1)
    config_path_as_written: str = ""

    selected_steps: tuple[int, ...] | None = None  # `--step`: only these steps were planned

    @property
    def summary(self) -> Summary:
        return Summary.of(list(self.actions), list(self.steps))

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    @property
    def errors(self) -> list[str]:
        return [e for s in self.steps for e in s.errors]

    def action(self, action_id: str) -> Action:
        for a in self.actions:
            if a.id == action_id:
                return a
        raise KeyError(action_id)

    # -- serialisation ------------------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format_version": self.format_version,
            "regplan_version": self.regplan_version,
            "created_at": self.created_at,
            "config": self._config_json(),
            "mode": self.mode,
            "has_changes": self.has_changes,
            "summary": asdict(self.summary),
            "warnings": list(self.warnings),
            "steps": [s.to_json() for s in self.steps],
            "actions": [a.to_json() for a in self.actions],
        }
        if self.selected_steps is not None:  # absent unless --step: plans without it unchanged
            body["selected_steps"] = list(self.selected_steps)
        return body

    def _config_json(self) -> dict[str, str]:
        out = {"path": self.config_path, "digest": self.config_digest}
        if self.config_path_as_written:
            out["as_written"] = self.config_path_as_written
        return out

    def to_bytes(self) -> bytes:
        body = self.body()
        body["integrity"] = integrity_of(body)
        return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "plan") -> Plan:
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
            config = body["config"]
            plan = cls(
                created_at=str(body["created_at"]),
                config_path=str(config["path"]),
                config_digest=str(config["digest"]),
                mode=str(body["mode"]),
                steps=tuple(StepSummary.from_json(s) for s in body["steps"]),
                actions=tuple(Action.from_json(a) for a in body["actions"]),
                regplan_version=str(body.get("regplan_version", "")),
                format_version=version,
                warnings=tuple(body.get("warnings", ())),
                config_path_as_written=str(config.get("as_written", "")),
                selected_steps=_selected(body.get("selected_steps")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            # AttributeError: a list or object where the other was expected (e.g. actions: {})
            raise PlanFileError(f"{name}: malformed plan file ({type(e).__name__}: {e})") from None
        problem = graph_problem(plan.actions)
        if problem:
            raise PlanFileError(f"{name}: {problem}; nothing was applied")
        return plan

    def without_time(self) -> Plan:
        """The same plan with the creation time blanked: what determinism is compared on."""
        return replace(self, created_at="")


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
    for action in actions:
        for dep in action.depends_on:
            if dep not in position:
                return f"plan action {action.id} depends on unknown action {dep}"
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


def _selected(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(_is_int(v) and v >= 0 for v in value):
        raise ValueError("selected_steps must be a list of step indexes")
    return tuple(value)


def format_version_for(actions: tuple[Action, ...]) -> str:
    """The lowest format that can carry `actions`."""
    return DELETE_FORMAT_VERSION if any(a.kind == DELETE for a in actions) else FORMAT_VERSION


def integrity_of(body: dict[str, Any]) -> str:
    canonical = orjson.dumps(
        {k: v for k, v in body.items() if k != "integrity"}, option=orjson.OPT_SORT_KEYS
    )
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def save_plan(plan: Plan, path: Path) -> None:
    write_plan_bytes(plan.to_bytes(), path)


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
    return Plan.from_bytes(read_plan_bytes(path), name=str(path))
