"""R1's shape: a generated mirror config with the statistics of a real one.

A platform vendor's public mirroring config (generated from a higher-level list) has ~7,500
`type: image` steps: ~2,400 distinct source images in ~200 repositories on 9 public source
registries, each image copied to 3 target registries, one of which is also a source registry.
`shape(scale)` keeps those proportions at any size; `regplan_config` writes the config with the
public names mapped onto local registries by `creds[].hostname`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SOURCE_REGISTRIES = (
    "docker.io",
    "quay.io",
    "ghcr.io",
    "registry.k8s.io",
    "gcr.io",
    "public.ecr.aws",
    "mcr.microsoft.com",
    "registry.gitlab.com",
    "nvcr.io",
)
# the third target is a source registry too: copies into it mount from the source repository
TARGET_REGISTRIES = ("mirror.example.com", "registry.example.org", "ghcr.io")
TARGET_PREFIX = "mirror"
FULL_SOURCES = 2_500  # x3 targets = 7,500 image steps
FULL_REPOS = 200


@dataclass(frozen=True)
class Source:
    registry: str  # public name
    repo: str  # repository path on it
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.registry}/{self.repo}:{self.tag}"

    def target(self, registry: str) -> str:
        return f"{registry}/{TARGET_PREFIX}/{self.registry}/{self.repo}:{self.tag}"


@dataclass(frozen=True)
class Shape:
    repos: tuple[tuple[str, str, int], ...]  # (registry, repo, tags)

    @property
    def sources(self) -> list[Source]:
        return [
            Source(registry, repo, tag_name(i))
            for registry, repo, tags in self.repos
            for i in range(tags)
        ]

    @property
    def steps(self) -> int:
        return len(self.sources) * len(TARGET_REGISTRIES)


def tag_name(i: int) -> str:
    return f"v1.{i // 10}.{i % 10}"


def shape(scale: float) -> Shape:
    """The full shape at `scale` 1.0; smaller scales keep ~12.5 images per repository."""
    sources = max(1, round(FULL_SOURCES * scale))
    repos = max(1, min(sources, round(FULL_REPOS * scale)))
    out = []
    for r in range(repos):
        registry = SOURCE_REGISTRIES[r % len(SOURCE_REGISTRIES)]
        tags = sources // repos + (1 if r < sources % repos else 0)
        out.append((registry, f"org{r % 17}/app{r}", tags))
    return Shape(tuple(out))


def regplan_config(shape: Shape, hosts: Mapping[str, str], *, parallel: int = 4) -> str:
    """regsync's format, three lines per step as generated configs write them. `hosts` maps
    every public registry name to the local `host:port` serving it."""
    lines = ["version: 1", "creds:"]
    for name in (*SOURCE_REGISTRIES, *TARGET_REGISTRIES):
        if name in hosts and f"  - registry: {name}" not in lines:
            lines += [f"  - registry: {name}", f"    hostname: {hosts[name]}", "    tls: disabled"]
    lines += ["defaults:", f"  parallel: {parallel}", "sync:"]
    for source in shape.sources:
        for registry in TARGET_REGISTRIES:
            lines += [
                f"  - source: {source.ref}",
                f"    target: {source.target(registry)}",
                "    type: image",
            ]
    return "\n".join(lines) + "\n"
