from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.regplan_cli import REPO_ROOT

EXAMPLE = "fixtures/example/regplan.yml"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The bundled example copied into a temp dir (targets land in its demo-target/)."""
    shutil.copytree(REPO_ROOT / "fixtures" / "example", tmp_path / "fixtures" / "example")
    return tmp_path
