"""Tag and repo filters: regsync's TestFilterListVersionScheme, anchoring quirks, tagSets, RE2."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regplan.errors import FilterError
from regplan.filters import (
    InvalidFilterItem,
    RepoFilter,
    TagFilter,
    explain_tags,
    filter_repos,
    filter_tag_set,
    filter_tags,
    validate_tag_filter,
)

# regsync cmd/regsync TestFilterListVersionScheme, all 19 cases: (name, filter, input, expected).
REGSYNC_CASES = [
    (
        "semver with multiple ranges and deny",
        TagFilter(semver_range=(">=1.0.0 <2.0.0", ">=4.0.0"), deny=(".*-rc.*",)),
        ["1.0.0", "1.5.0-rc1", "2.0.0", "4.0.0", "4.1.0-rc2", "5.0.0"],
        ["1.0.0", "4.0.0", "5.0.0"],
    ),
    (
        "semver filters non-semver tags",
        TagFilter(semver_range=(">=1.0.0",)),
        ["latest", "dev", "1.0.0", "1.5.0", "main"],
        ["1.0.0", "1.5.0"],
    ),
    (
        "semver with allow/deny combination",
        TagFilter(semver_range=(">=1.0.0 <3.0.0",), deny=(".*-rc.*",)),
        ["1.0.0", "1.5.0-rc1", "2.0.0", "2.1.0-rc2", "3.0.0"],
        ["1.0.0", "2.0.0"],
    ),
    (
        "no version range (backward compatibility)",
        TagFilter(allow=(r"v[0-9]+\.[0-9]+\.[0-9]+",)),
        ["v1.0.0", "v1.5.0", "latest", "dev"],
        ["v1.0.0", "v1.5.0"],
    ),
    (
        "empty result when no matches",
        TagFilter(semver_range=(">=5.0.0",)),
        ["1.0.0", "2.0.0", "3.0.0"],
        [],
    ),
    (
        "multiple ranges skip middle versions",
        TagFilter(semver_range=(">=1.0.0 <1.20.0", ">=1.22.0")),
        ["1.0.0", "1.19.0", "1.20.0", "1.21.0", "1.22.0", "1.23.0"],
        ["1.0.0", "1.19.0", "1.22.0", "1.23.0"],
    ),
    (
        "version range with allow filter",
        TagFilter(semver_range=(">=1.0.0",), allow=("v.*",)),
        ["1.0.0", "v1.5.0", "v2.0.0", "3.0.0"],
        ["v1.5.0", "v2.0.0"],
    ),
    (
        "empty version range array",
        TagFilter(semver_range=()),
        ["1.0.0", "2.0.0"],
        ["1.0.0", "2.0.0"],
    ),
    (
        "semver with suffix alpine",
        TagFilter(semver_range=(">=1.0.0 <2.0.0",)),
        ["v1.2.3-alpine3.21", "v1.5.0-alpine3.20", "v2.0.0-alpine3.21", "v0.9.0-alpine3.19"],
        ["v1.2.3-alpine3.21", "v1.5.0-alpine3.20", "v2.0.0-alpine3.21"],
    ),
    (
        "semver with suffix scratch",
        TagFilter(semver_range=(">=5.0.0",)),
        ["v5-scratch", "v4-scratch", "v6-scratch", "v5.1-scratch"],
        ["v6-scratch", "v5.1-scratch"],
    ),
    (
        "semver with suffix mixed",
        TagFilter(semver_range=(">=1.0.0 <3.0.0",)),
        ["v1.0.0", "v1.5.0-alpine", "v2.0.0-scratch", "v2.5.1-debian", "v3.0.0-alpine"],
        ["v1.0.0", "v1.5.0-alpine", "v2.0.0-scratch", "v2.5.1-debian", "v3.0.0-alpine"],
    ),
    (
        "semver major version only",
        TagFilter(semver_range=(">=2 <5",)),
        ["v1", "v2", "v3", "v4", "v5", "v6"],
        ["v2", "v3", "v4"],
    ),
    (
        "semver major.minor only",
        TagFilter(semver_range=(">=1.5 <2.0",)),
        ["v1.4", "v1.5", "v1.6", "v1.9", "v2.0", "v2.1"],
        ["v1.5", "v1.6", "v1.9"],
    ),
    (
        "semver mixed version formats",
        TagFilter(semver_range=(">=1.0.0 <3.0.0",)),
        ["v1", "v1.5", "v1.5.0", "v2", "v2.0", "v2.0.0", "v3", "v3.0.0"],
        ["v1", "v1.5", "v1.5.0", "v2", "v2.0", "v2.0.0"],
    ),
    (
        "semver with deny on suffixes",
        TagFilter(semver_range=(">=1.0.0",), deny=(".*-alpine.*",)),
        ["v1.0.0", "v1.2.3-alpine3.21", "v2.0.0-scratch", "v2.5.0-alpine3.20"],
        ["v1.0.0", "v2.0.0-scratch"],
    ),
    (
        "semver + allow adds non-semver tags",
        TagFilter(semver_range=(">=1.0.0 <2.0.0",), allow=("latest", "edge")),
        ["0.9.0", "1.0.0", "1.5.0", "2.0.0", "latest", "edge", "dev"],
        [],
    ),
    (
        "semver + allow + deny combines all filters",
        TagFilter(
            semver_range=(">=1.0.0",), allow=("latest", "stable"), deny=(".*-rc.*", "latest")
        ),
        ["1.0.0", "1.5.0-rc1", "2.0.0", "latest", "stable", "dev"],
        [],
    ),
    (
        "allow without semver still works (backward compatible)",
        TagFilter(allow=(r"v[0-9]+\.[0-9]+",)),
        ["v1.0", "v1.5", "v2.0", "latest", "edge"],
        ["v1.0", "v1.5", "v2.0"],
    ),
    (
        "semver + allow with overlapping matches",
        TagFilter(semver_range=(">=1.0.0",), allow=(r"v[0-9]+\.[0-9]+\.[0-9]+",)),
        ["v1.0.0", "v1.5.0", "v2.0.0", "latest"],
        ["v1.0.0", "v1.5.0", "v2.0.0"],
    ),
]


def test_regsync_case_count() -> None:
    assert len(REGSYNC_CASES) == 19


@pytest.mark.parametrize(
    ("name", "sf", "tags", "want"), REGSYNC_CASES, ids=[c[0] for c in REGSYNC_CASES]
)
def test_regsync_filter_list_version_scheme(
    name: str, sf: TagFilter, tags: list[str], want: list[str]
) -> None:
    assert filter_tag_set(tags, sf) == want


@pytest.mark.parametrize(
    ("pattern", "tag", "matched"),
    [
        ("latest", "latest", True),
        ("latest", "latest-dev", False),  # anchored at both ends
        ("v1", "xv1", False),
        # regsync's quirk: no grouping, so `a|b` is "^a" OR "b$"
        ("v1|v2", "v1-anything", True),
        ("v1|v2", "anything-v2", True),
        ("v1|v2", "x-v1-x", False),
        ("(v1|v2)", "v1-anything", False),
        (r"v[0-9\.]+", "v1.2.3", True),
        (r"\d+", "١٢", False),  # RE2/Go: \d is ASCII only
        ("3.9", "3x9", True),  # `.` is any character, as in regsync
    ],
)
def test_anchoring(pattern: str, tag: str, matched: bool) -> None:
    assert filter_tag_set([tag], TagFilter(allow=(pattern,))) == ([tag] if matched else [])


def test_tag_sets_union_in_order() -> None:
    sets = (
        TagFilter(allow=("latest", "edge")),
        TagFilter(semver_range=(">=3.5.1 <4.0",), allow=(r"v\d+\.\d+\.\d+",)),
    )
    tags = ["v3.4.0", "edge", "v3.6.0", "latest", "v3.5.1", "3.6.0", "v4.0.0"]
    assert filter_tags(tags, sets) == ["edge", "latest", "v3.6.0", "v3.5.1"]


def test_no_sets_selects_everything() -> None:
    assert filter_tags(["a", "b"], ()) == ["a", "b"]
    assert explain_tags(["a"], ()) == {}


def test_union_does_not_duplicate() -> None:
    sets = (TagFilter(allow=("a.*",)), TagFilter(allow=(".*b",)))
    assert filter_tags(["ab", "b", "a"], sets) == ["ab", "a", "b"]


def test_allow_then_deny_yields_nothing_as_documented() -> None:
    # The seed: `allow: ["latest"]` and `deny: ["dev"]` match no tag named dev...
    assert filter_tag_set(["latest", "dev"], TagFilter(allow=("latest",), deny=("dev",))) == [
        "latest"
    ]
    assert filter_tag_set(["dev"], TagFilter(allow=("latest",), deny=("dev",))) == []


def test_repos_allow_then_deny() -> None:
    repos = ["library/alpine", "library/busybox", "team/app", "team/app-dev"]
    rf = RepoFilter(allow=("library/.*", "team/.*"), deny=(".*-dev", "library/busybox"))
    assert filter_repos(repos, rf) == ["library/alpine", "team/app"]
    assert filter_repos(repos, RepoFilter()) == repos


@pytest.mark.parametrize(
    ("sf", "message"),
    [
        (TagFilter(allow=("v(1",)), 'invalid allow pattern "v(1": missing )'),
        (TagFilter(deny=("[z-a]",)), 'invalid deny pattern "[z-a]"'),
        (TagFilter(allow=("(?=x)",)), 'invalid allow pattern "(?=x)"'),  # no lookahead in RE2
        (TagFilter(allow=(r"(a)\1",)), "invalid allow pattern"),  # no backreferences
        (TagFilter(semver_range=(">=x",)), 'invalid semver range ">=x"'),
        (TagFilter(semver_range=(" ",)), "empty constraint"),
    ],
)
def test_invalid_filters(sf: TagFilter, message: str) -> None:
    with pytest.raises(FilterError, match=re.escape(message)):
        filter_tags(["x"], (sf,))


def test_invalid_repo_pattern() -> None:
    with pytest.raises(FilterError, match='invalid deny pattern "a\\*\\*"'):
        filter_repos(["a"], RepoFilter(deny=("a**",)))


def test_empty_semver_strings_are_skipped() -> None:
    assert filter_tag_set(["latest", "1.0"], TagFilter(semver_range=("",))) == ["latest", "1.0"]


@pytest.mark.timeout(60)  # Python's re needs ~2^33 steps here: a hang fails by the timeout
def test_pathological_pattern_is_linear() -> None:
    tag = "a" * 33 + "!"
    assert filter_tag_set([tag] * 50, TagFilter(allow=("(a+)+$",))) == []
    assert filter_repos([tag], RepoFilter(allow=("(a|aa)+",))) == []


def test_explain_names_the_rule() -> None:
    sets = (
        TagFilter(semver_range=(">=1.2 <2",)),
        TagFilter(allow=("v.*",), deny=("v.*-rc.*",)),
    )
    tags = ["1.5", "v2.1.0-rc1", "latest", "v3"]
    assert filter_tags(tags, sets) == ["1.5", "v3"]
    assert explain_tags(tags, sets) == {
        "v2.1.0-rc1": 'set 1: not in semverRange [">=1.2 <2"]; set 2: denied by "v.*-rc.*"',
        "latest": 'set 1: not a version (semverRange [">=1.2 <2"]); set 2: not allowed by "v.*"',
    }


def test_explain_allow_lists_all_patterns() -> None:
    why = explain_tags(["x"], (TagFilter(allow=("a", "b")),))
    assert why == {"x": 'set 1: not allowed by any of "a", "b"'}


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    tags=st.lists(_text, max_size=5),
    allow=st.lists(_text, max_size=2),
    deny=st.lists(_text, max_size=2),
    ranges=st.lists(st.text(alphabet="<>=^~v0123456789. -abc", max_size=12), max_size=2),
)
def test_filters_raise_only_filter_errors(
    tags: list[str], allow: list[str], deny: list[str], ranges: list[str]
) -> None:
    sets = (TagFilter(tuple(allow), tuple(deny), tuple(ranges)),)
    try:
        kept = filter_tags(tags, sets)
        dropped = explain_tags(tags, sets)
    except FilterError:
        return
    assert set(kept).isdisjoint(dropped)
    assert set(kept) | set(dropped) == set(tags)


@pytest.mark.parametrize(
    ("sf", "key", "index"),
    [
        (TagFilter(allow=("ok", "v(1")), "allow", 1),
        (TagFilter(allow=("ok",), deny=("[z-a]",)), "deny", 0),
        (TagFilter(semver_range=("", ">=1", ">=x")), "semverRange", 2),
    ],
)
def test_validation_names_the_failing_item(sf: TagFilter, key: str, index: int) -> None:
    with pytest.raises(InvalidFilterItem) as caught:
        validate_tag_filter(sf)
    assert (caught.value.key, caught.value.index) == (key, index)


def test_filters_import_nothing_from_config_or_registry() -> None:
    code = (
        "import sys, regplan.filters, regplan.semver, regplan.gotemplate\n"
        "bad = [m for m in sys.modules if m.startswith(('regplan.config', 'regplan.registry'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
