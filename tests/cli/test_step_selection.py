"""`--step` on plan / apply / once / check: only the selected sync steps are planned and
written, and a saved plan records the selection."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from regplan.plan import model
from tests.cli.conftest import EXAMPLE
from tests.regplan_cli import regplan

PLAN_SCHEMA = json.loads((Path(model.__file__).parent / "schema.json").read_text())


def targets(root: Path) -> set[str]:
    base = root / "demo-target"
    return {p.name for p in base.iterdir()} if base.exists() else set()


def test_plan_with_step_records_it_and_apply_writes_only_that_step(example: Path) -> None:
    made = regplan("plan", "-c", EXAMPLE, "--step", "1", "-o", "plan.json", cwd=example)
    assert made.code == 0, str(made)
    assert "sync[0]" not in made.stdout and "sync[1]" in made.stdout
    body = orjson.loads((example / "plan.json").read_bytes())
    jsonschema.validate(body, PLAN_SCHEMA)
    assert body["selected_steps"] == [1]
    assert [s["index"] for s in body["steps"]] == [1]
    shown = regplan("show", "plan.json", "--format", "json", cwd=example)
    assert orjson.loads(shown.stdout)["selected_steps"] == [1]

    applied = regplan("apply", "plan.json", cwd=example)
    assert applied.code == 0, str(applied)
    assert targets(example) == {"tools"}


def test_a_plan_without_step_has_no_selection(example: Path) -> None:
    assert regplan("plan", "-c", EXAMPLE, "-o", "plan.json", cwd=example).code == 0
    assert "selected_steps" not in orjson.loads((example / "plan.json").read_bytes())


@pytest.mark.parametrize(
    ("selector", "steps"),
    [
        ("ocidir://demo-target/app", [0]),
        ("ocidir://demo-target/tools:*", [1]),
        ("ocidir://demo-target/*", [0, 1]),
    ],
)
def test_step_by_target_glob(example: Path, selector: str, steps: list[int]) -> None:
    made = regplan("plan", "-c", EXAMPLE, "--step", selector, "-o", "p.json", cwd=example)
    assert made.code == 0, str(made)
    body = orjson.loads((example / "p.json").read_bytes())
    assert body["selected_steps"] == steps and [s["index"] for s in body["steps"]] == steps


def test_step_is_repeatable(example: Path) -> None:
    made = regplan("plan", "-c", EXAMPLE, "--step", "1", "--step", "0", "-o", "p.json", cwd=example)
    assert made.code == 0
    assert orjson.loads((example / "p.json").read_bytes())["selected_steps"] == [0, 1]


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("5", "--step 5: no such step (the config has sync[0] to sync[1])"),
        ("registry.example.org/*", "--step 'registry.example.org/*': matches no step's target"),
    ],
)
def test_a_step_that_names_nothing_is_a_usage_error(
    example: Path, selector: str, message: str
) -> None:
    result = regplan("plan", "-c", EXAMPLE, "--step", selector, "-o", "p.json", cwd=example)
    assert result.code == 2
    assert result.stderr.strip().splitlines()[-1] == f"regplan: error: {message}"
    assert not (example / "p.json").exists()


def test_apply_and_once_with_step(example: Path) -> None:
    applied = regplan("apply", "-c", EXAMPLE, "--auto-approve", "--step", "0", cwd=example)
    assert applied.code == 0, str(applied)
    assert targets(example) == {"app"}
    once = regplan("once", "-c", EXAMPLE, "--step", "1", cwd=example)
    assert once.code == 0, str(once)
    assert targets(example) == {"app", "tools"}


def test_check_with_step(example: Path) -> None:
    result = regplan("check", "-c", EXAMPLE, "--step", "1", "--format", "json", cwd=example)
    assert result.code == 0, str(result)
    report = orjson.loads(result.stdout)
    assert [s["index"] for s in report["steps"]] == [1]
    assert (report["images"], report["to_sync"]) == (1, 1)


def test_step_with_a_saved_plan_is_refused(example: Path) -> None:
    assert regplan("plan", "-c", EXAMPLE, "-o", "plan.json", cwd=example).code == 0
    result = regplan("apply", "plan.json", "--step", "0", cwd=example)
    assert result.code == 2 and "a saved plan already holds only the steps" in result.stderr
    assert targets(example) == set()
