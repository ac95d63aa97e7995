"""Source tags that moved since planning.

A plan pins what it copies by digest: a source tag that moved after review is still copied at
the reviewed digest (that is the point of a plan). But the reviewer should hear about it, and
`apply --refuse-source-drift` refuses such a plan as it refuses a stale target. Costs one
manifest HEAD per source tag in the plan (for an OCI Layout, one look-up in its index.json:
whether the content below the tag is complete is the copy's business, not drift's).
"""

from __future__ import annotations

from dataclasses import dataclass

from regplan.apply.lookups import look_up
from regplan.errors import RegplanError
from regplan.plan import model
from regplan.plan.model import Plan
from regplan.refs import ImageRef
from regplan.registry.api import Backend


@dataclass(frozen=True)
class SourceTag:
    ref: str  # repo:tag
    planned: str  # digest it pointed at when planned


@dataclass(frozen=True)
class Drift:
    ref: str
    planned: str
    now: str | None  # None: the tag is gone

    def describe(self) -> str:
        now = _short(self.now) if self.now else "deleted"
        return f"source {self.ref} moved since planning ({_short(self.planned)} → {now})"


class SourceDriftError(RegplanError):
    """`--refuse-source-drift`: a source tag moved since planning; nothing was written."""

    def __init__(self, drift: list[Drift]) -> None:
        self.drift = drift
        shown = "; ".join(d.describe() for d in drift[:5])
        more = f" (and {len(drift) - 5} more)" if len(drift) > 5 else ""
        super().__init__(
            f"saved plan is stale: {len(drift)} source tag(s) moved since planning: {shown}{more}; "
            "nothing was applied (--refuse-source-drift); plan again"
        )


def _short(digest: str) -> str:
    return digest.partition(":")[2][:6] + "…"


def source_tags(plan: Plan) -> list[SourceTag]:
    """Each source tag the plan resolved, once (plans from before format 1.1 record none)."""
    found: dict[str, SourceTag] = {}
    for a in plan.actions:
        if a.kind in (model.TAG, model.DIGEST_TAG) and a.source_tag and a.source_digest:
            ref = str(ImageRef.parse(a.source).repo().with_tag(a.source_tag))
            found.setdefault(ref, SourceTag(ref, a.source_digest))
    return list(found.values())


def drifted(tags: list[SourceTag], now: list[str | None]) -> list[Drift]:
    return [Drift(t.ref, t.planned, d) for t, d in zip(tags, now, strict=True) if d != t.planned]


def find_drift(plan: Plan, client: Backend, workers: int = 8) -> list[Drift]:
    """HEAD each source tag; the ones not at their planned digest."""
    tags = source_tags(plan)

    refs = [ImageRef.parse(t.ref) for t in tags]
    return drifted(tags, look_up(client.manifest_digest, refs, workers, "drift"))
