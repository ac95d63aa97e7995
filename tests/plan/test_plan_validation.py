"""Crafted plans whose dependency graph or creation time is unusable are plan errors, named in
one line, before anything is read or written (the bundled example: OCI Layouts, no registry)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from regplan.plan.planfile import integrity_of
from tests.regplan_cli import REPO_ROOT, regplan

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "fixtures" / "example", tmp_path / "fixtures" / "example")
    made = regplan("plan", "-c", "fixtures/example/regplan.yml", "-o", "plan.json", cwd=tmp_path)
    assert made.code == 0, str(made)
    return tmp_path


def _duplicate_id(body: dict[str, Any]) -> None:
    tag = next(a for a in body["actions"] if a["kind"] == "tag")
    body["actions"][0]["id"] = tag["id"]


def _cycle(body: dict[str, Any]) -> None:
    tag = next(a for a in body["actions"] if a["kind"] == "tag" and a["depends_on"])
    first = next(a for a in body["actions"] if a["id"] == tag["depends_on"][0])
    first["depends_on"] = [*first.get("depends_on", []), tag["id"]]


def _dangling(body: dict[str, Any]) -> None:
    body["actions"][-1]["depends_on"] = ["a999"]


def _bad_time(body: dict[str, Any]) -> None:
    body["created_at"] = "yesterday"


CASES: dict[str, tuple[Edit, list[str], str]] = {
    "duplicate id": (_duplicate_id, [], "appears twice"),
    "cycle": (_cycle, [], "dependency cycle: a"),
    "dangling dependency": (_dangling, [], "depends on unknown action a999"),
    "unparsable created_at with --max-age": (
        _bad_time,
        ["--max-age", "2h"],
        "created_at 'yesterday' is not a UTC time",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_unusable_plan_is_a_clear_error_before_any_write(example: Path, case: str) -> None:
    edit, args, expected = CASES[case]
    body = orjson.loads((example / "plan.json").read_bytes())
    edit(body)
    body.pop("integrity")
    body["integrity"] = integrity_of(body)
    (example / "crafted.json").write_bytes(orjson.dumps(body))
    result = regplan("apply", "crafted.json", *args, cwd=example)
    assert result.code == 1, str(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regplan: error: "), str(result)
    assert expected in lines[0] and "internal error" not in lines[0]
    assert "Apply complete" not in result.stdout
    assert not (example / "demo-target").exists()
