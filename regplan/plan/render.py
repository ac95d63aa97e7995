"""Views of a plan for people: a terminal table, a pull-request comment, or the JSON file.

Pure functions of a Plan: rendering never talks to a registry.
"""

from __future__ import annotations

import io
from collections import defaultdict

from regplan.plan import model
from regplan.plan.model import Action, Plan

_SYMBOL = {
    model.CREATE: "+",
    model.UPDATE: "~",
    model.REFRESH: "=",
    model.MISSING: "+",
    model.PRUNE: "-",
}


def short(digest: str | None) -> str:
    if not digest:
        return "-"
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _label(action: Action) -> str:
    if action.kind == model.TAG:
        return action.reason
    return action.kind


def summary_line(plan: Plan) -> str:
    s = plan.summary
    if not plan.has_changes:
        return "No changes. The targets match the sources." + (
            f" {s.errors} error(s)." if s.errors else ""
        )
    parts = [f"{s.tags_create} to create", f"{s.tags_update} to update (overwrite)"]
    if s.tags_refresh:
        parts.append(f"{s.tags_refresh} to refresh")
    if s.deletes:
        parts.append(f"{s.deletes} to delete")
    parts += [
        f"{s.backups} backup(s)",
        f"{s.referrers} referrer(s)",
        f"{s.digest_tags} digest tag(s)",
    ]
    line = f"Plan: {', '.join(parts)}; {s.manifests} manifest(s), {s.blobs} blob(s), {human_bytes(s.bytes)} to copy."
    if s.errors:
        line += f" {s.errors} error(s)."
    return line


def _visible(plan: Plan) -> dict[int, list[Action]]:
    """Actions people review (tags, backups, referrers, digest tags), by their first step."""
    by_step: dict[int, list[Action]] = defaultdict(list)
    for action in plan.actions:
        if action.kind in (model.BLOB, model.MANIFEST):
            continue
        by_step[action.steps[0] if action.steps else -1].append(action)
    return by_step


def _group_bytes(plan: Plan) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for action in plan.actions:
        out[action.group] += action.bytes
    return out


def _row(action: Action, group_bytes: dict[str, int]) -> tuple[str, str, str, str, str]:
    detail = action.source
    if action.kind == model.REFERRER:
        detail = f"for {short(action.subject)}" + (
            f" ({action.artifact_type})" if action.artifact_type else ""
        )
    elif action.source_tag:
        detail = f"{action.source.split('@', 1)[0]}:{action.source_tag}"
    if action.platform:
        detail += f" [{action.platform}]"
    if action.kind == model.DELETE:
        by = " (by digest)" if action.delete_by == model.BY_DIGEST else ""
        return ("delete", action.target, f"not in the source set{by}", short(action.before), "")
    change = short(action.digest)
    if action.kind in model.TAG_KINDS and action.before:
        change = f"{short(action.before)} -> {short(action.digest)}"
    size = human_bytes(group_bytes.get(action.group, 0)) if action.kind == model.TAG else ""
    target = action.target if action.kind in model.TAG_KINDS else action.target.split("@", 1)[0]
    return (_label(action), target, detail, change, size)


