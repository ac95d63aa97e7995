"""Apply reports (`--report FILE`) read back and merged: one result for a sharded apply.

Each worker of a sharded apply writes its own report; `regplan report merge` checks that they
belong to one plan and cover every shard once (a shard that was re-run counts with its latest
report), and gives one summary, one exit code and one Markdown comment for the whole apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from regplan.errors import RegplanError

_COUNTS = ("images", "manifests", "blobs", "mounted", "bytes", "skipped", "failed", "not_run")


class ReportError(RegplanError):
    """Reports that cannot be merged into one result."""


@dataclass(frozen=True)
class Report:
    path: str
    plan: tuple[str, str, str]  # (created_at or "" for `once`, config digest, mode)
    shard: tuple[int, int] | None  # (index, count)
    finished_at: str
    ok: bool
    summary: dict[str, float]
    failed: tuple[dict[str, str], ...]  # {"id", "target", "detail"} of failed actions


@dataclass(frozen=True)
class MergedReport:
    reports: tuple[Report, ...]
    missing_shards: tuple[int, ...]
    summary: dict[str, float]

    @property
    def ok(self) -> bool:
        return not self.missing_shards and all(r.ok for r in self.reports)

    @property
    def failed(self) -> list[dict[str, str]]:
        return [f for r in self.reports for f in r.failed]


def _field(body: dict[str, Any], key: str, kind: type, path: str) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise ReportError(f"{path}: not an apply report ({key!r} missing or of the wrong type)")
    return value


def read_report(path: Path) -> Report:
    try:
        body = orjson.loads(path.read_bytes())
    except OSError as e:
        raise ReportError(f"{path}: cannot read report: {e.strerror}") from None
    except orjson.JSONDecodeError as e:
        raise ReportError(f"{path}: not an apply report (invalid JSON: {e})") from None
    if not isinstance(body, dict):
        raise ReportError(f"{path}: not an apply report")
    plan = _field(body, "plan", dict, str(path))
    summary = _field(body, "summary", dict, str(path))
    actions = _field(body, "actions", list, str(path))
    shard = body.get("shard")
    parsed_shard = None
    if shard is not None:
        index, count = shard.get("index"), shard.get("count") if isinstance(shard, dict) else None
        if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
            raise ReportError(f"{path}: not an apply report (bad shard {shard!r})")
        parsed_shard = (index, count)
    counts = {}
    for key in _COUNTS:
        value = summary.get(key, 0)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ReportError(f"{path}: not an apply report (summary {key!r})")
        counts[key] = value
    counts["seconds"] = float(summary.get("seconds", 0) or 0)
    failed = tuple(
        {"id": str(a.get("id", "")), "target": str(a.get("target", "")),
         "detail": str(a.get("detail", ""))}
        for a in actions
        if isinstance(a, dict) and a.get("status") == "failed"
    )  # fmt: skip
    return Report(
        path=str(path),
        plan=(str(plan.get("created_at", "")) if plan.get("saved", True) else "",
              str(plan.get("config_digest", "")), str(plan.get("mode", ""))),
        shard=parsed_shard,
        finished_at=str(body.get("finished_at", "")),
        ok=_field(body, "ok", bool, str(path)),
        summary=counts,
        failed=failed,
    )  # fmt: skip


def merge(reports: Sequence[Report]) -> MergedReport:
    """One result for the reports of one plan. Shards must agree on N; a shard reported twice
    (re-run after a failure) counts with its latest report."""
    if not reports:
        raise ReportError("no reports to merge")
    plans = {r.plan for r in reports}
    if len(plans) > 1:
        first, other = reports[0], next(r for r in reports if r.plan != reports[0].plan)
        raise ReportError(
            f"{other.path} is the report of another plan or config than {first.path}; "
            "merge the reports of one apply"
        )
    sharded = [r for r in reports if r.shard is not None]
    counts = {r.shard[1] for r in sharded if r.shard is not None}
    if sharded and len(sharded) != len(reports):
        raise ReportError("some reports are of a sharded apply and some are not; merge one kind")
    if len(counts) > 1:
        raise ReportError(f"the reports split the plan in different ways: {sorted(counts)} shards")
    latest: dict[int, Report] = {}
    for r in reports:
        slot = r.shard[0] if r.shard is not None else len(latest)
        if slot not in latest or r.finished_at >= latest[slot].finished_at:
            latest[slot] = r
    kept = tuple(latest[k] for k in sorted(latest))
    missing: tuple[int, ...] = ()
    if counts:
        (count,) = counts
        missing = tuple(i for i in range(count) if i not in latest)
    total: dict[str, float] = {key: 0 for key in (*_COUNTS, "seconds")}
    for r in kept:
        for key in _COUNTS:
            total[key] += r.summary[key]
        total["seconds"] = max(total["seconds"], r.summary["seconds"])  # shards run side by side
    return MergedReport(kept, missing, total)


def render_merged(merged: MergedReport, fmt: str) -> str:
    from regplan.units import human_bytes

    s = merged.summary
    shards = len(merged.reports) + len(merged.missing_shards)
    head = "Apply complete" if merged.ok else "Apply FAILED"
    line = (
        f"{head} ({len(merged.reports)} of {shards} report(s)): {int(s['images'])} image(s), "
        f"{int(s['manifests'])} manifest(s), {int(s['blobs'])} blob(s) "
        f"({int(s['mounted'])} mounted), {human_bytes(int(s['bytes']))} copied"
    )
    if s["failed"] or s["not_run"]:
        line += f"; {int(s['failed'])} failed, {int(s['not_run'])} not run"
    missing = (
        f"Missing: the report of shard(s) {', '.join(map(str, merged.missing_shards))}."
        if merged.missing_shards
        else ""
    )
    if fmt == "json":
        body = {
            "ok": merged.ok,
            "summary": s,
            "missing_shards": list(merged.missing_shards),
            "reports": [r.path for r in merged.reports],
            "failed": merged.failed,
        }
        return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "markdown":
        from regplan.textsafe import markdown_code

        out = [f"### {'✅' if merged.ok else '❌'} {line}.", ""]
        if missing:
            out += [f"> [!WARNING]\n> {missing}", ""]
        if merged.failed:
            out += ["| action | target | error |", "|---|---|---|"]
            out += [
                f"| {markdown_code(f['id'], in_table=True)} "
                f"| {markdown_code(f['target'], in_table=True)} "
                f"| {markdown_code(f['detail'], in_table=True)} |"
                for f in merged.failed[:200]
            ]
            if len(merged.failed) > 200:
                out.append(f"\n… {len(merged.failed) - 200} more — see the reports")
        return "\n".join(out) + "\n"
    from regplan.textsafe import terminal as terminal_safe

    out = [line + "."]
    if missing:
        out.append(missing)
    out += [
        f"  failed {terminal_safe(f['id'])} {terminal_safe(f['target'])}: "
        f"{terminal_safe(f['detail'])}"
        for f in merged.failed
    ]
    return "\n".join(out) + "\n"
