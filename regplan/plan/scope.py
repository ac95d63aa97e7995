"""Does a saved plan stay inside what its config allows? Checked before apply sends anything.

A plan's integrity digest is no signature: anyone who can write the file can recompute it, and
its `config` block can name any config. So apply trusts only the config it loads, and refuses
every action that config could not have produced: each target inside its step's target (the
repository of image and repository steps, under the registry/prefix of registry steps, the
referrer target, the expanded backup), each source inside its step's source, each mount from
the same registry and a repository the step may read. OCI Layout paths are compared after
resolving symlinks and `..`, so a plan cannot point a write outside the step's directory.

Pure: reads the file system only to resolve layout paths (os.path.realpath).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Set
from dataclasses import dataclass
from enum import Enum

from regplan import filters
from regplan.config.model import Config, SyncStep
from regplan.errors import PlanFileError, RegplanError
from regplan.oci import digest as digests
from regplan.plan import model
from regplan.plan.model import Action, Plan
from regplan.refs import ImageRef

# a layout path -> the directory it names (symlinks and `..` resolved)
Resolve = Callable[[str], str]


class PlanScopeError(PlanFileError):
    """A plan action the loaded config could not have produced."""


class Reach(Enum):
    """How a step's reference bounds the repositories it covers."""

    EXACT = "exact"  # image and repository steps: that one repository
    UNDER = "under"  # registry steps: every repository under the registry/prefix


@dataclass(frozen=True)
class Area:
    """A set of repositories: one repository, or everything below a registry/prefix."""

    scheme: str
    registry: str
    path: str  # repository (registries) or resolved directory (layouts); a prefix for UNDER
    reach: Reach

    def holds(self, ref: ImageRef, resolve: Resolve = os.path.realpath) -> bool:
        if ref.scheme != self.scheme:
            return False
        if ref.is_ocidir:
            where = resolve(ref.path)
            if self.reach is Reach.EXACT:
                return where == self.path
            return where.startswith(self.path.rstrip(os.sep) + os.sep)
        if ref.registry != self.registry:
            return False
        if self.reach is Reach.EXACT:
            return ref.repository == self.path
        return not self.path or ref.repository.startswith(self.path + "/")

    def name_in(self, ref: ImageRef, resolve: Resolve = os.path.realpath) -> str:
        """The repository name below an UNDER area (what a registry step's catalog listed)."""
        if ref.is_ocidir:
            return os.path.relpath(resolve(ref.path), self.path)
        return ref.repository[len(self.path) + 1 :] if self.path else ref.repository


def _area(text: str, reach: Reach) -> Area:
    if reach is Reach.EXACT:
        ref = ImageRef.parse(text)
        if ref.is_ocidir:
            return Area(ref.scheme, "", os.path.realpath(ref.path), reach)
        return Area(ref.scheme, ref.registry, ref.repository, reach)
    if text.startswith("ocidir://"):
        ref = ImageRef.parse(text.rstrip("/"))
        return Area(ref.scheme, "", os.path.realpath(ref.path), reach)
    host, _, prefix = text.rstrip("/").partition("/")
    registry = ImageRef.registry_host(host).registry
    return Area("reg", registry, prefix, reach)


@dataclass(frozen=True)
class StepScope:
    """What one step may write and read."""

    step: SyncStep
    source: Area
    target: Area
    referrer_source: Area | None
    referrer_target: Area | None

    @classmethod
    def of(cls, step: SyncStep) -> StepScope:
        reach = Reach.UNDER if step.type == "registry" else Reach.EXACT
        return cls(
            step=step,
            source=_area(step.source, reach),
            target=_area(step.target, reach),
            referrer_source=_area(step.referrer_source, Reach.EXACT)
            if step.referrer_source
            else None,
            referrer_target=_area(step.referrer_target, Reach.EXACT)
            if step.referrer_target
            else None,
        )

    @property
    def readable(self) -> tuple[Area, ...]:
        found = (self.source, self.target, self.referrer_source, self.referrer_target)
        return tuple(a for a in found if a is not None)


def _is_digest_tag(tag: str) -> bool:
    algorithm, sep, rest = tag.partition("-")
    return bool(sep) and algorithm in ("sha256", "sha512") and len(rest) >= 64


def _mirror_problem(scope: StepScope, source: ImageRef, target: ImageRef, resolve: Resolve) -> str:
    """A registry step copies catalog repository X to <target>/X, for the X its `repos` filter
    keeps: what a target under the prefix may be filled from ('' when `source` fits)."""
    step = scope.step
    if step.type != "registry" or not scope.target.holds(target, resolve):
        return ""
    name = scope.target.name_in(target, resolve)
    if not filters.filter_repos([name], step.repos):
        return f"repository {name!r} is not selected by the step's repos filter"
    mirror = ImageRef.parse(f"{step.source}/{name}")
    if source.same_repository(mirror) or scope.target.holds(source, resolve):
        return ""
    return f"{target.repo_name} is filled from {mirror.repo_name}, not {source.repo_name}"


