"""The plan as data: what `plan` decided and `apply` executes (its file format is planfile.py).

A plan is an ordered list of actions, each pinning what lands by digest and recording what the
target held before. Nothing in it is a secret.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from regplan.frozen import filled

FORMAT_VERSION = "1.1"  # 1.1: summary.deletes, steps[].pruning, actions[].delete_by
# A new action kind is a major version (docs/plan-format.md): a plan with deletes is 2.0, so a
# regplan that cannot delete refuses it up front; a plan without stays 1.x for older readers.
DELETE_FORMAT_VERSION = "2.0"
FORMAT_MAJORS = (1, 2)


class Kind(StrEnum):
    """Action kinds, in the words the rendered plan and the plan file use."""

    BLOB = "blob"
    MANIFEST = "manifest"  # a manifest present by digest (index child, referrer's content)
    TAG = "tag"
    DIGEST_TAG = "digest-tag"
    REFERRER = "referrer"  # a referrer manifest pushed for its subject (fallback tag kept current)
    BACKUP = "backup"
    DELETE = "delete"  # a target tag removed (`prune`); `before` is the digest it pointed at


class Reason(StrEnum):
    """Why an action is in the plan."""

    CREATE = "create"  # the tag is absent on the target
    UPDATE = "update"  # the tag points elsewhere: an overwrite
    REFRESH = "refresh"  # the tag matches; referrers / digest tags / forced recursion need work
    CONTENT_LACKING = "missing"  # content the target lacks (blobs, child manifests, referrers)
    PRUNE = "prune"  # the tag is no longer in the step's filtered source set


class Mode(StrEnum):
    """What a plan compared: everything, only tags absent on the target, or decisions only."""

    FULL = "full"
    ABSENT_TAGS_ONLY = "missing"  # `--missing`: tags the target has are not compared
    CHECK = "check"  # `check`: decisions only, no actions


class DeleteBy(StrEnum):
    """How a delete removes its tag (`delete_by`)."""

    TAG = "tag"  # DELETE of the tag itself (OCI distribution spec, OCI Layouts)
    DIGEST = "digest"  # DELETE of the manifest by digest: removes every tag on it


# The names most callers use (apply, render, tests): the enum members under their old names.
BLOB, MANIFEST, TAG = Kind.BLOB, Kind.MANIFEST, Kind.TAG
DIGEST_TAG, REFERRER, BACKUP, DELETE = Kind.DIGEST_TAG, Kind.REFERRER, Kind.BACKUP, Kind.DELETE
TAG_KINDS = frozenset({TAG, DIGEST_TAG, BACKUP})  # actions that move a tag: checked for staleness
KINDS = (BLOB, MANIFEST, REFERRER, DIGEST_TAG, BACKUP, TAG, DELETE)  # content first, tags last
CREATE, UPDATE, REFRESH, PRUNE = Reason.CREATE, Reason.UPDATE, Reason.REFRESH, Reason.PRUNE
BY_TAG, BY_DIGEST = DeleteBy.TAG, DeleteBy.DIGEST


@dataclass(frozen=True, kw_only=True)
class Change:
    """What one action makes true on a target: the fields the planner's graph nodes and the
    plan's actions share (a new one is added here once). `target` is `repo:tag` for tag kinds
    and `repo@digest` otherwise."""

    kind: Kind
    reason: str
    target: str
    digest: str
    media_type: str
    size: int
    source: str  # where the content is read from, pinned: `repo@digest`
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
    bytes: int = 0  # blob bytes this action moves
    delete_by: str = ""  # deletes: DeleteBy.TAG or DeleteBy.DIGEST


CHANGE_FIELDS = tuple(f.name for f in dataclasses.fields(Change))


@dataclass(frozen=True, kw_only=True)
class Action(Change):
    """One change to a target, with its place in the plan."""

    id: str
    steps: tuple[int, ...]
    depends_on: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, change: Change, *, id: str, steps: tuple[int, ...], depends_on: tuple[str, ...]
    ) -> Action:
        # A plan has one Action per node: the frozen __init__ (22 fields) was most of turning
        # the graph into a plan. The Change's fields are checked already.
        return filled(cls, {**change.__dict__, "id": id, "steps": steps, "depends_on": depends_on})


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
    mode: str  # a Mode
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

    def without_time(self) -> Plan:
        """The same plan with the creation time blanked: what determinism is compared on."""
        return replace(self, created_at="")


def format_version_for(actions: tuple[Action, ...]) -> str:
    """The lowest format that can carry `actions`."""
    return DELETE_FORMAT_VERSION if any(a.kind == DELETE for a in actions) else FORMAT_VERSION
