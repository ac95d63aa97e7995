"""Which target tags a `prune` step deletes, and which rule decided each one. Pure: no I/O.

A target tag is deleted only when no rule keeps it. In order:
1. the step copies it (its filtered source set, `latest` applied, contains it);
2. it matches a `pruneProtect` pattern;
3. it is one of the step's own backup tags;
4. it is a digest tag (`sha256-<hex>`, `.sig`, `.att`, `.sbom`, a referrers fallback tag) whose
   subject is kept, or whose subject no tag here points at (it may be a child of a kept index);
otherwise it is not in the source set any more and becomes a delete. Where the registry can only
delete by digest, deleting a tag removes every tag on that digest: such a delete is refused when
a kept tag shares the digest. More deletes than `pruneMax` fail the step.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from regplan.filters import compile_pattern
from regplan.registry.api import DeleteMode


class Decision(enum.Enum):
    KEEP = "keep"
    DELETE = "delete"
    REFUSED = "refused"  # would be deleted, but the registry cannot remove only this tag


@dataclass(frozen=True)
class TagDecision:
    tag: str
    decision: Decision
    why: str
    digest: str | None = None  # what the tag points at on the target (None: unknown / gone)


@dataclass(frozen=True)
class PruneRules:
    protect: tuple[str, ...] = ()
    prune_max: int = 100


@dataclass(frozen=True)
class PruneResult:
    decisions: tuple[TagDecision, ...]
    error: str = ""  # the cap tripped: nothing of this repository is deleted

    @property
    def deletes(self) -> tuple[TagDecision, ...]:
        return tuple(d for d in self.decisions if d.decision is Decision.DELETE)


_DIGEST_TAG = re.compile(r"^(sha256)-([0-9a-f]{64})(?:\.[A-Za-z0-9_.-]+)?$")


def digest_tag_subject(tag: str) -> str | None:
    """`sha256:<hex>` for a digest tag or referrers fallback tag, else None."""
    m = _DIGEST_TAG.match(tag)
    return f"{m.group(1)}:{m.group(2)}" if m else None


def _protected_by(tag: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if compile_pattern(pattern, "pruneProtect").search(tag) is not None:
            return pattern
    return None


def decide(
    target_tags: Mapping[str, str | None],
    copied: frozenset[str],
    backups: frozenset[str],
    rules: PruneRules,
    mode: DeleteMode,
    planned: Mapping[str, str] | None = None,
) -> PruneResult:
    """Decide every tag of one target repository. `target_tags` maps each tag to the digest it
    points at (None when its HEAD found nothing: it is gone already and needs no delete);
    `planned` maps the tags this plan writes to the digest they will point at."""
    decided: dict[str, TagDecision] = {}
    digest_tags: list[str] = []
    for tag in sorted(target_tags):
        digest = target_tags[tag]
        if tag in copied:
            decided[tag] = TagDecision(tag, Decision.KEEP, "in the source set", digest)
        elif (pattern := _protected_by(tag, rules.protect)) is not None:
            decided[tag] = TagDecision(tag, Decision.KEEP, f'pruneProtect "{pattern}"', digest)
        elif tag in backups:
            decided[tag] = TagDecision(tag, Decision.KEEP, "a backup tag of this step", digest)
        elif digest is None:
            decided[tag] = TagDecision(tag, Decision.KEEP, "no longer on the target", digest)
        elif digest_tag_subject(tag) is not None:
            digest_tags.append(tag)
        else:
            decided[tag] = TagDecision(
                tag, Decision.DELETE, "not in the step's filtered source set", digest
            )
    kept_digests = {d.digest for d in decided.values() if d.decision is Decision.KEEP}
    pruned_digests = {d.digest for d in decided.values() if d.decision is Decision.DELETE}
    for tag in digest_tags:
        subject, digest = digest_tag_subject(tag), target_tags[tag]
        if subject in kept_digests:
            decided[tag] = TagDecision(tag, Decision.KEEP, "digest tag of a kept image", digest)
        elif subject not in pruned_digests:
            decided[tag] = TagDecision(
                tag, Decision.KEEP, "digest tag of an image no tag here names", digest
            )
        else:
            decided[tag] = TagDecision(tag, Decision.DELETE, "digest tag of a pruned image", digest)
    if mode is DeleteMode.DIGEST:
        # a kept tag's digest now and after this plan's writes: deleting either removes it
        kept_by_digest: dict[str | None, str] = {}
        for d in sorted(decided.values(), key=lambda d: d.tag):
            if d.decision is Decision.KEEP and d.digest is not None:
                kept_by_digest.setdefault(d.digest, d.tag)
        for tag, digest in sorted((planned or {}).items()):
            kept_by_digest.setdefault(digest, tag)
        for tag, d in list(decided.items()):
            if d.decision is Decision.DELETE and d.digest in kept_by_digest:
                decided[tag] = TagDecision(
                    tag,
                    Decision.REFUSED,
                    f"not deleted: the registry deletes by digest only, and kept tag "
                    f'"{kept_by_digest[d.digest]}" points at the same digest',
                    d.digest,
                )
    result = PruneResult(tuple(decided[t] for t in sorted(decided)))
    count = len(result.deletes)
    if count > rules.prune_max:
        return PruneResult(
            result.decisions,
            error=f"would delete {count} tags, more than pruneMax {rules.prune_max}: "
            f"nothing is deleted (set pruneMax: {count} or higher to allow it)",
        )
    return result


def too_few(selected: int, min_tags: int, prune: bool) -> str:
    """Why a step must fail before anything is copied or deleted, or ""."""
    need = max(min_tags, 1 if prune else 0)
    if selected >= need:
        return ""
    return (
        f"the filters kept {selected} tag(s), fewer than minTags {need}: "
        "nothing is copied or pruned (is the source listing its tags?)"
    )
