"""A delete is the change a reviewer must not miss: its own symbol and, on a terminal, red."""

from __future__ import annotations

from regplan.plan import model
from regplan.plan.model import Action, Plan, StepSummary
from regplan.plan.render import render_markdown, render_text

DIGEST = "sha256:" + "7" * 64


def plan_with_a_delete() -> Plan:
    delete = Action(
        id="a0",
        kind=model.DELETE,
        reason=model.PRUNE,
        target="registry.example.org/mirror/app:1.0",
        digest=DIGEST,
        media_type="application/vnd.oci.image.index.v1+json",
        size=0,
        source=f"registry.example.org/mirror/app@{DIGEST}",
        steps=(0,),
        group="a0",
        before=DIGEST,
        delete_by=model.BY_TAG,
    )
    step = StepSummary(
        index=0,
        name="sync[0]",
        type="repository",
        source="docker.io/library/app",
        target="registry.example.org/mirror/app",
        images=1,
        up_to_date=1,
    )
    return Plan(
        created_at="2026-12-01T00:00:00Z",
        config_path="/c.yml",
        config_digest="sha256:" + "0" * 64,
        mode="full",
        steps=(step,),
        actions=(delete,),
    )


def test_a_delete_row_is_red_on_a_terminal_and_plain_off_it() -> None:
    plan = plan_with_a_delete()
    coloured = [line for line in render_text(plan, colour=True).splitlines() if "delete" in line]
    row = next(line for line in coloured if "mirror/app:1.0" in line)
    assert row.startswith("\x1b[31m") and "- delete" in row, repr(row)
    plain = render_text(plan, colour=False)
    assert "\x1b[" not in plain and "- delete" in plain
    assert "1 to delete" in plain


def test_markdown_lists_deletes_first() -> None:
    text = render_markdown(plan_with_a_delete())
    # the warning block comes right after the headline, before any table of rows
    assert text.index("will be **deleted**") < text.index("| action")
    assert "`registry.example.org/mirror/app:1.0`" in text
