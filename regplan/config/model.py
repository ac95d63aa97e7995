"""The resolved configuration: what the loader produces and the planner consumes.

Values here are after default merging and load-time template expansion (regsync's
`syncSetDefaults` + `source`/`referrerSource`/`target`/`referrerTarget` expansion).
`backup` stays an unexpanded template: it is expanded per image when a backup is planned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from regplan.config.hosts import Host
from regplan.filters import RepoFilter, TagFilter

DEFAULT_MEDIA_TYPES: tuple[str, ...] = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
__all__ = [  # TagFilter and RepoFilter are the filters' own types, re-exported for callers
    "DEFAULT_MEDIA_TYPES",
    "PRUNE_MAX_DEFAULT",
    "RATELIMIT_RETRY_MIN",
    "Config",
    "ConfigWarning",
    "Defaults",
    "RateLimit",
    "ReferrerFilter",
    "RepoFilter",
    "SyncStep",
    "TagFilter",
    "WarningKind",
]
PRUNE_MAX_DEFAULT = 100  # deletes per step without raising `pruneMax`
RATELIMIT_RETRY_MIN = 300.0  # seconds; regsync raises any shorter retry to 5m


@dataclass(frozen=True)
class ReferrerFilter:
    artifact_type: str = ""
    annotations: tuple[tuple[str, str], ...] = ()  # all must match; "" value = key present


@dataclass(frozen=True)
class RateLimit:
    min: int = 0  # minimum remaining pulls to start a copy; 0 = don't check
    retry: float = RATELIMIT_RETRY_MIN  # seconds to wait before checking again


@dataclass(frozen=True)
class SyncStep:
    """One `sync` entry with defaults applied."""

    index: int  # 0-based position in the file's sync list
    line: int  # line of the entry in the config file (0 when unknown)
    source: str
    target: str
    type: str  # "registry" | "repository" | "image" (validated by the loader)
    tags: TagFilter = field(default_factory=TagFilter)
    tag_sets: tuple[TagFilter, ...] = ()
    repos: RepoFilter = field(default_factory=RepoFilter)
    digest_tags: bool = False
    referrers: bool = False
    referrer_filters: tuple[ReferrerFilter, ...] = ()  # empty = every referrer
    referrer_source: str = ""
    referrer_target: str = ""
    referrer_slow: bool = False
    platform: str = ""
    platforms: tuple[str, ...] = ()
    fast_copy: bool = False  # `fastCopy` or its alias `fastCheck`
    force_recursive: bool = False
    include_external: bool = False
    backup: str = ""  # template, expanded per image
    interval: float = 0.0  # seconds; 0 = unset
    interval_text: str = ""  # as written, e.g. "60m"
    schedule: str = ""
    ratelimit: RateLimit = field(default_factory=RateLimit)
    media_types: tuple[str, ...] = DEFAULT_MEDIA_TYPES
    # regplan extensions: lifecycle (see docs/config.md)
    prune: bool = False  # target tags the filtered source set lacks become deletes
    prune_protect: tuple[str, ...] = ()  # RE2 patterns (anchored) of tags never pruned
    prune_max: int = PRUNE_MAX_DEFAULT  # more deletes than this in one step is an error
    min_tags: int = 0  # fewer tags from the filters than this fails the step
    immutable_tags: tuple[str, ...] = ()  # RE2 patterns of tags never overwritten

    @property
    def name(self) -> str:
        """How logs and plans name the step: `sync[2] alpine -> registry.example.org/alpine`."""
        return f"sync[{self.index}] {self.source} -> {self.target}"

    def tag_filter_sets(self) -> tuple[TagFilter, ...]:
        """regsync's order: every tagSets entry, then `tags` last when it says anything."""
        sets = self.tag_sets
        if not self.tags.empty:
            sets = (*sets, self.tags)
        return sets


@dataclass(frozen=True)
class Defaults:
    """Global-only settings from `defaults` (per-step defaults are merged into each SyncStep)."""

    parallel: int = 1
    cache_count: int = 0
    cache_time: float = 0.0  # seconds
    skip_docker_config: bool = False  # the seed's intent: docker credentials are imported
    user_agent: str = ""
    blob_limit: int = 0  # bytes; 0 = default cap (1 GiB) on registry-requested chunk sizes


class WarningKind(StrEnum):
    """Why the loader warns: the config loads (regsync accepts it) but does not mean much."""

    IGNORED = "ignored"  # a key that has no effect where it is
    UNSCHEDULED = "unscheduled"  # neither schedule nor interval: `watch` never runs the step
    NO_OP = "no-op"  # source and target are the same
    MISSING_FILE = "missing-file"  # a `file` template reads a file that is not there ("")


@dataclass(frozen=True)
class ConfigWarning:
    kind: WarningKind
    message: str
    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: warning: {self.message}"


@dataclass(frozen=True)
class Config:
    path: str  # file it was read from ("-" for stdin)
    digest: str  # sha256 of the file's bytes, recorded in plans
    version: int
    creds: tuple[Host, ...]
    defaults: Defaults
    sync: tuple[SyncStep, ...]
    warnings: tuple[ConfigWarning, ...] = ()  # what `config validate` reports besides errors
