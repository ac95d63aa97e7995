"""An apply keeps the plan and its own scheduler state out of the collector's full scans
while it walks, and hands them back when the last of several overlapping runs ends."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from regplan import collector
from regplan.apply.applier import ApplyOptions, apply_plan
from regplan.registry.client import RegistryClient
from regplan.registry.ocidir.backend import OCIDirBackend
from tests.concurrency import layouts
from tests.plan.test_planner_ocidir import config, plan_of, step, tags_of


def test_overlapping_runs_thaw_only_when_the_last_one_ends() -> None:
    gc.unfreeze()
    first, second = collector.frozen(), collector.frozen()
    first.__enter__()
    held = [object()]  # created after the first freeze: frozen by the second
    second.__enter__()
    assert gc.get_freeze_count() > 0
    first.__exit__(None, None, None)  # the first run ends while the second still walks
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0
    assert held


def test_the_walk_runs_with_the_plan_frozen_and_thaws_it_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    layouts.make_source(source, [f"t{i}" for i in range(6)], layer_size=64)
    plan = plan_of(
        config(step(0, f"ocidir://{source}", f"ocidir://{tmp_path / 'target'}", "repository"))
    )
    gc.unfreeze()
    seen: list[int] = []
    original = OCIDirBackend.manifest_put

    def put_recorded(self: OCIDirBackend, ref: object, manifest: object) -> bool:
        seen.append(gc.get_freeze_count())
        return original(self, ref, manifest)  # type: ignore[arg-type]

    monkeypatch.setattr(OCIDirBackend, "manifest_put", put_recorded)
    assert apply_plan(plan, RegistryClient(), ApplyOptions(parallel=2)).ok
    # every action (and everything else alive when the walk began) was left out of scans
    assert seen and min(seen) > len(plan.actions)
    assert gc.get_freeze_count() == 0
    assert tags_of(tmp_path / "target") == tags_of(source)
