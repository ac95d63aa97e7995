"""The pure prune decision and keep-latest order, table by table."""

from __future__ import annotations

import pytest

from regplan.filters import newest_first
from regplan.plan.prune import Decision, PruneRules, decide, too_few
from regplan.registry.api import DeleteMode

A, B, C = (f"sha256:{c * 64}" for c in "abc")


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["1.9.0", "1.10.0", "v1.2.0"], ["1.10.0", "1.9.0", "v1.2.0"]),
        (["2.0.0-rc1", "2.0.0", "1.99"], ["2.0.0", "2.0.0-rc1", "1.99"]),
        (["latest", "1.0", "edge"], ["1.0", "latest", "edge"]),
        (["build-9", "build-10", "build-11"], ["build-11", "build-10", "build-9"]),
    ],
)
def test_newest_first(tags: list[str], expected: list[str]) -> None:
    assert newest_first(tags) == expected


def test_rules_in_order_and_digest_tags_follow_their_subject() -> None:
    target: dict[str, str | None] = {
        "kept": A,
        "gone": B,
        "keep-me": C,
        "vanished": None,
        f"sha256-{'a' * 64}.sig": C,
        f"sha256-{'b' * 64}.sig": C,
        f"sha256-{'c' * 64}": C,
    }
    result = decide(
        target, frozenset({"kept"}), frozenset(), PruneRules(("keep-.*",)), DeleteMode.TAG
    )
    decided = {d.tag: (d.decision, d.why) for d in result.decisions}
    assert decided["kept"] == (Decision.KEEP, "in the source set")
    assert decided["keep-me"] == (Decision.KEEP, 'pruneProtect "keep-.*"')
    assert decided["vanished"][0] is Decision.KEEP
    assert decided[f"sha256-{'a' * 64}.sig"] == (Decision.KEEP, "digest tag of a kept image")
    assert decided[f"sha256-{'b' * 64}.sig"] == (Decision.DELETE, "digest tag of a pruned image")
    assert decided[f"sha256-{'c' * 64}"][0] is Decision.KEEP  # its subject keep-me is kept
    assert [d.tag for d in result.deletes] == ["gone", f"sha256-{'b' * 64}.sig"]


def test_delete_by_digest_refuses_a_digest_a_kept_or_planned_tag_holds() -> None:
    target: dict[str, str | None] = {"kept": A, "old-a": A, "old-b": B, "old-c": C}
    result = decide(
        target, frozenset({"kept"}), frozenset(), PruneRules(), DeleteMode.DIGEST, {"new": C}
    )
    decided = {d.tag: d.decision for d in result.decisions}
    assert decided == {
        "kept": Decision.KEEP,
        "old-a": Decision.REFUSED,
        "old-b": Decision.DELETE,
        "old-c": Decision.REFUSED,  # "new" will point at C once the plan's copies land
    }


def test_cap_and_min_tags() -> None:
    target: dict[str, str | None] = {f"t{i}": A for i in range(3)}
    capped = decide(target, frozenset(), frozenset(), PruneRules(prune_max=2), DeleteMode.TAG)
    assert capped.error.startswith("would delete 3 tags, more than pruneMax 2")
    assert too_few(0, 0, True) and not too_few(0, 0, False) and too_few(2, 3, False)
    assert not too_few(1, 0, True)
