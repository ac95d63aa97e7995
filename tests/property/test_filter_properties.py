"""Semver, tag filters, durations and templates: algebraic properties, and only the project's
typed errors for any input (tests/test_filters.py and tests/test_template.py check the
error types on their own alphabets; these add semantics)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regplan.config.model import TagFilter
from regplan.config.template import render
from regplan.durations import DurationError, format_duration_ns, parse_duration_ns
from regplan.errors import FilterError, TemplateError
from regplan.filters import explain_tags, filter_tags
from regplan.semver import Constraint, Version, parse_range, parse_version

numbers = st.integers(0, 60)
versions = st.tuples(numbers, numbers, numbers)


def v(parts: tuple[int, int, int]) -> str:
    return ".".join(map(str, parts))


# -- semver ---------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(versions, versions, versions)
def test_version_order_is_a_total_order(a: tuple, b: tuple, c: tuple) -> None:
    va, vb, vc = (Version.parse(v(x)) for x in (a, b, c))
    assert va.compare(vb) == -vb.compare(va)
    assert (va.compare(vb) == 0) == (a == b)
    assert (va.compare(vb) < 0) == (a < b)  # numeric, not textual: 10 > 9
    if va.compare(vb) <= 0 and vb.compare(vc) <= 0:
        assert va.compare(vc) <= 0


@settings(max_examples=300, deadline=None)
@given(versions, versions)
def test_range_bounds(bound: tuple, tag: tuple) -> None:
    ver = Version.parse(v(tag))
    assert parse_range(f">={v(bound)}").check(ver) == (tag >= bound)
    assert parse_range(f"<{v(bound)}").check(ver) == (tag < bound)
    assert parse_range(f">={v(bound)} <{v(bound)}").check(ver) is False  # empty range
    caret = parse_range(f"^{v(bound)}").check(ver)
    tilde = parse_range(f"~{v(bound)}").check(ver)
    assert not tilde or caret or bound[0] == 0  # ~ is narrower than ^ (for 1.x and up)
    if tilde:
        assert tag[:2] == bound[:2] and tag >= bound


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="<>=!^~vV0123456789.-+ abcx*|,", max_size=20))
def test_ranges_raise_only_filter_errors(text: str) -> None:
    try:
        constraint = Constraint.parse(text)
    except FilterError as e:
        assert text in str(e) or not text.strip()
        return
    for tag in ("1.2.3", "v0.0.1", "10.0", "1.2.3-rc1"):
        version = parse_version(tag)
        assert version is not None
        constraint.check(version)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30))
def test_any_tag_is_a_version_or_not(tag: str) -> None:
    parsed = parse_version(tag)  # never raises
    if parsed is not None:
        assert parsed.compare(parsed) == 0


# -- tag filters ----------------------------------------------------------------------------------

tag_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,10}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(tag_names, max_size=12, unique=True), st.lists(tag_names, max_size=3))
def test_filters_keep_order_and_deny_wins(tags: list[str], denied: list[str]) -> None:
    everything = (TagFilter(allow=(".*",)),)
    assert filter_tags(tags, everything) == tags
    deny = tuple(re.escape(t) for t in denied)
    kept = filter_tags(tags, (TagFilter(allow=(".*",), deny=deny),))
    assert kept == [t for t in tags if t not in denied]
    assert set(explain_tags(tags, (TagFilter(allow=(".*",), deny=deny),))) == (
        set(tags) & set(denied)
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(tag_names, max_size=12, unique=True), tag_names, tag_names)
def test_tag_sets_are_a_union(tags: list[str], a: str, b: str) -> None:
    set_a = TagFilter(allow=(re.escape(a),))
    set_b = TagFilter(allow=(re.escape(b),))
    union = filter_tags(tags, (set_a, set_b))
    assert set(union) == set(filter_tags(tags, (set_a,))) | set(filter_tags(tags, (set_b,)))
    assert len(union) == len(set(union))


# A backtracking engine needs ~2^n steps for these: far past the timeout. No wall-time
# assertion: RE2 decides each in linear time, and a hang fails the test by its timeout.
@pytest.mark.timeout(120)
@settings(max_examples=50, deadline=None)
@given(st.integers(20, 200), st.sampled_from(["(a+)+$", "(a|aa)+$", "(a*)*b", "(.*a){20}"]))
def test_hostile_patterns_run_in_linear_time(n: int, pattern: str) -> None:
    tags = ["a" * n + "!", "a" * n]
    assert filter_tags(tags, (TagFilter(allow=(pattern,)),)) == [
        t
        for t in tags
        if pattern != "(a*)*b" and t.endswith("a")  # anchored: ^...$
    ]


# -- durations ------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.integers(-(10**15), 10**15))
def test_duration_format_parse_round_trip(ns: int) -> None:
    assert parse_duration_ns(format_duration_ns(ns)) == ns


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789.-+hmsuµnµ dyx", max_size=16))
def test_durations_raise_only_duration_errors(text: str) -> None:
    try:
        parse_duration_ns(text)
    except DurationError:
        pass


# -- templates ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60).filter(lambda t: "{{" not in t))
def test_text_without_actions_renders_to_itself(text: str) -> None:
    assert render(text, {}) == text


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_quoted_strings_render_to_their_value(value: str) -> None:
    import json

    quoted = json.dumps(value, ensure_ascii=False)  # a Go interpreted string literal
    assert render("{{ " + quoted + " }}", {}) == value
    assert render('{{ printf "%s" ' + quoted + " }}", {}) == value


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.sampled_from(["{{ if 1 }}", "{{ (", "{{ with 1 }}", "{{ range"]))
def test_deep_nesting_is_refused_fast(depth: int, opener: str) -> None:
    # an unbounded parser recurses past Python's stack; a bounded one refuses (or renders)
    try:
        render(opener * depth, {})
    except TemplateError:
        pass
