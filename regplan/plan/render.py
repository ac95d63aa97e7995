"""Views of a plan for people: a terminal table, a pull-request comment, or the JSON file.

Pure functions of a Plan: rendering never talks to a registry. Every datum in a plan (tags,
repositories, annotations, artifact types, registry error texts) is escaped for its medium by
regplan.textsafe; only regplan's own words and layout are markup. Action kinds are described by
the tables below, so a new kind is one entry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from regplan import textsafe
from regplan.plan import model, planfile
from regplan.plan.model import Action, Plan, StepSummary
from regplan.units import human_bytes

DEFAULT_MARKDOWN_LIMIT = 60_000  # characters; GitHub refuses comments over 65,536

# What a row shows for each reason (tags) or kind (everything else people review).
_SYMBOL: dict[str, str] = {
    model.CREATE: "+",
    model.UPDATE: "~",
    model.REFRESH: "=",
    model.Reason.CONTENT_LACKING: "+",
    model.PRUNE: "-",
}
_HIDDEN_KINDS = frozenset({model.BLOB, model.MANIFEST})  # counted in totals, not rows
_KIND_ORDER = {kind: i for i, kind in enumerate(model.KINDS)}


class Colour(StrEnum):
    """SGR colours of the text view on a terminal."""

    GREEN = "32"
    YELLOW = "33"
    RED = "31"
    BOLD = "1"


_REASON_COLOUR: dict[str, Colour] = {
    model.CREATE: Colour.GREEN,
    model.Reason.CONTENT_LACKING: Colour.GREEN,
    model.UPDATE: Colour.YELLOW,
    model.PRUNE: Colour.RED,
}


def short(digest: str | None) -> str:
    if not digest:
        return "-"
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


# -- the headline ----------------------------------------------------------------------------
def _failed_steps(plan: Plan) -> list[StepSummary]:
    return [s for s in plan.steps if s.errors]


def _changes(plan: Plan) -> str:
    s = plan.summary
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
    return (
        f"{', '.join(parts)}; {s.manifests} manifest(s), {s.blobs} blob(s), "
        f"{human_bytes(s.bytes)} to copy."
    )


def _no_changes(plan: Plan) -> str:
    if plan.mode == model.Mode.ABSENT_TAGS_ONLY:
        return "No changes. Every selected tag already exists on the target (--missing does not compare digests)."
    return "No changes. The targets match the sources."


def headline(plan: Plan) -> str:
    """What the plan amounts to, in one line without a "Plan:" label."""
    failed = _failed_steps(plan)
    if not failed:
        return _changes(plan) if plan.has_changes else _no_changes(plan)
    errors = sum(len(s.errors) for s in failed)
    line = f"Planning failed for {len(failed)} of {len(plan.steps)} step(s) ({errors} error(s))"
    if len(failed) == len(plan.steps) and not plan.has_changes:
        return f"{line}: nothing could be compared."
    if not plan.has_changes:
        return f"{line}; the other steps have no changes."
    return f"{line}. For the rest: {_changes(plan)}"


def summary_line(plan: Plan) -> str:
    """The headline as the text view's last line and watch's run summary."""
    line = headline(plan)
    return f"Plan: {line}" if plan.has_changes and not _failed_steps(plan) else line


def _step_counts(step: StepSummary) -> str:
    compared = step.to_sync + step.up_to_date
    if step.errors and compared == 0:
        return "planning failed: nothing could be compared"
    if step.errors:
        # failures first, and no "0 to sync" that reads as "all is well"
        counts = [(len(step.errors), "failed"), (step.to_sync, "to sync")]
        counts += [(step.up_to_date, "up to date"), (len(step.skipped), "skipped")]
        parts = [f"{n} {what}" for n, what in counts if n]
    else:
        parts = [f"{step.to_sync} to sync", f"{step.up_to_date} up to date"]
        if step.skipped:
            parts.append(f"{len(step.skipped)} skipped")
    return f"{step.images} image(s): {', '.join(parts)}"


# -- rows ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One reviewed action as the columns show it (raw data; each view escapes it)."""

    symbol: str
    label: str
    target: str
    source: str
    change: str
    size: str
    reason: str


