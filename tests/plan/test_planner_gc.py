"""Planning makes the collector's full scans rarer while it runs, and gives the setting back
when the last of several concurrent plans ends."""

from __future__ import annotations

import gc

from regplan.plan import planner


def test_overlapping_plans_restore_the_collector_setting_once_all_end() -> None:
    before = gc.get_threshold()
    first, second = planner._fewer_collections(), planner._fewer_collections()
    first.__enter__()
    assert gc.get_threshold()[0] >= planner._PLANNING_GC_THRESHOLD
    second.__enter__()
    first.__exit__(None, None, None)  # the first ends while the second still runs
    assert gc.get_threshold()[0] >= planner._PLANNING_GC_THRESHOLD
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
