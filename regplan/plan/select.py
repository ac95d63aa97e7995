"""`--step`: which sync steps a command works on (Terraform's `-target`, for sync steps).

A selector is a step index as plans and logs show it (`2` for `sync[2]`) or a glob matched
against the step's target (`registry.example.org/mirror/*`). Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from regplan.config.model import SyncStep
from regplan.errors import UsageError


def _matches(selector: str, step: SyncStep) -> bool:
    if selector.isdigit():
        return int(selector) == step.index
    return fnmatch.fnmatchcase(step.target, selector)


def select_steps(steps: Sequence[SyncStep], selectors: Sequence[str]) -> tuple[int, ...] | None:
    """Indexes of the steps the selectors name, in file order; None when there is no selector
    (every step). A selector that names no step is a usage error: a typo must not quietly
    plan nothing."""
    if not selectors:
        return None
    chosen: set[int] = set()
    for selector in selectors:
        text = selector.strip()
        if not text:
            raise UsageError("--step needs a value: a step index or a target glob")
        hits = {s.index for s in steps if _matches(text, s)}
        if not hits:
            if text.isdigit():
                last = max((s.index for s in steps), default=-1)
                raise UsageError(
                    f"--step {text}: no such step (the config has sync[0] to sync[{last}])"
                )
            raise UsageError(f"--step {text!r}: matches no step's target")
        chosen |= hits
    return tuple(sorted(chosen))
