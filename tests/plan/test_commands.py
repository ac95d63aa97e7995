"""The plan-file commands on the bundled example (OCI Layouts, no registry): show in every
format, and apply's --max-age."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from regplan.plan import planfile
from regplan.plan.planfile import integrity_of, save_plan
from tests.regplan_cli import REPO_ROOT, regplan


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The bundled example copied into a temp dir (targets land in its demo-target/)."""
    shutil.copytree(REPO_ROOT / "fixtures" / "example", tmp_path / "fixtures" / "example")
    return tmp_path


def test_show_renders_a_saved_plan_in_every_format(example: Path) -> None:
    config = "fixtures/example/regplan.yml"
    assert regplan("plan", "-c", config, "-o", "plan.json", cwd=example).code == 0
    text = regplan("show", "plan.json", cwd=example)
    assert (
        text.code == 0
        and "ocidir://demo-target/app:1.0" in text.stdout
        and "Plan: 3 to create" in text.stdout
    )
    markdown = regplan("show", "plan.json", "--format", "markdown", cwd=example)
    assert (
        markdown.stdout.startswith("### regplan plan: 3 to create")
        and "<details>" in markdown.stdout
    )
    as_json = regplan("show", "plan.json", "--format", "json", cwd=example)
    assert orjson.loads(as_json.stdout) == orjson.loads((example / "plan.json").read_bytes())
    assert text.stderr == "" and markdown.stderr == ""  # nothing but the result, on stdout


def test_max_age_refuses_an_old_plan(example: Path) -> None:
    config = "fixtures/example/regplan.yml"
    assert regplan("plan", "-c", config, "-o", "plan.json", cwd=example).code == 0
    body = orjson.loads((example / "plan.json").read_bytes())
    body["created_at"] = "2020-01-01T00:00:00Z"
    body["integrity"] = integrity_of(body)
    save_plan(planfile.decode(orjson.dumps(body)), example / "old.json")
    refused = regplan("apply", "old.json", "--max-age", "2h", cwd=example)
    assert refused.code == 1 and "older than --max-age 2h" in refused.stderr
    assert not (example / "demo-target").exists()
    fresh = regplan("apply", "plan.json", "--max-age", "2h", cwd=example)
    assert fresh.code == 0, str(fresh)
    assert (example / "demo-target" / "app" / "index.json").exists()