def _label(action: Action) -> str:
    return action.reason if action.kind == model.TAG else action.kind


def _visible(plan: Plan) -> dict[int, list[Action]]:
    """Actions people review, by their first step, sorted by target (plan order is
    dependency order, which is no order to read a list in)."""
    by_step: dict[int, list[Action]] = defaultdict(list)
    for action in plan.actions:
        if action.kind not in _HIDDEN_KINDS:
            by_step[action.steps[0] if action.steps else -1].append(action)
    for actions in by_step.values():
        actions.sort(key=lambda a: (a.target, _KIND_ORDER.get(a.kind, 99), a.id))
    return by_step


@dataclass(frozen=True)
class _Sizes:
    """Bytes each image moves, and which images lean on blobs another image's row counts."""

    own: dict[str, int]
    shares: frozenset[str]

    @classmethod
    def of(cls, plan: Plan) -> _Sizes:
        own: dict[str, int] = defaultdict(int)
        for action in plan.actions:
            own[action.group] += action.bytes
        by_id = {a.id: a for a in plan.actions}
        shares: set[str] = set()
        for top in plan.actions:
            if top.kind != model.TAG or top.group in shares:
                continue
            seen: set[str] = set()
            todo = list(top.depends_on)
            while todo:
                dep = by_id.get(todo.pop())
                if dep is None or dep.id in seen:
                    continue
                seen.add(dep.id)
                if dep.kind == model.BLOB and dep.bytes and dep.group != top.group:
                    shares.add(top.group)
                    break
                todo.extend(dep.depends_on)
        return cls(dict(own), frozenset(shares))

    def column(self, action: Action) -> str:
        if action.kind != model.TAG:
            return ""
        own = self.own.get(action.group, 0)
        if action.group in self.shares:
            # its blobs are also another tag's, and counted on that row
            return f"{human_bytes(own)} + shared" if own else "(shared)"
        return human_bytes(own)


def _row(action: Action, sizes: _Sizes) -> Row:
    detail = action.source
    if action.kind == model.REFERRER:
        detail = f"for {short(action.subject)}" + (
            f" ({action.artifact_type})" if action.artifact_type else ""
        )
    elif action.kind == model.DIGEST_TAG and action.subject:
        detail = f"referrers of {short(action.subject)}"  # the fallback index, built by plan
    elif action.source_tag:
        detail = f"{action.source.split('@', 1)[0]}:{action.source_tag}"
    if action.platform:
        detail += f" [{action.platform}]"
    if action.kind == model.DELETE:
        by = " (by digest)" if action.delete_by == model.BY_DIGEST else ""
        return Row(
            symbol=_SYMBOL[model.PRUNE],
            label="delete",
            target=action.target,
            source=f"not in the source set{by}",
            change=short(action.before),
            size="",
            reason=action.reason,
        )
    change = short(action.digest)
    if action.kind in model.TAG_KINDS and action.before:
        change = f"{short(action.before)} -> {short(action.digest)}"
    target = action.target if action.kind in model.TAG_KINDS else action.target.split("@", 1)[0]
    return Row(
        symbol=_SYMBOL.get(action.reason, " "),
        label=_label(action),
        target=target,
        source=detail,
        change=change,
        size=sizes.column(action),
        reason=action.reason,
    )


def _overwrites(plan: Plan) -> list[Action]:
    """Tags whose current content is replaced: the registry's equivalent of a destroy. A
    backup overwrites the previous backup."""
    return sorted(
        (
            a
            for a in plan.actions
            if a.kind in model.TAG_KINDS and a.reason == model.UPDATE and a.before
        ),
        key=lambda a: a.target,
    )


