"""Tag and repository filters: RE2 allow/deny patterns, semver ranges, tag-set unions.

regsync's rules, quirks included:
- every pattern is compiled as `^` + pattern + `$` with no grouping added, and searched
  unanchored, so `a|b` means "starts with a OR ends with b";
- per tag set, strictly in order: semverRange (drops tags that are not versions), then allow,
  then deny; semverRange + allow can therefore never *add* non-version tags;
- several sets (tagSets, then `tags`) are unioned: the first set's order, later sets append.
Patterns run on RE2 (google-re2), so matching time is linear: no pattern can hang a plan.

regplan extension: a set's `latest: N` keeps only the N newest of the tags it admits (see
`newest_first` for the order).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from regplan.errors import FilterError
from regplan.semver import Constraint, parse_range, parse_version


@dataclass(frozen=True)
class TagFilter:
    """One `tags` block or one `tagSets` entry. Patterns are unanchored text as written."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    semver_range: tuple[str, ...] = ()
    latest: int = 0  # keep only the N newest tags the set admits; 0 = all

    @property
    def empty(self) -> bool:
        return not (self.allow or self.deny or self.semver_range or self.latest)


@dataclass(frozen=True)
class RepoFilter:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


class InvalidFilterItem(FilterError):
    """One pattern or range that does not compile, and where it is: the config key (`allow`,
    `deny`, `semverRange`, `pruneProtect`...) and its index, for the loader to locate."""

    def __init__(self, key: str, index: int, error: FilterError) -> None:
        super().__init__(str(error))
        self.key = key
        self.index = index


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str, kind: str = "allow") -> Any:
    """The RE2 program for one allow/deny pattern (`kind` only words the error)."""
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile("^" + pattern + "$", options)
    except Exception as e:  # re2.error, or a pattern that is not valid UTF-8
        why = e.args[0] if e.args else e
        if isinstance(why, bytes):
            why = why.decode("utf-8", "replace")
        raise FilterError(f'invalid {kind} pattern "{pattern}": {why}') from None


def _matches(program: Any, text: str) -> bool:
    try:
        return program.search(text) is not None
    except UnicodeError:  # a tag that is not valid UTF-8 text matches nothing
        return False


def _first_match(patterns: Sequence[str], kind: str, text: str) -> str | None:
    for pattern in patterns:
        if _matches(compile_pattern(pattern, kind), text):
            return pattern
    return None


def _ranges(sf: TagFilter) -> list[Constraint]:
    # Empty strings are skipped as regsync skips them; whitespace-only is an error.
    return [parse_range(r) for r in sf.semver_range if r != ""]


def validate_patterns(key: str, patterns: Sequence[str]) -> None:
    """Compile every pattern of one list now, so a bad one is refused at load time."""
    for i, pattern in enumerate(patterns):
        try:
            compile_pattern(pattern, key)
        except FilterError as e:
            raise InvalidFilterItem(key, i, e) from None


def validate_tag_filter(sf: TagFilter) -> None:
    """The one check of a tags block or tagSets entry: patterns compile, ranges parse (in
    key order, first problem raised). The filter functions below trust a validated filter."""
    validate_patterns("allow", sf.allow)
    validate_patterns("deny", sf.deny)
    for i, text in enumerate(sf.semver_range):
        if text == "":
            continue  # skipped as regsync skips it
        try:
            parse_range(text)
        except FilterError as e:
            raise InvalidFilterItem("semverRange", i, e) from None


def validate_repo_filter(rf: RepoFilter) -> None:
    validate_patterns("allow", rf.allow)
    validate_patterns("deny", rf.deny)


def filter_repos(repos: Iterable[str], rf: RepoFilter) -> list[str]:
    """Repositories kept by `repos`: matching any allow (when given), then not matching any deny."""
    out = list(repos)
    if rf.allow:
        out = [r for r in out if _first_match(rf.allow, "allow", r) is not None]
    if rf.deny:
        out = [r for r in out if _first_match(rf.deny, "deny", r) is None]
    return out


