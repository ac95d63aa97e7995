"""Resolve sync steps into image jobs: which source tag goes to which target tag.

`image` steps are one job; `repository` steps list the source tags and apply the tag filters;
`registry` steps list the catalog, filter repositories, then do what a repository step does for
each. In missing mode, tags whose name exists on the target are dropped here (regsync compares
names only), and image jobs sharing a target repository learn from one tag list which of their
tags it has.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from enum import Enum

from regplan import filters, logs
from regplan.config.model import SyncStep
from regplan.errors import NotFoundError, RegplanError
from regplan.plan.view import RegistryView
from regplan.refs import ImageRef

log = logs.get(__name__)


class TargetTag(Enum):
    """What planning knows of the target tag before it asks the target about it."""

    ASK = "ask"  # nothing yet: HEAD it
    ABSENT = "absent"  # the target's tag list was read and lacks it
    LISTED = "listed"  # missing mode: the target's tag list has it, so it is not compared


@dataclass(frozen=True)
class ImageJob:
    step: SyncStep
    source: ImageRef  # with a tag (or digest)
    target: ImageRef  # with a tag
    target_tag: TargetTag = TargetTag.ASK

    @property
    def group(self) -> str:
        return str(self.target)


@dataclass(frozen=True)
class PruneScope:
    """One target repository of a `prune` step and the tags the step copies into it."""

    source: ImageRef
    target: ImageRef
    selected: frozenset[str]


@dataclass
class StepJobs:
    step: SyncStep
    jobs: list[ImageJob] = field(default_factory=list)
    dropped: list[dict[str, str]] = field(default_factory=list)  # for --explain
    skipped: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    prune: list[PruneScope] = field(default_factory=list)


def resolve_step(step: SyncStep, view: RegistryView, *, missing: bool, explain: bool) -> StepJobs:
    out = StepJobs(step)
    try:
        if step.type == "image":
            out.jobs.append(
                ImageJob(step, ImageRef.parse(step.source), ImageRef.parse(step.target))
            )
        elif step.type == "repository":
            _resolve_repository(
                step,
                ImageRef.parse(step.source),
                ImageRef.parse(step.target),
                view,
                out,
                missing=missing,
                explain=explain,
            )
        elif step.type == "registry":
            _resolve_registry(step, view, out, missing=missing, explain=explain)
        else:  # the loader validates types; this guards programmatic configs
            raise RegplanError(
                f"Type not recognized, must be one of: registry, repository, or image: {step.type!r}"
            )
    except RegplanError as e:
        log.error("Failed to resolve sync step", step=step.name, error=str(e))
        out.errors.append(f"{step.name}: {e}")
    return out


def _resolve_registry(
    step: SyncStep, view: RegistryView, out: StepJobs, *, missing: bool, explain: bool
) -> None:
    source_host = ImageRef.registry_host(step.source)
    repos = view.catalog(source_host)
    selected = filters.filter_repos(repos, step.repos)
    if explain:
        kept = set(selected)
        out.dropped.extend({"repository": r, "why": "repos filter"} for r in repos if r not in kept)
    target_prefix = step.target.rstrip("/")
    for repo in selected:
        source = ImageRef.parse(f"{step.source}/{repo}")
        target = ImageRef.parse(f"{target_prefix}/{repo}")
        try:
            _resolve_repository(step, source, target, view, out, missing=missing, explain=explain)
        except RegplanError as e:
            log.error("Failed getting source tags", source=source.repo_name, error=str(e))
            out.errors.append(f"{step.name}: {source.repo_name}: {e}")


def _resolve_repository(
    step: SyncStep,
    source: ImageRef,
    target: ImageRef,
    view: RegistryView,
    out: StepJobs,
    *,
    missing: bool,
    explain: bool,
) -> None:
    source, target = source.repo(), target.repo()
    try:
        available = view.tags(source)
    except NotFoundError:
        raise NotFoundError("source repository not found", ref=source.repo_name) from None
    sets = step.tag_filter_sets()
    selected = filters.filter_tags(available, sets)
    if explain and sets:
        out.dropped.extend(
            {"tag": f"{source.repo_name}:{tag}", "why": why}
            for tag, why in filters.explain_tags(available, sets).items()
        )
    if step.min_tags or step.prune:
        from regplan.plan.prune import too_few

        few = too_few(len(selected), step.min_tags, step.prune)
        if few:
            raise RegplanError(few)
    if not selected:
        log.warn("No matching tags found", source=source.repo_name, available=len(available))
        return
    if step.prune:
        # the whole filtered set, before missing mode narrows it to what the target lacks
        out.prune.append(PruneScope(source, target, frozenset(selected)))
    if missing:
        existing = set(view.tags_or_empty(target))
        kept = []
        for tag in sorted(selected):
            if tag in existing:
                out.skipped.append(
                    {"ref": f"{target.repo_name}:{tag}", "why": "exists on target (missing mode)"}
                )
            else:
                kept.append(tag)
        selected = kept
    for tag in selected:
        out.jobs.append(
            ImageJob(
                step,
                source.with_tag(tag),
                target.with_tag(tag),
                TargetTag.ABSENT if missing else TargetTag.ASK,
            )
        )


# Missing mode: image steps writing this many tags or more into one target repository learn
# which of them exist from one tag list instead of a HEAD each (a list page holds hundreds).
SHARED_TARGET_JOBS = 2


def list_shared_targets(jobs: list[ImageJob], view: RegistryView, pool: Executor) -> list[ImageJob]:
    """Missing mode for `image` steps: where several write into one target repository, one
    tag list says which tags exist (regsync's missing mode compares tag names only, as a
    repository step's does). The source is still asked about each, so a source that is gone
    is still an error. A target whose tags cannot be listed is asked tag by tag."""
    asking = [_asks_target(j) for j in jobs]
    per_repo = Counter(j.target.repo_key for j, asks in zip(jobs, asking, strict=True) if asks)
    repos = [key for key, n in per_repo.items() if n >= SHARED_TARGET_JOBS]
    if not repos:
        return jobs
    repo_of = {j.target.repo_key: j.target for j in jobs}
    listed = dict(
        zip(
            repos, pool.map(lambda key: _listed_tags(view, repo_of[key].repo()), repos), strict=True
        )
    )
    out = []
    for job, asks in zip(jobs, asking, strict=True):
        tags = listed.get(job.target.repo_key) if asks else None
        if tags is None:
            out.append(job)
        else:
            known = TargetTag.LISTED if job.target.tag in tags else TargetTag.ABSENT
            out.append(replace(job, target_tag=known))
    return out


def _asks_target(job: ImageJob) -> bool:
    return job.step.type == "image" and bool(job.target.tag) and job.target_tag is TargetTag.ASK


def _listed_tags(view: RegistryView, repo: ImageRef) -> frozenset[str] | None:
    try:
        return frozenset(view.tags_or_empty(repo))  # no repository yet: every tag is absent
    except RegplanError as e:
        log.debug("Failed to list target tags, asking per tag", target=repo.repo_name, error=str(e))
        return None
