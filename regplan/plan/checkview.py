"""What `check` prints: per-step counts of images that need syncing, as text or JSON.

Pure functions of a (shallow) Plan.
"""

from __future__ import annotations

from typing import Any

import orjson

from regplan.plan.model import Plan

CHECK_FORMAT_VERSION = 1  # of `check --format json`; raised when a key changes meaning


def check_text(plan: Plan) -> str:
    images = sum(s.images for s in plan.steps)
    need = sum(s.to_sync for s in plan.steps)
    return (
        f"check: {need} of {images} image(s) need syncing; {plan.summary.up_to_date} up to date"
        + (f"; {len(plan.errors)} error(s)" if plan.errors else "")
        + "\n"
    )


def check_report(plan: Plan) -> dict[str, Any]:
    """The JSON view: totals, then one entry per step, errors as the one-line messages."""
    return {
        "check_format_version": CHECK_FORMAT_VERSION,
        "config": {"path": plan.config_path, "digest": plan.config_digest},
        "ok": not plan.errors,
        "in_sync": not plan.errors and all(s.to_sync == 0 for s in plan.steps),
        "images": sum(s.images for s in plan.steps),
        "to_sync": sum(s.to_sync for s in plan.steps),
        "up_to_date": sum(s.up_to_date for s in plan.steps),
        "errors": list(plan.errors),
        "steps": [
            {
                "index": s.index,
                "name": s.name,
                "type": s.type,
                "source": s.source,
                "target": s.target,
                "images": s.images,
                "to_sync": s.to_sync,
                "up_to_date": s.up_to_date,
                "skipped": list(s.skipped),
                "errors": list(s.errors),
            }
            for s in plan.steps
        ],
    }


def check_json(plan: Plan) -> str:
    return orjson.dumps(check_report(plan), option=orjson.OPT_INDENT_2).decode() + "\n"
