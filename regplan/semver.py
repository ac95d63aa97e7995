"""Version numbers and ranges for `semverRange` tag filters, as regsync's internal/semver has them.

Not strict SemVer: any number of dot-separated numeric components (`5`, `1.5`, `1.2.3.4`, missing
parts compare as 0), one optional leading `v`, `+metadata` ignored, text after the first `-` is a
prerelease (so `v1.2.3-alpine` is a prerelease of 1.2.3 and sorts below it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from regplan.errors import FilterError

_INT64_MAX = (1 << 63) - 1


class VersionError(ValueError):
    """Text that is not a version number."""


def _atoi(text: str) -> int | None:
    """Go's strconv.Atoi, restricted to what can reach it here (no sign: `-`/`+` split first)."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= _INT64_MAX else None


@dataclass(frozen=True)
class Version:
    parts: tuple[int, ...]
    prerelease: str = ""
    metadata: str = ""
    original: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        v = text[1:] if text.startswith("v") else text
        v, _, metadata = v.partition("+")
        v, _, prerelease = v.partition("-")
        parts: list[int] = []
        if not v:
            raise VersionError(f'no version number in "{text}"' if text else "no version number")
        for i, part in enumerate(v.split(".")):
            num = _atoi(part)
            if num is None:
                what = "is empty" if part == "" else f'"{part}" is not a number'
                raise VersionError(f'version "{text}": part {i + 1} {what}')
            parts.append(num)
        return cls(tuple(parts), prerelease, metadata, text)

    def part(self, i: int) -> int:
        return self.parts[i] if i < len(self.parts) else 0

    def compare(self, other: Version) -> int:
        for i in range(max(len(self.parts), len(other.parts))):
            a, b = self.part(i), other.part(i)
            if a != b:
                return -1 if a < b else 1
        if not self.prerelease and other.prerelease:
            return 1
        if self.prerelease and not other.prerelease:
            return -1
        if self.prerelease != other.prerelease:
            return _compare_prereleases(self.prerelease, other.prerelease)
        return 0

    def __str__(self) -> str:
        return self.original


def _split_numeric(text: str) -> tuple[str, str, str]:
    """Non-digit head, digit run, rest."""
    i = 0
    while i < len(text) and not ("0" <= text[i] <= "9"):
        i += 1
    j = i
    while j < len(text) and "0" <= text[j] <= "9":
        j += 1
    return text[:i], text[i:j], text[j:]


def _compare_prereleases(a: str, b: str) -> int:
    """regsync's comparePrereleases, quirks included: two identifiers with equal text heads and no
    digits compare equal *for the whole prerelease* (`alpha.1` == `alpha.2`)."""
    a_parts, b_parts = a.split("."), b.split(".")
    for a_cur, b_cur in zip(a_parts, b_parts, strict=False):
        while a_cur and b_cur:
            a_head, a_num, a_tail = _split_numeric(a_cur)
            b_head, b_num, b_tail = _split_numeric(b_cur)
            if a_head != b_head:
                return -1 if a_head < b_head else 1
            a_n, b_n = _atoi(a_num), _atoi(b_num)
            if a_n is None or b_n is None:
                if b_n is not None:
                    return -1
                if a_n is not None:
                    return 1
                return 0
            if a_n != b_n:
                return -1 if a_n < b_n else 1
            a_cur, b_cur = a_tail, b_tail
        if a_cur:
            return 1
        if b_cur:
            return -1
    if len(a_parts) != len(b_parts):
        return -1 if len(a_parts) < len(b_parts) else 1
    return 0


_OPERATORS = (">=", "<=", ">", "<", "=")


@dataclass(frozen=True)
class Constraint:
    """One semverRange string: space-separated comparisons, all of which must hold."""

    text: str
    terms: tuple[tuple[str, Version], ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        if not text.strip():
            raise FilterError(f'invalid semver range "{text}": empty constraint')
        terms: list[tuple[str, Version]] = []
        for part in text.split():
            try:
                terms.extend(_parse_term(part))
            except VersionError as e:
                why = str(e).removeprefix(f'in "{text}": ')  # one term: it is the whole range
                raise FilterError(f'invalid semver range "{text}": {why}') from None
        return cls(text, tuple(terms))

    def check(self, version: Version) -> bool:
        for op, bound in self.terms:
            cmp = version.compare(bound)
            if (
                (op == "=" and cmp != 0)
                or (op == ">" and cmp <= 0)
                or (op == ">=" and cmp < 0)
                or (op == "<" and cmp >= 0)
                or (op == "<=" and cmp > 0)
            ):
                return False
        return True


def _parse_term(part: str) -> list[tuple[str, Version]]:
    if part.startswith("^"):
        try:
            v = Version.parse(part[1:])
        except VersionError as e:
            raise VersionError(f'in "{part}": {e}') from None
        if v.part(0) > 0:
            upper = Version((v.part(0) + 1, 0, 0))
        elif v.part(1) > 0:
            upper = Version((0, v.part(1) + 1, 0))
        else:
            upper = Version((0, 0, v.part(2) + 1))
        return [(">=", v), ("<", upper)]
    if part.startswith("~"):
        try:
            v = Version.parse(part[1:])
        except VersionError as e:
            raise VersionError(f'in "{part}": {e}') from None
        return [(">=", v), ("<", Version((v.part(0), v.part(1) + 1, 0)))]
    op = "="
    text = part
    for candidate in _OPERATORS:
        if part.startswith(candidate):
            op, text = candidate, part[len(candidate) :]
            break
    if not text:
        raise VersionError(f'"{part}" has no version after the operator')
    try:
        return [(op, Version.parse(text))]
    except VersionError as e:
        raise VersionError(f'in "{part}": {e}') from None


@functools.lru_cache(maxsize=256)
def parse_range(text: str) -> Constraint:
    """A parsed semverRange string (cached: the same ranges are checked against many tags)."""
    return Constraint.parse(text)


def parse_version(text: str) -> Version | None:
    """The version in a tag, or None when the tag is not a version."""
    try:
        return Version.parse(text)
    except VersionError:
        return None