@dataclass(frozen=True)
class _Sections:
    """Which steps get a section of their own: those with something to review; the rest
    are counted in one line, unless every step is asked for."""

    shown: tuple[StepSummary, ...]
    quiet: tuple[StepSummary, ...]

    @classmethod
    def of(
        cls, plan: Plan, visible: dict[int, list[Action]], *, explain: bool, all_steps: bool
    ) -> _Sections:
        shown: list[StepSummary] = []
        quiet: list[StepSummary] = []
        for step in plan.steps:
            busy = (
                bool(visible.get(step.index))
                or bool(step.errors)
                or step.to_sync > 0
                or (explain and bool(step.dropped or step.skipped))
            )
            (shown if busy or all_steps else quiet).append(step)
        return cls(tuple(shown), tuple(quiet))

    def quiet_line(self, mode: str) -> str:
        if not self.quiet:
            return ""
        hint = "-v debug lists every step."
        if (
            mode == model.Mode.ABSENT_TAGS_ONLY
        ):  # nothing was compared: "up to date" would claim too much
            present = sum(len(s.skipped) + s.up_to_date for s in self.quiet)
            return (
                f"{len(self.quiet)} step(s) with nothing missing "
                f"({present} tag(s) already on the target); {hint}"
            )
        images = sum(s.images for s in self.quiet)
        return f"{len(self.quiet)} step(s) up to date ({images} image(s)); {hint}"


# -- text ------------------------------------------------------------------------------------
def _paint(text: str, colour: Colour | None, enabled: bool) -> str:
    return f"\x1b[{colour.value}m{text}\x1b[0m" if enabled and colour else text