def _misfit(
    action: Action, scope: StepScope, backups: Set[tuple[int, str]], resolve: Resolve
) -> str:
    """Why `action` does not fit `scope` ('' when it fits). Raises RegplanError for references
    that do not parse."""
    step = scope.step
    target = ImageRef.parse(action.target)
    source = ImageRef.parse(action.source)
    kind = action.kind
    if kind == model.TAG or (kind == model.DIGEST_TAG and not action.subject):
        if not scope.target.holds(target, resolve):
            return f"target {target.repo_name} is outside the step's target {step.target}"
        if not scope.source.holds(source, resolve):
            return f"source {source.repo_name} is outside the step's source {step.source}"
        if kind == model.DIGEST_TAG and not _is_digest_tag(target.tag):
            return f"digest tag {target.tag!r} is not named sha256-<digest>"
        if mirror := _mirror_problem(scope, source, target, resolve):
            return mirror
        if kind == model.TAG and step.type == "image":
            wanted = ImageRef.parse(step.target).tag
            if target.tag != wanted:
                return f"tag {target.tag!r} is not the step's tag {wanted!r}"
    elif kind == model.BACKUP:
        from regplan.config import resolve_backup

        if not step.backup:
            return "the step takes no backups"
        if not action.source_tag:
            return "the backup names no original tag"
        original = source.repo().with_tag(action.source_tag)
        if not scope.target.holds(original, resolve):
            return f"the backed-up tag {original} is outside the step's target {step.target}"
        expected = resolve_backup(step, original)
        if str(expected) != str(target):
            return f"the step's backup of {original} is {expected}, not {target}"
    elif kind == model.REFERRER or (kind == model.DIGEST_TAG and action.subject):
        # a digest tag with a subject is the referrers fallback index, built by the planner
        if not step.referrers:
            return "the step does not copy referrers"
        where = scope.referrer_target or scope.target
        origin = scope.referrer_source or scope.source
        if not where.holds(target, resolve):
            return f"target {target.repo_name} is outside the step's referrer target"
        if kind == model.DIGEST_TAG:
            if target.tag != digests.fallback_tag(action.subject):
                return f"tag {target.tag!r} is not the fallback tag of {action.subject}"
            if not source.same_repository(target):
                return f"the fallback index of {target} is read from {source.repo_name}"
        elif not origin.holds(source, resolve):
            return f"source {source.repo_name} is outside the step's referrer source"
    else:  # content: blobs and manifests by digest, for any image the step writes
        writable = [scope.target]
        if scope.referrer_target is not None:
            writable.append(scope.referrer_target)
        repo = target.repo_name
        if (
            not any(a.holds(target, resolve) for a in writable)
            and (step.index, repo) not in backups
        ):
            return f"target {repo} is outside every repository the step writes"
        if not any(a.holds(source, resolve) for a in scope.readable):
            return f"source {source.repo_name} is outside every repository the step reads"
        if mirror := _mirror_problem(scope, source, target, resolve):
            return mirror
    if action.mount_from:
        mount = ImageRef.parse(action.mount_from)
        if not mount.same_registry(target):
            return f"mount_from {action.mount_from} is on another registry than {target.repo_name}"
        if not any(a.holds(mount, resolve) for a in scope.readable):
            return f"mount_from {action.mount_from} is outside every repository the step reads"
        if mirror := _mirror_problem(scope, mount, target, resolve):
            return f"mount_from: {mirror}"
    return ""


def check_scope(plan: Plan, config: Config) -> None:
    """Raise PlanScopeError naming the first action `config` could not have produced."""
    scopes = {s.index: StepScope.of(s) for s in config.sync}
    # backups may go to another repository (a template with `/`): content for them lands there
    backups: set[tuple[int, str]] = set()
    # backups first (their repositories hold content), then tags: the error names the image
    rank = {model.BACKUP: 0, model.TAG: 1, model.DIGEST_TAG: 1}
    ordered = sorted(plan.actions, key=lambda a: rank.get(a.kind, 2))
    resolve = _Resolved()
    for action in ordered:
        _check_action(action, scopes, backups, resolve)
        if action.kind == model.BACKUP:
            repo = ImageRef.parse(action.target).repo_name
            backups.update((i, repo) for i in action.steps)


class _Resolved:
    """os.path.realpath, once per path for one check: a plan of 100,000 actions names a few
    thousand layouts, and resolving walks every component of the path (a tenth of such an
    apply's time was here). One check is one moment, as one realpath per action was."""

    def __init__(self) -> None:
        self._found: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        found = self._found.get(path)
        if found is None:
            found = self._found[path] = os.path.realpath(path)
        return found


def _check_action(
    action: Action,
    scopes: dict[int, StepScope],
    backups: Set[tuple[int, str]],
    resolve: Resolve,
) -> None:
    unknown = [i for i in action.steps if i not in scopes]
    if not action.steps or unknown:
        raise PlanScopeError(
            f"{_label(action)} names no sync step of the config "
            f"(steps {list(action.steps)}); refusing the plan, nothing was applied"
        )
    reasons: list[str] = []
    for index in action.steps:
        try:
            why = _misfit(action, scopes[index], backups, resolve)
        except (RegplanError, ValueError) as e:  # ValueError: a subject that is no digest
            why = str(e)
        if not why:
            return
        reasons.append(f"{scopes[index].step.name}: {why}")
    raise PlanScopeError(
        f"{_label(action)} does not fit {'; '.join(reasons)}; "
        "refusing the plan, nothing was applied"
    )


def _label(action: Action) -> str:
    return f"plan action {action.id} ({action.kind} {action.target})"
