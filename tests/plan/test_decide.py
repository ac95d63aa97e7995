"""regsync's copy-or-skip rules, one row per combination (docs/regsync-behaviour.md, "Deciding
whether an image needs syncing"): the step's options and what the HEADs said, in; what to do
and why, out. No registry: `decide` is pure."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from regplan.oci import mediatypes as mt
from regplan.plan.decide import Decision, Head, Rules, Seen, Verdict, decide
from regplan.plan.model import Reason

SRC = Head("sha256:" + "a" * 64, mt.OCI_MANIFEST, 500)  # the source tag's manifest
OLD = Head("sha256:" + "b" * 64, mt.OCI_MANIFEST, 400)  # what else the target may hold
INDEX = Head("sha256:" + "1" * 64, mt.OCI_INDEX, 900)  # a multi-platform source
LIST = Head("sha256:" + "2" * 64, mt.DOCKER_LIST, 900)
CHILD = Head("sha256:" + "c" * 64, mt.OCI_MANIFEST, 300)  # the index's child for `platform`
FILTERED = Head("sha256:" + "f" * 64, mt.OCI_INDEX, 600)  # the index cut to `platforms`
SCHEMA1 = Head("sha256:" + "5" * 64, mt.DOCKER_SCHEMA1_SIGNED, 100)
WITH_PARAMS = Head(SRC.digest, mt.OCI_MANIFEST + "; charset=utf-8", 500)
DEFAULT_TYPES = (mt.DOCKER_MANIFEST, mt.DOCKER_LIST, mt.OCI_MANIFEST, mt.OCI_INDEX)
MANIFESTS_ONLY = (mt.DOCKER_MANIFEST, mt.OCI_MANIFEST)
WITH_SCHEMA1 = (*DEFAULT_TYPES, mt.DOCKER_SCHEMA1_SIGNED)


@dataclass(frozen=True)
class Row:
    flags: str  # step options: fast force refs dtags backup missing platform platforms immutable
    source: Head | None
    target: Head | None
    expect: str  # verdict, then for a copy: create|update|refresh satisfied body refs dtags backup
    head: Head | None = None  # what the tag points at afterwards (None: nothing to check)
    top: bool = True
    resolved: Head | None = None
    media_types: tuple[str, ...] = DEFAULT_TYPES
    tag: str = "v1.2"


def rules_of(row: Row) -> Rules:
    flags = set(row.flags.split())
    return Rules(
        media_types=row.media_types,
        fast_check="fast" in flags,
        force_recursive="force" in flags,
        referrers="refs" in flags,
        digest_tags="dtags" in flags,
        platform="linux/arm64" if "platform" in flags else "",
        platforms=("linux/amd64", "linux/arm64") if "platforms" in flags else (),
        backup="backup" in flags,
        immutable_tags=(r"v\d+\.\d+",) if "immutable" in flags else (),
        missing="missing" in flags,
    )


def expected(spec: str) -> tuple[Verdict, Reason | None, frozenset[str]]:
    verdict, *rest = spec.split()
    words = set(rest)
    reason = next((Reason(w) for w in ("create", "update", "refresh") if w in words), None)
    return Verdict(verdict), reason, frozenset(words - {"create", "update", "refresh"})


ROWS: dict[str, Row] = {
    # -- the manifest digests are compared, nothing else --------------------------------------
    "absent target: copied": Row("", SRC, None, "copy create body", head=SRC),
    "same digest: nothing to do": Row("", SRC, SRC, "matches", head=SRC),
    "other digest: overwritten": Row("", SRC, OLD, "copy update body", head=SRC),
    "same digest, fastCheck": Row("fast", SRC, SRC, "matches", head=SRC),
    "other digest, fastCheck: still copied": Row("fast", SRC, OLD, "copy update body"),
    "index source, same digest": Row("", INDEX, INDEX, "matches", head=INDEX),
    "index source, absent target": Row("", INDEX, None, "copy create body", head=INDEX),
    "docker list, other digest": Row("", LIST, OLD, "copy update body", head=LIST),
    # -- a match is refreshed when attachments or forced recursion want work -----------------
    "same, referrers: refreshed": Row("refs", SRC, SRC, "copy refresh satisfied refs", head=SRC),
    "same, digest tags: refreshed": Row("dtags", SRC, SRC, "copy refresh satisfied dtags"),
    "same, both": Row("refs dtags", SRC, SRC, "copy refresh satisfied refs dtags"),
    "same, forceRecursive: rewalked": Row("force", SRC, SRC, "copy refresh body", head=SRC),
    "same, force and referrers": Row("force refs", SRC, SRC, "copy refresh body refs"),
    "same, force and digest tags": Row("force dtags", SRC, SRC, "copy refresh body dtags"),
    "same, fastCheck beats force": Row("fast force", SRC, SRC, "matches"),
    "same, fastCheck beats referrers": Row("fast refs", SRC, SRC, "matches"),
    "same, fastCheck beats digest tags": Row("fast dtags", SRC, SRC, "matches"),
    "same, fastCheck beats all": Row("fast force refs dtags", SRC, SRC, "matches"),
    "index, same, digest tags": Row("dtags", INDEX, INDEX, "copy refresh satisfied dtags"),
    # -- attachments ride along with a copy -----------------------------------------------------
    "other, referrers": Row("refs", SRC, OLD, "copy update body refs"),
    "other, referrers, fastCheck": Row("fast refs", SRC, OLD, "copy update body refs"),
    "other, digest tags": Row("dtags", SRC, OLD, "copy update body dtags"),
    "absent, referrers": Row("refs", SRC, None, "copy create body refs"),
    "absent, force": Row("force", SRC, None, "copy create body"),
    # -- missing mode: a tag the target has is not compared ----------------------------------
    "missing, other digest: left alone": Row("missing", SRC, OLD, "target-exists"),
    "missing, same digest: matches first": Row("missing", SRC, SRC, "matches"),
    "missing, same, referrers: no refresh": Row("missing refs", SRC, SRC, "target-exists"),
    "missing, same, force: no refresh": Row("missing force", SRC, SRC, "target-exists"),
    "missing, absent: copied": Row("missing", SRC, None, "copy create body"),
    "missing, absent, backup: nothing to back up": Row(
        "missing backup", SRC, None, "copy create body"
    ),
    "missing, other, backup: no backup": Row("missing backup", SRC, OLD, "target-exists"),
    # -- backup of what an overwrite replaces ----------------------------------------------------
    "backup, other digest": Row("backup", SRC, OLD, "copy update body backup"),
    "backup, absent target": Row("backup", SRC, None, "copy create body"),
    "backup, same digest": Row("backup", SRC, SRC, "matches"),
    "backup, same, referrers: refresh only": Row(
        "backup refs", SRC, SRC, "copy refresh satisfied refs"
    ),
    "backup, same, force: refresh only": Row("backup force", SRC, SRC, "copy refresh body"),
    "backup, digest tag: not backed up": Row("backup", SRC, OLD, "copy update body", top=False),
    "backup, force, other": Row("backup force", SRC, OLD, "copy update body backup"),
    # -- mediaTypes ---------------------------------------------------------------------------
    "index not in mediaTypes: skipped": Row(
        "", INDEX, None, "unsupported-media-type", media_types=MANIFESTS_ONLY
    ),
    "docker list not in mediaTypes": Row(
        "", LIST, OLD, "unsupported-media-type", media_types=MANIFESTS_ONLY
    ),
    "not in mediaTypes but matching: matches first": Row(
        "", INDEX, INDEX, "matches", media_types=MANIFESTS_ONLY
    ),
    "not in mediaTypes, missing mode, exists": Row(
        "missing", INDEX, OLD, "target-exists", media_types=MANIFESTS_ONLY
    ),
    "media type parameters are ignored": Row("", WITH_PARAMS, None, "copy create body"),
    "schema1 allowed: refused": Row("", SCHEMA1, None, "refused", media_types=WITH_SCHEMA1),
    "schema1 not allowed: skipped": Row("", SCHEMA1, None, "unsupported-media-type"),
    "schema1 matching: matches": Row("", SCHEMA1, SCHEMA1, "matches", media_types=WITH_SCHEMA1),
    # -- the source tag must be there -------------------------------------------------------------
    "source gone": Row("", None, None, "source-not-found"),
    "source gone, target there": Row("", None, OLD, "source-not-found"),
    "source gone, digest tag": Row("refs", None, None, "source-not-found", top=False),
    # -- platform: one child of the index -----------------------------------------------------
    "platform: the index is read first": Row("platform", INDEX, None, "resolve-platform"),
    "platform: a docker list too": Row("platform", LIST, OLD, "resolve-platform"),
    "platform, same index: matches before reading": Row("platform", INDEX, INDEX, "matches"),
    "platform, not an index: copied as is": Row(
        "platform", SRC, None, "copy create body", head=SRC
    ),
    "platform, child absent": Row(
        "platform", INDEX, None, "copy create body", head=CHILD, resolved=CHILD
    ),
    "platform, target holds the child": Row(
        "platform", INDEX, CHILD, "matches-platform", head=CHILD, resolved=CHILD
    ),
    "platform, child, referrers do not refresh": Row(
        "platform refs", INDEX, CHILD, "matches-platform", resolved=CHILD
    ),
    "platform, child, digest tags do not refresh": Row(
        "platform dtags", INDEX, CHILD, "matches-platform", resolved=CHILD
    ),
    "platform, child, force refreshes": Row(
        "platform force", INDEX, CHILD, "copy refresh body", head=CHILD, resolved=CHILD
    ),
    "platform, child, force and fastCheck": Row(
        "platform force fast refs", INDEX, CHILD, "copy refresh body", resolved=CHILD
    ),
    "platform, target holds the whole index": Row(
        "platform", INDEX, OLD, "copy update body", head=CHILD, resolved=CHILD
    ),
    "platform, other, backup": Row(
        "platform backup", INDEX, OLD, "copy update body backup", resolved=CHILD
    ),
    "platform, missing, exists": Row("platform missing", INDEX, OLD, "target-exists"),
    # -- platforms: the index filtered to a list ---------------------------------------------
    "platforms: the index is read first": Row("platforms", INDEX, None, "resolve-platform"),
    "platforms, same index: matches before reading": Row("platforms", INDEX, INDEX, "matches"),
    "platforms, absent": Row(
        "platforms", INDEX, None, "copy create body", head=FILTERED, resolved=FILTERED
    ),
    "platforms, target holds the filtered index": Row(
        "platforms", INDEX, FILTERED, "matches", head=FILTERED, resolved=FILTERED
    ),
    "platforms, filtered, referrers refresh": Row(
        "platforms refs", INDEX, FILTERED, "copy refresh satisfied refs", resolved=FILTERED
    ),
    "platforms, filtered, referrers and fastCheck": Row(
        "platforms refs fast", INDEX, FILTERED, "matches", resolved=FILTERED
    ),
    "platforms, filtered, force": Row(
        "platforms force", INDEX, FILTERED, "copy refresh body", resolved=FILTERED
    ),
    "platforms, other": Row(
        "platforms dtags", INDEX, OLD, "copy update body dtags", resolved=FILTERED
    ),
    "platforms, not an index": Row("platforms", SRC, OLD, "copy update body", head=SRC),
    # -- immutableTags: a moved source never overwrites ------------------------------------------
    "immutable, moved: kept": Row("immutable", SRC, OLD, "immutable", head=OLD),
    "immutable, tag not covered": Row("immutable", SRC, OLD, "copy update body", tag="latest"),
    "immutable, absent: created": Row("immutable", SRC, None, "copy create body"),
    "immutable, same, referrers": Row("immutable refs", SRC, SRC, "copy refresh satisfied refs"),
    "immutable, digest tag: not covered": Row("immutable", SRC, OLD, "copy update body", top=False),
    "immutable, missing, exists": Row("immutable missing", SRC, OLD, "target-exists"),
    "immutable, backup: nothing overwritten": Row("immutable backup", SRC, OLD, "immutable"),
    "immutable, platform child moved": Row(
        "immutable platform", INDEX, OLD, "immutable", head=OLD, resolved=CHILD
    ),
    "immutable, platform child in place": Row(
        "immutable platform", INDEX, CHILD, "matches-platform", resolved=CHILD
    ),
    "immutable, force, same: refreshed": Row("immutable force", SRC, SRC, "copy refresh body"),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_regsync_rules(row: Row) -> None:
    seen = Seen(row.source, row.target, top=row.top, target_tag=row.tag, resolved=row.resolved)
    got = decide(rules_of(row), seen)
    verdict, reason, words = expected(row.expect)
    assert got.verdict == verdict
    if verdict == Verdict.COPY:
        assert (got.reason, got.satisfied, got.read_body) == (
            reason,
            "satisfied" in words,
            "body" in words,
        )
        assert (got.referrers, got.digest_tags, got.backup) == (
            "refs" in words,
            "dtags" in words,
            "backup" in words,
        )
    else:
        assert (got.reason, got.referrers, got.digest_tags, got.backup) == (
            None,
            False,
            False,
            False,
        )
    if row.head is not None:
        assert got.head == row.head


@pytest.mark.parametrize(
    ("row", "why"),
    [
        (Row("missing", SRC, OLD, ""), "exists on target (missing mode)"),
        (
            Row("", LIST, None, "", media_types=MANIFESTS_ONLY),
            f"unsupported media type {mt.DOCKER_LIST}",
        ),
        (
            Row("", SCHEMA1, None, "", media_types=WITH_SCHEMA1),
            f"Docker schema1 manifests are not supported ({mt.DOCKER_SCHEMA1_SIGNED})",
        ),
        (Row("", None, None, ""), "source manifest not found"),
        (
            Row("immutable", SRC, OLD, ""),
            r'immutable tag (immutableTags "v\d+\.\d+"): not overwritten, the source moved from '
            f"{OLD.digest[:19]} to {SRC.digest[:19]}",
        ),
        (
            Row("immutable platform", INDEX, OLD, "", resolved=CHILD),
            r'immutable tag (immutableTags "v\d+\.\d+"): not overwritten, the source moved from '
            f"{OLD.digest[:19]} to {CHILD.digest[:19]}",
        ),
        (Row("", SRC, None, ""), ""),
    ],
)
def test_why_is_the_text_plans_show(row: Row, why: str) -> None:
    seen = Seen(row.source, row.target, top=row.top, target_tag=row.tag, resolved=row.resolved)
    assert decide(rules_of(row), seen).why == why


def test_skips_are_the_two_left_alone_verdicts() -> None:
    skipped = {v for v in Verdict if Decision(v).skipped}
    assert skipped == {Verdict.TARGET_EXISTS, Verdict.UNSUPPORTED}


def test_a_second_answer_after_resolving_never_asks_again() -> None:
    """The planner asks at most twice: with the platform resolved, decide always decides."""
    for row in ROWS.values():
        if row.resolved is None and row.source in (INDEX, LIST):
            for resolved in (CHILD, FILTERED):
                seen = Seen(
                    row.source, row.target, top=row.top, target_tag=row.tag, resolved=resolved
                )
                assert decide(rules_of(row), seen).verdict != Verdict.RESOLVE_PLATFORM
