"""The configuration language: regsync's YAML format, loaded into `Config` values.

Importing this package is cheap: the YAML parser, the template engine and RE2 are imported
only when a config is loaded or a backup name expanded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regplan.config.model import (
    DEFAULT_MEDIA_TYPES,
    Config,
    Defaults,
    RateLimit,
    ReferrerFilter,
    RepoFilter,
    SyncStep,
    TagFilter,
)

if TYPE_CHECKING:
    from regplan.refs import ImageRef

__all__ = [
    "DEFAULT_MEDIA_TYPES",
    "Config",
    "Defaults",
    "RateLimit",
    "ReferrerFilter",
    "RepoFilter",
    "SyncStep",
    "TagFilter",
    "expand_backup",
    "load_config",
    "resolve_backup",
]


def load_config(path: str) -> Config:
    """Load, merge and validate the config at `path` ("-" reads stdin). Raises ConfigError."""
    from regplan.config.loader import load_config as _load

    return _load(path)


def expand_backup(step: SyncStep, target: ImageRef) -> str:
    """The step's `backup` template expanded for the image about to be overwritten."""
    from regplan.config.expand import expand_backup as _expand

    return _expand(step, target)


def resolve_backup(step: SyncStep, target: ImageRef) -> ImageRef:
    """Where the backup of `target` goes (a tag in its repository, or a full reference)."""
    from regplan.config.expand import resolve_backup as _resolve

    return _resolve(step, target)
