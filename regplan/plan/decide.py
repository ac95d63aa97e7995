"""regsync's per-image copy-or-skip rules, as a pure function (docs/regsync-behaviour.md,
"Deciding whether an image needs syncing").

The planner HEADs the source and the target, hands what they said to `decide`, and does what
it answers: nothing is read or built here. With `platform` or `platforms` set and an index at
the source, the answer may be "read the index first" (`Verdict.RESOLVE_PLATFORM`); the planner
reads it, picks or filters the children, and asks again with what it found in `resolved`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from regplan.oci import mediatypes as mt
from regplan.plan.model import Reason


@dataclass(frozen=True)
class Head:
    """What a manifest HEAD said (or, for a resolved platform, the index entry)."""

    digest: str
    media_type: str
    size: int = 0


@dataclass(frozen=True)
class Rules:
    """The step's options that take part in the decision."""

    media_types: tuple[str, ...]
    fast_check: bool = False  # `fastCheck` / `fastCopy`
    force_recursive: bool = False
    referrers: bool = False
    digest_tags: bool = False
    platform: str = ""  # one platform: the best-matching child of an index is copied
    platforms: tuple[str, ...] = ()  # several: the index filtered to exactly these
    backup: bool = False  # a backup template is set
    immutable_tags: tuple[str, ...] = ()  # RE2 patterns of tags never overwritten
    missing: bool = False  # `--missing`: a tag the target has is left alone

    @property
    def deep(self) -> bool:
        """Whether a matching tag still needs its tree walked (attachments, forced copy)."""
        return self.force_recursive or self.referrers or self.digest_tags


@dataclass(frozen=True)
class Seen:
    """What the registries said about one tag to copy."""

    source: Head | None  # None: the source tag is not there
    target: Head | None  # None: the target tag is absent
    top: bool = True  # the step's own tag (not a digest tag found next to it)
    target_tag: str = ""  # for immutableTags
    resolved: Head | None = None  # the platform child, or the filtered index, once read
    # missing mode: the target's tag list has the tag (`target` is None: it was not asked)
    target_listed: bool = False


class Verdict(StrEnum):
    SOURCE_NOT_FOUND = "source-not-found"  # the source tag is gone: an error for the step's tag
    MATCHES = "matches"  # the target holds it: nothing to do
    MATCHES_PLATFORM = "matches-platform"  # the target holds the chosen platform's manifest
    TARGET_EXISTS = "target-exists"  # missing mode: the target has the tag, it is not compared
    UNSUPPORTED = "unsupported-media-type"  # not in mediaTypes: left alone
    REFUSED = "refused"  # schema1: an error
    RESOLVE_PLATFORM = "resolve-platform"  # read the source index and ask again
    IMMUTABLE = "immutable"  # an immutable tag that moved at the source: kept as it is
    COPY = "copy"  # plan the tag (satisfied when only its attachments or children need work)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    why: str = ""  # skips, refusals and immutable tags: the text plans and warnings show
    head: Head | None = None  # what the tag will point at (or keeps pointing at)
    reason: Reason | None = None  # COPY: create, update or refresh
    satisfied: bool = False  # COPY: the tag itself is in place
    read_body: bool = False  # COPY: the manifest must be read to plan its content
    referrers: bool = False  # COPY: plan the referrers of the tree
    digest_tags: bool = False  # COPY: plan the digest tags of the tree
    backup: bool = False  # COPY: back the old target up before overwriting it

    @property
    def skipped(self) -> bool:
        return self.verdict in (Verdict.TARGET_EXISTS, Verdict.UNSUPPORTED)


def decide(rules: Rules, seen: Seen) -> Decision:
    """What to do with one tag, and why: regsync's rules in regsync's order."""
    src, tgt = seen.source, seen.target
    if src is None:
        return Decision(Verdict.SOURCE_NOT_FOUND, why="source manifest not found")
    matches = tgt is not None and tgt.digest == src.digest
    if matches and (rules.fast_check or not rules.deep):
        return Decision(Verdict.MATCHES, head=src)
    if (tgt is not None or seen.target_listed) and rules.missing:
        return Decision(Verdict.TARGET_EXISTS, why="exists on target (missing mode)")
    if mt.base(src.media_type) not in rules.media_types:
        return Decision(Verdict.UNSUPPORTED, why=f"unsupported media type {src.media_type}")
    if mt.base(src.media_type) in mt.SCHEMA1_TYPES:
        return Decision(Verdict.REFUSED, why=schema1_refusal(src.media_type))
    head = src
    if (rules.platform or rules.platforms) and mt.is_index(src.media_type):
        if seen.resolved is None:
            return Decision(Verdict.RESOLVE_PLATFORM)
        head = seen.resolved
        matches = tgt is not None and tgt.digest == head.digest
        if matches and _platform_matches(rules):
            verdict = Verdict.MATCHES_PLATFORM if rules.platform else Verdict.MATCHES
            return Decision(verdict, head=head)
    if seen.top and tgt is not None and not matches:
        immutable = _immutable(rules, seen.target_tag, tgt, head)
        if immutable is not None:
            return immutable
    return _copy(rules, seen, head, matches=matches)


def _copy(rules: Rules, seen: Seen, head: Head, *, matches: bool) -> Decision:
    """The tag is planned: satisfied when it matches and only its tree needs a look."""
    tgt = seen.target
    satisfied = matches and not rules.force_recursive
    return Decision(
        Verdict.COPY,
        head=head,
        reason=Reason.REFRESH if matches else (Reason.UPDATE if tgt is not None else Reason.CREATE),
        satisfied=satisfied,
        read_body=not satisfied,
        referrers=rules.referrers and not (matches and rules.fast_check),
        digest_tags=rules.digest_tags,
        backup=seen.top and tgt is not None and not matches and rules.backup and not rules.missing,
    )


def _platform_matches(rules: Rules) -> bool:
    """Whether a target holding the chosen platform's manifest (or the filtered index) is
    left as it is."""
    if rules.platform:
        return not rules.force_recursive  # regsync: referrers and digest tags do not refresh here
    return rules.fast_check or not rules.deep


def _immutable(rules: Rules, tag: str, tgt: Head, head: Head) -> Decision | None:
    """An immutable tag whose source moved: kept, with the warning that says so."""
    pattern = first_pattern(rules.immutable_tags, tag) if rules.immutable_tags else None
    if pattern is None:
        return None
    why = (
        f'immutable tag (immutableTags "{pattern}"): not overwritten, '
        f"the source moved from {tgt.digest[:19]} to {head.digest[:19]}"
    )
    return Decision(Verdict.IMMUTABLE, why=why, head=tgt)


def schema1_refusal(media_type: str) -> str:
    """Docker schema1 manifests declare no blob sizes, and a blob is never streamed without
    one; schema1 is long deprecated and registries have stopped serving it."""
    return f"Docker schema1 manifests are not supported ({media_type})"


def first_pattern(patterns: Sequence[str], tag: str) -> str | None:
    """The first of `patterns` (regsync tag patterns, anchored) that `tag` matches."""
    from regplan.filters import compile_pattern

    for pattern in patterns:
        if compile_pattern(pattern, "immutableTags").search(tag) is not None:
            return pattern
    return None
