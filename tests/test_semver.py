"""semverRange versions and constraints, as regsync's internal/semver defines them."""

from __future__ import annotations

import pytest

from regplan.errors import FilterError
from regplan.semver import Constraint, Version, parse_range, parse_version


@pytest.mark.parametrize(
    ("text", "parts", "pre"),
    [
        ("1.2.3", (1, 2, 3), ""),
        ("v1.2.3", (1, 2, 3), ""),
        ("5", (5,), ""),
        ("1.5", (1, 5), ""),
        ("1.2.3.4", (1, 2, 3, 4), ""),
        ("v1.2.3-alpine3.21", (1, 2, 3), "alpine3.21"),
        ("1.2.3-rc.1+build.5", (1, 2, 3), "rc.1"),
        ("01.002", (1, 2), ""),
    ],
)
def test_version_parse(text: str, parts: tuple[int, ...], pre: str) -> None:
    v = Version.parse(text)
    assert v.parts == parts
    assert v.prerelease == pre


@pytest.mark.parametrize(
    "text",
    [
        "latest",
        "",
        "v",
        "vv1",
        "V1.2",
        "1..2",
        "1.2.",
        "1.x",
        "edge",
        "1.2a",
        "99999999999999999999",
    ],
)
def test_not_a_version(text: str) -> None:
    assert parse_version(text) is None


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("1.2.3", "1.2.3", 0),
        ("1.2", "1.2.0", 0),
        ("v5", "5.0.0", 0),
        ("1.2.4", "1.2.3", 1),
        ("1.10", "1.9", 1),
        ("v5-scratch", "5.0.0", -1),  # a release sorts above any prerelease of it
        ("v2.0.0-alpine", "2.0.0", -1),
        ("1.0.0-rc2", "1.0.0-rc10", -1),  # digit runs compare numerically
        ("1.0.0-alpha", "1.0.0-beta", -1),
        ("1.0.0-rc", "1.0.0-rc1", -1),
        ("1.0.0-rc1.1", "1.0.0-rc1.1.1", -1),  # fewer parts is lower
        ("1.0.0-alpha.1", "1.0.0-alpha.2", 0),  # regsync quirk: text-only heads end the compare
        ("1.0.0+a", "1.0.0+b", 0),  # metadata ignored
        ("1.2.3.1", "1.2.3", 1),
    ],
)
def test_compare(a: str, b: str, want: int) -> None:
    assert Version.parse(a).compare(Version.parse(b)) == want
    assert Version.parse(b).compare(Version.parse(a)) == -want


# Every row of the seed's operator table, with versions on each side of the bounds.
OPERATOR_TABLE = [
    ("=1.2.3", ["1.2.3", "v1.2.3", "1.2.3.0"], ["1.2.4", "1.2.2", "1.2.3-rc1"]),
    ("1.2.3", ["1.2.3"], ["1.2.4", "1.3.0"]),
    (">1.2.3", ["1.2.4", "2.0.0"], ["1.2.3", "1.2.3-rc1", "1.0.0"]),
    ("<1.2.3", ["1.2.2", "1.2.3-rc1", "0.1"], ["1.2.3", "1.2.4"]),
    (">=1.2.3", ["1.2.3", "1.2.4"], ["1.2.2", "1.2.3-rc1"]),
    ("<=1.2.3", ["1.2.3", "1.2.2"], ["1.2.4", "1.3"]),
    ("~1.2.3", ["1.2.3", "1.2.9", "1.2.99"], ["1.3.0", "1.2.2", "2.0.0"]),
    ("^1.2.3", ["1.2.3", "1.9.0", "1.99.99"], ["2.0.0", "1.2.2", "0.9.9"]),
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2", "1.0.0"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2", "0.1.0"]),
]


@pytest.mark.parametrize(("rng", "inside", "outside"), OPERATOR_TABLE)
def test_operator_table(rng: str, inside: list[str], outside: list[str]) -> None:
    c = parse_range(rng)
    for v in inside:
        assert c.check(Version.parse(v)), f"{v} should satisfy {rng}"
    for v in outside:
        assert not c.check(Version.parse(v)), f"{v} should not satisfy {rng}"


@pytest.mark.parametrize(
    ("rng", "inside", "outside"),
    [
        (">=v2", ["v2", "3.0"], ["1.9"]),  # constraint versions may carry a v
        (">=1.2.3 <2.0.0", ["1.2.3", "1.99"], ["2.0.0", "1.2.2"]),  # AND within a string
        ("  >=1   <2  ", ["1.5"], ["2"]),
        ("^1", ["1.0", "1.9"], ["2"]),
        ("^0", ["0.0.0"], ["0.0.1"]),
        ("~1", ["1.0.0", "1.0.9"], ["1.1.0"]),
    ],
)
def test_ranges(rng: str, inside: list[str], outside: list[str]) -> None:
    c = Constraint.parse(rng)
    assert all(c.check(Version.parse(v)) for v in inside)
    assert not any(c.check(Version.parse(v)) for v in outside)


@pytest.mark.parametrize(
    "rng", ["   ", ">=x", "=>1.0", "!=1.0", "^a", "~", ">=1.0 <", "1.0 || 2.0"]
)
def test_invalid_range(rng: str) -> None:
    with pytest.raises(FilterError, match="invalid semver range"):
        Constraint.parse(rng)