def _table(rows: Sequence[Sequence[str]], right: frozenset[int]) -> list[str]:
    """Columns padded to their widest cell; no wrapping: a terminal folds long lines itself,
    and a CI log or a pipe gets whole lines `grep` can find."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(r)
        ]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out


_COLUMNS = ("action", "target", "source", "digest", "bytes")


def render_text(
    plan: Plan, *, explain: bool = False, colour: bool = False, all_steps: bool = False
) -> str:
    t = textsafe.terminal
    lines: list[str] = []
    visible = _visible(plan)
    sizes = _Sizes.of(plan)
    sections = _Sections.of(plan, visible, explain=explain, all_steps=all_steps)
    for step in sections.shown:
        lines.append(
            _paint(f"{t(step.name)} ({t(step.type)}: {_step_counts(step)})", Colour.BOLD, colour)
        )
        if step.rate_limit:
            lines.append(
                f"  source rate limit: {step.rate_limit.get('remaining')} pulls remaining"
                + (f" of {step.rate_limit['limit']}" if "limit" in step.rate_limit else "")
            )
        for error in step.errors:
            lines.append(_paint(f"  ERROR {t(error)}", Colour.RED, colour))
        rows = [_row(a, sizes) for a in visible.get(step.index, [])]
        if rows:
            cells = [
                (f"{r.symbol} {r.label}", t(r.target), t(r.source), r.change, r.size) for r in rows
            ]
            table = _table([_COLUMNS, *cells], right=frozenset({4}))
            lines.append(table[0])
            for r, line in zip(rows, table[1:], strict=True):
                lines.append(_paint(line, _REASON_COLOUR.get(r.reason), colour))
        if explain and step.dropped:
            lines.append("  dropped by filters:")
            for d in step.dropped:
                lines.append(f"    {t(d.get('tag') or d.get('repository') or '')}: {t(d['why'])}")
        if explain and step.pruning:
            lines.append("  prune decisions:")
            for d in step.pruning:
                lines.append(f"    {t(d['tag'])}: {t(d['decision'])} ({t(d['why'])})")
        if explain and step.skipped:
            lines.append("  skipped:")
            for d in step.skipped:
                lines.append(f"    {t(d.get('ref', ''))}: {t(d.get('why', ''))}")
    if sections.quiet:
        lines.append(sections.quiet_line(plan.mode))
    for warning in plan.warnings:
        lines.append(_paint(f"warning: {t(warning)}", Colour.YELLOW, colour))
    for a in _overwrites(plan):
        if a.kind == model.BACKUP:
            lines.append(
                _paint(
                    f"warning: backup {t(a.target)} overwrites the previous backup {short(a.before)}",
                    Colour.YELLOW,
                    colour,
                )
            )
    last = Colour.RED if _failed_steps(plan) else Colour.BOLD
    lines.append(_paint(summary_line(plan), last, colour))
    return "\n".join(lines) + "\n"


# -- markdown --------------------------------------------------------------------------------
def _md_row(r: Row) -> str:
    def c(text: str) -> str:
        return textsafe.markdown_code(text, in_table=True)

    return f"| {r.label} | {c(r.target)} | {c(r.source)} | {c(r.change)} | {r.size} |"


@dataclass(frozen=True)
class _StepSection:
    head: tuple[str, ...]
    rows: tuple[str, ...]
    tail: tuple[str, ...]

    def lines(self, keep: int | None) -> list[str]:
        out = list(self.head)
        if self.rows:
            shown = self.rows if keep is None else self.rows[:keep]
            out += ["| action | target | source | digest | bytes |", "|---|---|---|---|---:|"]
            out += shown
            if len(shown) < len(self.rows):
                out.append("")
                out.append(f"… {len(self.rows) - len(shown)} more — see the plan artifact")
            out.append("")
        out += self.tail
        return out


def _markdown_head(plan: Plan) -> tuple[list[str], list[str]]:
    """The headline, then the warning and error blocks: always whole when they fit. Returns
    (whole, list items that may be cut only if the block alone is over the limit)."""
    md, code = textsafe.markdown_text, textsafe.markdown_code
    lines = [f"### regplan plan: {headline(plan)}", ""]
    deletes = sorted((a for a in plan.actions if a.kind == model.DELETE), key=lambda a: a.target)
    if deletes:
        # first, as Terraform shows a destroy: the change a reviewer must not miss
        lines += ["> [!WARNING]", f"> {len(deletes)} tag(s) will be **deleted**:"]
        lines += [f"> - {code(a.target)} (`{short(a.before)}`)" for a in deletes]
        lines.append("")
    overwrites = _overwrites(plan)
    # a backup serves the image whose tag it saves: the same group (several tags may share
    # the digest they held before, so that is no key)
    backups = {a.group: a.target for a in plan.actions if a.kind == model.BACKUP}
    items: list[str] = []
    if overwrites or plan.warnings:
        lines.append("> [!WARNING]")
        if overwrites:
            lines.append(f"> {len(overwrites)} tag(s) will be **overwritten**:")
        for a in overwrites:
            if a.kind == model.BACKUP:
                note = " (the previous backup)"
            else:
                backup = backups.get(a.group)
                note = f" (backup: {code(backup)})" if backup else " (no backup)"
            items.append(f"> - {code(a.target)}: `{short(a.before)}` → `{short(a.digest)}`{note}")
        items += [f"> - warning: {md(w)}" for w in plan.warnings]
        items.append("")
    errors = plan.errors
    if errors:
        items += ["> [!CAUTION]", f"> {len(errors)} error(s) while planning:"]
        items += [f"> - {code(e)}" for e in errors]
        items.append("")
    return lines, items


def _step_section(
    step: StepSummary, actions: list[Action], sizes: _Sizes, *, explain: bool
) -> _StepSection:
    code = textsafe.markdown_code
    line = f"{_step_counts(step)}."
    if step.rate_limit:
        line += f" Source rate limit: {step.rate_limit.get('remaining')} pulls remaining."
    head = (f"#### {code(step.name)}", line, "")
    rows = tuple(_md_row(_row(a, sizes)) for a in actions)
    tail: list[str] = []
    if explain and step.dropped:
        tail.append("Dropped by filters:")
        tail += [
            f"- {code(d.get('tag') or d.get('repository') or '')}: {code(d['why'])}"
            for d in step.dropped
        ]
        tail.append("")
    if explain and step.pruning:
        tail.append("Prune decisions:")
        tail += [
            f"- {code(d['tag'])}: {code(d['decision'])} ({code(d['why'])})" for d in step.pruning
        ]
        tail.append("")
    return _StepSection(head, rows, tuple(tail))


def _fit(sections: Sequence[_StepSection], budget: int) -> int | None:
    """The most rows per step that keeps the sections within `budget` characters (None:
    every row fits)."""

    def size(keep: int | None) -> int:
        return sum(len(line) + 1 for s in sections for line in s.lines(keep))

    if size(None) <= budget:
        return None
    low, high = 0, max((len(s.rows) for s in sections), default=0)
    while low < high:
        mid = (low + high + 1) // 2
        if size(mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def _within(
    lines: Iterable[str], budget: int, more: str, counts: Callable[[str], bool] = bool
) -> list[str]:
    """As many whole lines as fit in `budget`, then `more`, naming how many of the lines
    left out `counts` (list entries, not the blank lines between blocks)."""
    out: list[str] = []
    lines = list(lines)
    used = 0
    for i, line in enumerate(lines):
        note = more.format(sum(1 for rest in lines[i:] if counts(rest)))
        if used + len(line) + 1 + len(note) + 1 > budget:
            return [*out, note]
        out.append(line)
        used += len(line) + 1
    return out


def render_markdown(
    plan: Plan,
    *,
    explain: bool = False,
    all_steps: bool = False,
    limit: int = DEFAULT_MARKDOWN_LIMIT,
) -> str:
    """A PR comment of at most `limit` characters: the headline, warnings and errors whole
    (cut only if they alone are over the limit), then rows cut evenly per step."""
    code = textsafe.markdown_code
    head, items = _markdown_head(plan)
    lines = head + items
    if len("\n".join(lines)) + 1 > limit:
        lines = head + _within(
            items,
            limit - len("\n".join(head)) - 1,
            "> … {} more — see the plan artifact",
            counts=lambda line: line.startswith("> - "),
        )
        return "\n".join(lines) + "\n"
    if plan.has_changes or explain or plan.errors:
        visible = _visible(plan)
        sizes = _Sizes.of(plan)
        chosen = _Sections.of(plan, visible, explain=explain, all_steps=all_steps)
        sections = [
            _step_section(s, visible.get(s.index, []), sizes, explain=explain) for s in chosen.shown
        ]
        s = plan.summary
        tail = []
        if chosen.quiet:
            tail += [chosen.quiet_line(plan.mode), ""]
        tail += [
            f"Totals: {s.images} image(s), {s.manifests} manifest(s), {s.blobs} blob(s), "
            f"{human_bytes(s.bytes)}. Mode `{plan.mode}`, config {code(plan.config_path)} "
            f"(`{short(plan.config_digest)}`), planned {code(plan.created_at)}.",
            "",
            "</details>",
        ]
        opening = ["<details><summary>Plan details</summary>", ""]
        fixed = len("\n".join([*lines, *opening, *tail])) + 2
        keep = _fit(sections, limit - fixed)
        body = [line for section in sections for line in section.lines(keep)]
        if keep == 0 and len("\n".join(body)) + fixed > limit:
            body = _within(body, limit - fixed, "… {} more line(s) — see the plan artifact")
        lines += [*opening, *body, *tail]
    return "\n".join(lines) + "\n"


def render(
    plan: Plan,
    fmt: str,
    *,
    explain: bool = False,
    colour: bool = False,
    all_steps: bool = False,
    markdown_limit: int = DEFAULT_MARKDOWN_LIMIT,
) -> str:
    if fmt == "json":
        return planfile.encode(plan).decode()
    if fmt == "markdown":
        return render_markdown(plan, explain=explain, all_steps=all_steps, limit=markdown_limit)
    return render_text(plan, explain=explain, colour=colour, all_steps=all_steps)
