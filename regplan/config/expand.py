"""Template data as regsync builds it (`.Sync`, `.Step`, `.Ref`), and backup name expansion.

`.Sync` is regsync's `ConfigSync` struct: Go field names (`Source`, `Target`, `Type`,
`ReferrerSrc`, `Interval` printing as `1h0m0s`, ...), JSON names for `json .Sync`. `.Ref` is the
reference about to be overwritten (`Scheme`, `Reference`, `Registry`, `Repository`, `Tag`,
`Digest`, `Path`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regplan.config.model import SyncStep, TagFilter
from regplan.config.template import render
from regplan.durations import SECOND
from regplan.gotemplate import GoStruct
from regplan.gotemplate.gotime import GoDuration
from regplan.refs import ImageRef


def _tags_struct(tf: TagFilter) -> GoStruct:
    return GoStruct(
        "regsync.TagAllowDeny",
        (
            ("Allow", list(tf.allow)),
            ("Deny", list(tf.deny)),
            ("SemverRange", list(tf.semver_range)),
        ),
        ("allow", "deny", "semverRange"),
    )


def _duration(seconds: float) -> GoDuration:
    return GoDuration(round(seconds * SECOND))


def sync_struct(step: SyncStep) -> GoStruct:
    """The step as regsync's `ConfigSync` value (what `.Sync` and `.Step` are in templates)."""
    fields: list[tuple[str, str, Any]] = [
        ("Source", "source", step.source),
        ("Target", "target", step.target),
        ("Type", "type", step.type),
        ("Tags", "tags", _tags_struct(step.tags)),
        ("TagSets", "tagSets", [_tags_struct(t) for t in step.tag_sets]),
        (
            "Repos",
            "repos",
            GoStruct(
                "regsync.RepoAllowDeny",
                (("Allow", list(step.repos.allow)), ("Deny", list(step.repos.deny))),
                ("allow", "deny"),
            ),
        ),
        ("DigestTags", "digestTags", step.digest_tags),
        ("Referrers", "referrers", step.referrers),
        (
            "ReferrerFilters",
            "referrerFilters",
            [
                GoStruct(
                    "regsync.ConfigReferrerFilter",
                    (("ArtifactType", f.artifact_type), ("Annotations", dict(f.annotations))),
                    ("artifactType", "annotations"),
                )
                for f in step.referrer_filters
            ],
        ),
        ("ReferrerSrc", "referrerSource", step.referrer_source),
        ("ReferrerTgt", "referrerTarget", step.referrer_target),
        ("ReferrerSlow", "referrerSlow", step.referrer_slow),
        ("Platform", "platform", step.platform),
        ("Platforms", "platforms", list(step.platforms)),
        ("FastCheck", "fastCheck", step.fast_copy),
        ("ForceRecursive", "forceRecursive", step.force_recursive),
        ("IncludeExternal", "includeExternal", step.include_external),
        ("Backup", "backup", step.backup),
        ("Interval", "interval", _duration(step.interval)),
        ("Schedule", "schedule", step.schedule),
        (
            "RateLimit",
            "ratelimit",
            GoStruct(
                "regsync.ConfigRateLimit",
                (("Min", step.ratelimit.min), ("Retry", _duration(step.ratelimit.retry))),
                ("min", "retry"),
            ),
        ),
        ("MediaTypes", "mediaTypes", list(step.media_types)),
        (
            "Hooks",
            "hooks",
            GoStruct(
                "regsync.ConfigHooks",
                (("Pre", None), ("Post", None), ("Unchanged", None)),
                ("pre", "post", "unchanged"),
            ),
        ),
    ]
    return GoStruct(
        "regsync.ConfigSync",
        tuple((name, value) for name, _, value in fields),
        tuple(json_name for _, json_name, _ in fields),
    )


def ref_struct(ref: ImageRef) -> GoStruct:
    """A reference as regclient's `ref.Ref` value (what `.Ref` is in backup templates)."""
    fields = (
        ("Scheme", ref.scheme),
        ("Reference", str(ref)),
        ("Registry", ref.registry),
        ("Repository", ref.repository),
        ("Tag", ref.tag),
        ("Digest", ref.digest),
        ("Path", ref.path),
        ("CommonName", str(ref)),
    )
    return GoStruct(
        "ref.Ref",
        fields,
        ("scheme", "reference", "registry", "repository", "tag", "digest", "path", "commonName"),
    )


def expand_backup(
    step: SyncStep, target: ImageRef, *, on_missing_file: Callable[[str], None] | None = None
) -> str:
    """The step's `backup` template expanded for `target` (the image about to be overwritten),
    whitespace-trimmed. Raises TemplateError."""
    sync = sync_struct(step)
    data = {"Ref": ref_struct(target), "Sync": sync, "Step": sync}
    name = f"sync[{step.index}].backup"
    return render(step.backup, data, name=name, on_missing_file=on_missing_file).strip()


def resolve_backup(step: SyncStep, target: ImageRef) -> ImageRef:
    """Where the backup of `target` goes: a full reference when the expanded text has `:` or `/`,
    otherwise a tag in the target's repository (regsync's rule). Raises TemplateError or
    InvalidReferenceError."""
    text = expand_backup(step, target)
    if ":" in text or "/" in text:
        return ImageRef.parse(text)
    return target.with_tag(text)