def _drop_reason(tag: str, sf: TagFilter, ranges: list[Constraint]) -> str:
    """Why one set drops `tag`, or "" when the set keeps it."""
    if ranges:
        version = parse_version(tag)
        shown = "[" + ", ".join(f'"{c.text}"' for c in ranges) + "]"
        if version is None:
            return f"not a version (semverRange {shown})"
        if not any(c.check(version) for c in ranges):
            return f"not in semverRange {shown}"
    if sf.allow and _first_match(sf.allow, "allow", tag) is None:
        return (
            "not allowed by "
            + ("any of " if len(sf.allow) > 1 else "")
            + (", ".join(f'"{p}"' for p in sf.allow))
        )
    if sf.deny:
        denied = _first_match(sf.deny, "deny", tag)
        if denied is not None:
            return f'denied by "{denied}"'
    return ""


_DIGITS = re.compile(r"(\d+)")


def _natural_key(tag: str) -> tuple[tuple[int, int | str], ...]:
    # digit runs compare as numbers, so build-9 sorts below build-10
    return tuple(
        (1, int(part)) if part.isdigit() else (0, part) for part in _DIGITS.split(tag) if part
    )


def newest_first(tags: Iterable[str]) -> list[str]:
    """The order `latest` counts in: tags that parse as versions first, highest version first
    (a release above its prereleases; equal versions by text, descending); then every other
    tag in descending natural order (digit runs as numbers: `2024-10-02` above `2024-9-30`,
    `build-10` above `build-9`)."""
    versions: list[tuple[Any, str]] = []
    others: list[str] = []
    for tag in tags:
        version = parse_version(tag)
        if version is None:
            others.append(tag)
        else:
            versions.append((version, tag))

    def newer(a: tuple[Any, str], b: tuple[Any, str]) -> int:
        return int(a[0].compare(b[0]) or (-1 if a[1] < b[1] else (a[1] > b[1])))

    ordered = sorted(versions, key=functools.cmp_to_key(newer), reverse=True)
    return [t for _, t in ordered] + sorted(others, key=_natural_key, reverse=True)


def _admitted(tags: Sequence[str], sf: TagFilter) -> tuple[list[str], set[str]]:
    """What one set admits, and the admitted tags its `latest` then drops."""
    ranges = _ranges(sf)
    admitted = [t for t in tags if not _drop_reason(t, sf, ranges)]
    if not sf.latest or len(admitted) <= sf.latest:
        return admitted, set()
    kept = set(newest_first(admitted)[: sf.latest])
    return [t for t in admitted if t in kept], {t for t in admitted if t not in kept}


def filter_tag_set(tags: Iterable[str], sf: TagFilter) -> list[str]:
    """One set, in regsync's order: semverRange, then allow, then deny; then `latest`."""
    return _admitted(list(tags), sf)[0]


def filter_tags(tags: Sequence[str], sets: tuple[TagFilter, ...]) -> list[str]:
    """Tags selected by the union of `sets` (no sets: every tag), in first-selected order."""
    if not sets:
        return list(tags)
    out: list[str] = []
    seen: set[str] = set()
    for sf in sets:
        for tag in filter_tag_set(tags, sf):
            if tag not in seen:
                seen.add(tag)
                out.append(tag)
    return out


def explain_tags(tags: Sequence[str], sets: tuple[TagFilter, ...]) -> dict[str, str]:
    """Every tag the sets drop, mapped to the rule of each set that dropped it.

    E.g. `{"v2.0.0-rc1": 'set 1: not in semverRange [">=1.2 <2"]; set 2: denied by "v.*-rc.*"'}`.
    """
    if not sets:
        return {}
    prepared = [(i, sf, _ranges(sf), _admitted(tags, sf)[1]) for i, sf in enumerate(sets, 1)]
    out: dict[str, str] = {}
    for tag in tags:
        reasons: list[str] = []
        for i, sf, ranges, too_old in prepared:
            why = _drop_reason(tag, sf, ranges)
            if not why and tag in too_old:
                why = f"not among the {sf.latest} latest"
            if not why:
                break
            reasons.append(f"set {i}: {why}")
        else:
            out[tag] = "; ".join(reasons)
    return out