def render_text(plan: Plan, *, explain: bool = False, width: int | None = None) -> str:
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(file=out, width=width or 160, no_color=True, highlight=False, soft_wrap=False)
    visible = _visible(plan)
    group_bytes = _group_bytes(plan)
    for step in plan.steps:
        counts = f"{step.images} image(s), {step.up_to_date} up to date, {step.to_sync} to sync"
        if step.skipped:
            counts += f", {len(step.skipped)} skipped"
        console.print(f"{step.name} ({step.type}: {counts})")
        if step.rate_limit:
            console.print(
                f"  source rate limit: {step.rate_limit.get('remaining')} pulls remaining"
                + (f" of {step.rate_limit['limit']}" if "limit" in step.rate_limit else "")
            )
        for error in step.errors:
            console.print(f"  ERROR {error}")
        actions = visible.get(step.index, [])
        if actions:
            table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 2))
            for column in ("action", "target", "source", "digest", "bytes"):
                table.add_column(
                    column, overflow="fold", justify="right" if column == "bytes" else "left"
                )
            for action in actions:
                label, *rest = _row(action, group_bytes)
                table.add_row(f"{_SYMBOL.get(action.reason, ' ')} {label}", *rest)
            console.print(table)
        if explain and step.dropped:
            console.print("  dropped by filters:")
            for d in step.dropped:
                console.print(f"    {d.get('tag') or d.get('repository')}: {d['why']}")
        if explain and step.pruning:
            console.print("  prune decisions:")
            for d in step.pruning:
                console.print(f"    {d['tag']}: {d['decision']} ({d['why']})")
        if explain and step.skipped:
            console.print("  skipped:")
            for d in step.skipped:
                console.print(f"    {d['ref']}: {d['why']}")
    for warning in plan.warnings:
        console.print(f"warning: {warning}")
    console.print(summary_line(plan))
    return out.getvalue()


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(plan: Plan, *, explain: bool = False) -> str:
    lines = [f"### regplan plan: {summary_line(plan)}", ""]
    deletes = [a for a in plan.actions if a.kind == model.DELETE]
    if deletes:
        # first, as Terraform shows a destroy: the change a reviewer must not miss
        lines += ["> [!WARNING]", f"> {len(deletes)} tag(s) will be **deleted**:"]
        lines += [f"> - `{_md(a.target)}` (`{short(a.before)}`)" for a in deletes]
        lines.append("")
    overwrites = [
        a
        for a in plan.actions
        if a.kind in (model.TAG, model.DIGEST_TAG) and a.reason == model.UPDATE
    ]
    backups = {a.source: a.target for a in plan.actions if a.kind == model.BACKUP}
    if overwrites:
        lines += ["> [!WARNING]", f"> {len(overwrites)} tag(s) will be **overwritten**:"]
        for a in overwrites:
            backup = backups.get(a.target.rsplit(":", 1)[0] + "@" + (a.before or ""))
            lines.append(
                f"> - `{a.target}`: `{short(a.before)}` → `{short(a.digest)}`"
                + (f" (backup: `{backup}`)" if backup else " (no backup)")
            )
        lines.append("")
    errors = plan.errors
    if errors:
        lines += ["> [!CAUTION]", f"> {len(errors)} error(s) while planning:"]
        lines += [f"> - {_md(e)}" for e in errors]
        lines.append("")
    if plan.has_changes or explain:
        lines += ["<details><summary>Plan details</summary>", ""]
        visible = _visible(plan)
        group_bytes = _group_bytes(plan)
        for step in plan.steps:
            lines.append(f"#### `{_md(step.name)}`")
            line = f"{step.images} image(s), {step.up_to_date} up to date, {step.to_sync} to sync."
            if step.rate_limit:
                line += f" Source rate limit: {step.rate_limit.get('remaining')} pulls remaining."
            lines.append(line)
            lines.append("")
            actions = visible.get(step.index, [])
            if actions:
                lines += ["| action | target | source | digest | bytes |", "|---|---|---|---|---:|"]
                for action in actions:
                    label, target, source, change, size = _row(action, group_bytes)
                    lines.append(
                        f"| {label} | `{_md(target)}` | `{_md(source)}` | `{change}` | {size} |"
                    )
                lines.append("")
            if explain and step.dropped:
                lines.append("Dropped by filters:")
                lines += [
                    f"- `{d.get('tag') or d.get('repository')}`: {_md(d['why'])}"
                    for d in step.dropped
                ]
                lines.append("")
            if explain and step.pruning:
                lines.append("Prune decisions:")
                lines += [
                    f"- `{_md(d['tag'])}`: {d['decision']} ({_md(d['why'])})" for d in step.pruning
                ]
                lines.append("")
        s = plan.summary
        lines += [
            f"Totals: {s.images} image(s), {s.manifests} manifest(s), {s.blobs} blob(s), "
            f"{human_bytes(s.bytes)}. Mode `{plan.mode}`, config `{plan.config_path}` "
            f"(`{short(plan.config_digest)}`), planned {plan.created_at}.",
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def render(plan: Plan, fmt: str, *, explain: bool = False) -> str:
    if fmt == "json":
        return plan.to_bytes().decode()
    if fmt == "markdown":
        return render_markdown(plan, explain=explain)
    return render_text(plan, explain=explain)
