"""What an apply did: each action's result, the summary, and the `--report` file's body.

Values only, apart from the applier, so that a run with nothing to apply (and watch, which
reports applies) need not load the applier to say so.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from regplan.apply.status import ActionStatus
from regplan.plan import model
from regplan.plan.model import Action, Plan


@dataclass
class ActionResult:
    action: Action
    status: ActionStatus = ActionStatus.NOT_RUN
    detail: str = ""
    bytes: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        a = self.action
        return {
            "id": a.id,
            "kind": a.kind,
            "target": a.target,
            "digest": a.digest,
            "status": self.status,
            "detail": self.detail,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class ApplySummary:
    """What an apply wrote and what it did not (the `summary` of a `--report` file)."""

    images: int = 0  # top-level tags written (tags, digest tags, backups)
    manifests: int = 0  # every manifest pushed (tags, children, referrers)
    blobs: int = 0
    mounted: int = 0  # blobs mounted from another repository instead of copied
    deleted: int = 0
    bytes: int = 0
    skipped: int = 0
    failed: int = 0
    not_run: int = 0
    seconds: float = 0.0

    @classmethod
    def of(cls, results: list[ActionResult], seconds: float) -> ApplySummary:
        done = [r for r in results if r.status == ActionStatus.DONE]
        statuses = [r.status for r in results]
        return cls(
            images=sum(1 for r in done if r.action.kind in model.TAG_KINDS),
            manifests=sum(1 for r in done if r.action.kind not in (model.BLOB, model.DELETE)),
            blobs=sum(1 for r in done if r.action.kind == model.BLOB),
            mounted=sum(1 for r in done if r.detail == "mounted"),
            deleted=sum(1 for r in done if r.action.kind == model.DELETE),
            bytes=sum(r.bytes for r in done),
            skipped=statuses.count(ActionStatus.SKIPPED),
            failed=statuses.count(ActionStatus.FAILED),
            not_run=statuses.count(ActionStatus.NOT_RUN),
            seconds=round(seconds, 3),
        )


@dataclass
class ApplyResult:
    results: list[ActionResult]
    seconds: float
    already_done: bool = False  # every tag was already where the plan puts it

    @property
    def ok(self) -> bool:
        return all(r.status in (ActionStatus.DONE, ActionStatus.SKIPPED) for r in self.results)

    def summary(self) -> ApplySummary:
        return ApplySummary.of(self.results, self.seconds)

    def report(self, plan: Plan, shard: tuple[int, int] | None = None) -> dict[str, Any]:
        return {
            "plan": {
                "created_at": plan.created_at,
                "config": plan.config_path,
                "config_digest": plan.config_digest,
                "mode": plan.mode,
            },
            "shard": {"index": shard[0], "count": shard[1]} if shard else None,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "ok": self.ok,
            "already_done": self.already_done,
            "summary": asdict(self.summary()),
            "actions": [r.to_json() for r in self.results],
        }
