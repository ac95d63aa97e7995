"""The names an apply gives each action's end, as reports, result lines and logs spell them."""

from __future__ import annotations

from enum import StrEnum


class ActionStatus(StrEnum):
    """How one plan action ended in an apply (`status` in `--report` files).

    A failed action is "failed" here, while the planner names a step's image that could not
    be planned "error" (its own status set): both strings are in users' reports and JSON
    today, so each keeps its spelling and this enum makes the difference explicit.
    """

    DONE = "done"  # written (copied, mounted, pushed, tagged, deleted)
    SKIPPED = "skipped"  # nothing to do: already there
    FAILED = "failed"
    NOT_RUN = "not-run"  # a dependency failed, or the run stopped first
