"""The bundled example (OCI Layouts, no registry) copied into a temp dir, for render tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.regplan_cli import REPO_ROOT


@pytest.fixture
def example(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "fixtures" / "example", tmp_path / "fixtures" / "example")
    return tmp_path
