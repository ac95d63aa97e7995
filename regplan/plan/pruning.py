"""Plan the deletes of `prune` steps: read the target's tags, ask how it deletes, let
`prune.decide` rule on each tag. Reads only (the delete probe removes nothing)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from regplan import logs
from regplan.config.model import SyncStep
from regplan.errors import RegplanError
from regplan.plan import model
from regplan.plan.prune import Decision, PruneRules, decide
from regplan.plan.resolve import PruneScope
from regplan.plan.view import RegistryView
from regplan.refs import ImageRef
from regplan.registry.api import Backend, DeleteMode

log = logs.get(__name__)


@dataclass
class StepPrunes:
    """What pruning one step decided: delete actions (ids unset), errors, the explanation."""

    actions: list[model.Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    explained: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _backup_tags(step: SyncStep, target: ImageRef, tags: Iterable[str]) -> frozenset[str]:
    """Tags of `target` that are the step's backups of its other tags (as the template
    expands now: a template with the time in it is protected with `pruneProtect` instead)."""
    if not step.backup:
        return frozenset()
    from regplan.config import resolve_backup

    out = set()
    for tag in tags:
        try:
            backup = resolve_backup(step, target.with_tag(tag))
        except RegplanError:
            continue
        if backup.same_repository(target) and backup.tag:
            out.add(backup.tag)
    return frozenset(out)


def plan_step_prunes(
    step: SyncStep,
    scopes: list[PruneScope],
    view: RegistryView,
    client: Backend,
    pool: Executor,
    planned: dict[str, str],
) -> StepPrunes:
    """`planned` maps every `repo:tag` the plan writes to the digest it will point at."""
    out = StepPrunes()
    for scope in scopes:
        target = scope.target
        try:
            tags = sorted(view.tags_or_empty(target))
            heads = list(pool.map(view.head, [target.with_tag(t) for t in tags]))
        except RegplanError as e:
            out.errors.append(f"{step.name}: {target.repo_name}: cannot list tags to prune: {e}")
            continue
        digests = {t: (h.digest if h else None) for t, h in zip(tags, heads, strict=True)}
        heads_by_tag = dict(zip(tags, heads, strict=True))
        will_point = {
            ref.rsplit(":", 1)[1]: d
            for ref, d in planned.items()
            if ref.rsplit(":", 1)[0] == target.repo_name
        }
        rules = PruneRules(protect=step.prune_protect, prune_max=step.prune_max)
        backups = _backup_tags(step, target, tags)
        first = decide(digests, scope.selected, backups, rules, DeleteMode.TAG, will_point)
        mode = DeleteMode.TAG
        if first.deletes and not first.error:
            try:
                support = client.delete_support(target)
            except RegplanError as e:
                out.errors.append(f"{step.name}: {target.repo_name}: cannot prune: {e}")
                continue
            if support.mode is DeleteMode.NONE:
                out.errors.append(
                    f"{step.name}: {target.repo_name}: cannot prune: registry {target.registry} "
                    f"refuses deletes ({support.why}); nothing is deleted"
                )
                continue
            mode = support.mode
        result = (
            first
            if mode is DeleteMode.TAG
            else decide(digests, scope.selected, backups, rules, mode, will_point)
        )
        for d in result.decisions:
            out.explained.append(
                {"tag": f"{target.repo_name}:{d.tag}", "decision": d.decision.value, "why": d.why}
            )
            if d.decision is Decision.REFUSED:
                out.warnings.append(f"{target.repo_name}:{d.tag}: {d.why}")
        if result.error:
            out.errors.append(f"{step.name}: {target.repo_name}: {result.error}")
            continue
        for d in result.deletes:
            head = heads_by_tag[d.tag]
            assert head is not None and d.digest is not None  # decide deletes only present tags
            ref = target.with_tag(d.tag)
            log.info("Tag will be pruned", target=str(ref), digest=d.digest)
            out.actions.append(
                model.Action(
                    id="",
                    kind=model.DELETE,
                    reason=model.PRUNE,
                    target=str(ref),
                    digest=d.digest,
                    media_type=head.media_type,
                    size=head.size,
                    source=str(target.with_digest(d.digest)),
                    steps=(step.index,),
                    group=str(ref),
                    before=d.digest,
                    delete_by=mode.value,
                )
            )
    return out
