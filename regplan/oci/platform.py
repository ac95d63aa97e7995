"""Platforms: parsing `os/arch[/variant][,osver=X]`, normalising, and choosing from an index.

Follows regclient's `types/platform`: aliases are normalised, a bare architecture means the
local OS, and a single `platform` picks the compatible entry that fits best, while a
`platforms` list matches exactly.
"""

from __future__ import annotations

import platform as _host
from dataclasses import dataclass

from regplan.errors import FilterError

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
}
_OS_ALIASES = {"macos": "darwin"}
_KNOWN_ARCHES = frozenset(
    {
        "386",
        "amd64",
        "arm",
        "arm64",
        "loong64",
        "mips",
        "mips64",
        "mips64le",
        "mipsle",
        "ppc64",
        "ppc64le",
        "riscv64",
        "s390x",
        "wasm",
    }
)
_KNOWN_OS = frozenset(
    {
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "illumos",
        "ios",
        "js",
        "linux",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "wasip1",
        "windows",
    }
)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    @classmethod
    def from_json(cls, data: dict) -> Platform:
        return normalise(
            cls(
                os=str(data.get("os", "")),
                architecture=str(data.get("architecture", "")),
                variant=str(data.get("variant", "")),
                os_version=str(data.get("os.version", "")),
            )
        )

    def to_json(self) -> dict:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        return out

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        if self.variant:
            text += f"/{self.variant}"
        if self.os_version:
            text += f",osver={self.os_version}"
        return text


def local() -> Platform:
    machine = _host.machine().lower()
    arch, variant = _ARCH_ALIASES.get(machine, (machine, ""))
    return normalise(Platform(os=_host.system().lower(), architecture=arch, variant=variant))


def normalise(p: Platform) -> Platform:
    os_name = _OS_ALIASES.get(p.os.lower(), p.os.lower())
    arch = p.architecture.lower()
    variant = p.variant.lower()
    if arch in _ARCH_ALIASES:
        arch, alias_variant = _ARCH_ALIASES[arch]
        variant = variant or alias_variant
    if arch == "arm64" and variant == "v8":
        variant = ""
    if arch == "arm" and not variant:
        variant = "v7"
    return Platform(os=os_name, architecture=arch, variant=variant, os_version=p.os_version)


def parse(text: str) -> Platform:
    """`linux/amd64`, `linux/arm/v7`, `windows/amd64,osver=10.0.17763`, `arm64`, `local`."""
    spec = text.strip()
    os_version = ""
    if "," in spec:
        spec, _, opts = spec.partition(",")
        for opt in opts.split(","):
            key, _, value = opt.partition("=")
            if key != "osver" or not value:
                raise FilterError(f'could not parse platform "{text}": unknown option "{opt}"')
            os_version = value
    if spec == "local":
        return local()
    parts = spec.split("/")
    if not all(parts) or len(parts) > 3:
        raise FilterError(f'could not parse platform "{text}"')
    if len(parts) == 1:
        word = parts[0].lower()
        if word in _KNOWN_ARCHES or word in _ARCH_ALIASES:
            return normalise(Platform(os=local().os, architecture=word, os_version=os_version))
        if word in _KNOWN_OS:
            return normalise(
                Platform(os=word, architecture=local().architecture, os_version=os_version)
            )
        raise FilterError(f'could not parse platform "{text}"')
    variant = parts[2] if len(parts) == 3 else ""
    return normalise(
        Platform(os=parts[0], architecture=parts[1], variant=variant, os_version=os_version)
    )


def _variant_number(variant: str) -> int:
    digits = variant.lstrip("v")
    return int(digits) if digits.isdigit() else 0


def compatible(want: Platform, have: Platform) -> bool:
    """Can an image built for `have` run where `want` is asked for (same OS and arch,
    a variant no newer than wanted)."""
    if want.os != have.os or want.architecture != have.architecture:
        return False
    if want.os_version and have.os_version and want.os_version != have.os_version:
        return False
    if not have.variant or not want.variant:
        return True
    return _variant_number(have.variant) <= _variant_number(want.variant)


def _score(want: Platform, have: Platform) -> tuple[int, int, int]:
    exact_variant = int(want.variant == have.variant)
    exact_osver = int(want.os_version == have.os_version)
    return (exact_variant, exact_osver, _variant_number(have.variant))


def best_match(want: Platform, candidates: list[Platform | None]) -> int:
    """Index of the best compatible candidate, or -1. Candidates without a platform are skipped."""
    best, best_score = -1, (-1, -1, -1)
    for i, have in enumerate(candidates):
        if have is None or not compatible(want, have):
            continue
        score = _score(want, have)
        if score > best_score:
            best, best_score = i, score
    return best


def exact_match(want: Platform, have: Platform | None) -> bool:
    """`platforms` list semantics: equal after normalisation (os.version only if asked for)."""
    if have is None:
        return False
    if want.os_version and want.os_version != have.os_version:
        return False
    return (want.os, want.architecture, want.variant) == (have.os, have.architecture, have.variant)
