"""One run of one step (StepRunner) on OCI Layouts: outcomes, counts, audit files, rate limits."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from regplan.cancel import CancelToken
from regplan.config.model import Config, Defaults, RateLimit, SyncStep
from regplan.plan.planfile import load_plan
from regplan.watch.runs import (
    CANCELLED,
    FAILURE,
    FULL,
    MISSING,
    SUCCESS,
    RunContext,
    RunControls,
    StepRunner,
)
from tests.watch.hooked import HookedClient, layout_tags

pytestmark = pytest.mark.timeout(30)


def controls(**kw: object) -> RunControls:
    values: dict[str, object] = {
        "drain": threading.Event(),
        "cancel": CancelToken(),
        "slots": threading.Semaphore(1),
    }
    values.update(kw)
    return RunControls(**values)  # type: ignore[arg-type]


def context(client: HookedClient, *steps: SyncStep) -> RunContext:
    return RunContext(Config("t.yml", "sha256:" + "0" * 64, 1, (), Defaults(), steps), client)


def image_step(src: Path, dst: Path, tag: str = "v1", **kw: object) -> SyncStep:
    return SyncStep(
        index=0,
        line=0,
        source=f"ocidir://{src}:{tag}",
        target=f"ocidir://{dst}:{tag}",
        type="image",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def src(ocidir_copy: Path) -> Path:
    return ocidir_copy / "testrepo"


def test_a_run_copies_and_keeps_its_plan_and_report(src: Path, tmp_path: Path) -> None:
    client = HookedClient()
    step = image_step(src, tmp_path / "dst")
    plans = tmp_path / "plans"
    plans.mkdir()
    runner = StepRunner(controls(plan_dir=plans))

    first = runner.run(context(client, step), step, MISSING)
    assert (first.outcome, first.mode, first.errors) == (SUCCESS, MISSING, ())
    assert first.copied.images == 1 and first.copied.blobs > 0 and first.copied.bytes > 0
    assert first.summary.startswith("Plan: 1 to create")
    assert layout_tags(tmp_path / "dst") == {"v1": layout_tags(src)["v1"]}

    again = runner.run(context(client, step), step, FULL)
    assert (again.outcome, again.copied.images) == (SUCCESS, 0)
    assert again.summary.startswith("No changes")

    files = sorted(p.name for p in plans.iterdir())
    assert [f.split("-", 1)[1] for f in files] == [
        "r000001-step0-missing.plan.json",
        "r000001-step0-missing.report.json",
        "r000002-step0-full.plan.json",  # nothing applied: no report
    ]
    plan = load_plan(plans / files[0])
    assert plan.mode == "missing" and plan.has_changes
    report = orjson.loads((plans / files[1]).read_bytes())
    assert report["ok"] and report["summary"]["images"] == 1


def test_a_run_planned_during_shutdown_is_not_applied(src: Path, tmp_path: Path) -> None:
    c = controls()
    c.drain.set()
    step = image_step(src, tmp_path / "dst")
    result = StepRunner(c).run(context(HookedClient(), step), step, MISSING)
    assert (result.outcome, result.errors, result.copied.images) == (CANCELLED, (), 0)
    assert layout_tags(tmp_path / "dst") == {}


def test_a_failing_run_reports_its_errors(src: Path, tmp_path: Path) -> None:
    step = image_step(src, tmp_path / "dst", tag="no-such-tag")
    result = StepRunner(controls()).run(context(HookedClient(), step), step, FULL)
    assert result.outcome == FAILURE
    assert len(result.errors) == 1 and "no-such-tag" in result.errors[0]


def test_rate_limit_deferrals_are_reported_per_step(src: Path, tmp_path: Path) -> None:
    client = HookedClient()
    v1 = layout_tags(src)["v1"]
    client.remaining[v1] = 1
    delayed: list[int] = []

    def on_delay(index: int) -> None:
        delayed.append(index)
        client.remaining[v1] = 500

    # Built directly: the config loader would raise a retry this short to regsync's 5 minutes.
    step = image_step(src, tmp_path / "dst", ratelimit=RateLimit(min=10, retry=0.2))
    result = StepRunner(controls(), on_rate_limit_delay=on_delay).run(
        context(client, step), step, FULL
    )
    assert result.outcome == SUCCESS and delayed == [0]
