"""regsync's TestProcessRef, ported: one image between OCI Layouts (testrepo → testdest), run in
order with shared state, through the real CLI (docs/regsync-behaviour.md, 7. regsync's own test
suite)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.regplan_cli import Result, regplan, write_config


def layout_tag(layout: Path, tag: str) -> str | None:
    if not (layout / "index.json").exists():
        return None
    for m in json.loads((layout / "index.json").read_text())["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m["digest"]
    return None


@pytest.fixture(scope="module")
def layouts(
    tmp_path_factory: pytest.TempPathFactory, regclient_testdata: Path
) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("process-ref")
    src = root / "testrepo"
    shutil.copytree(regclient_testdata / "testrepo", src, copy_function=shutil.copyfile)
    for directory, _, _ in os.walk(src):
        os.chmod(directory, 0o755)
    return src, root / "testdest"


def run(
    layouts: tuple[Path, Path], command: str, source_tag: str, target_tag: str, *extra: str
) -> Result:
    src, dst = layouts
    source = f"ocidir://{src}" + (f":{source_tag}" if source_tag else "")
    target = f"ocidir://{dst}" + (f":{target_tag}" if target_tag else "")
    config = write_config(
        src.parent,
        f"sync:\n  - source: {source}\n    target: {target}\n    type: image\n",
        name=f"{command}-{source_tag or 'none'}.yml",
    )
    return regplan(command, "-c", str(config), *extra, cwd=src.parent)


def test_1_empty(layouts: tuple[Path, Path]) -> None:
    result = run(layouts, "once", "", "")  # no tag: `latest`, which testrepo does not have
    assert result.code == 1 and "not found" in result.stderr


def test_2_check_v1(layouts: tuple[Path, Path]) -> None:
    src, dst = layouts
    result = run(layouts, "check", "v1", "v1")
    assert result.code == 0 and "Image sync needed" in result.stderr
    assert layout_tag(dst, "v1") != layout_tag(src, "v1")


def test_3_copy_v1(layouts: tuple[Path, Path]) -> None:
    src, dst = layouts
    assert run(layouts, "once", "v1", "v1").code == 0
    assert layout_tag(dst, "v1") == layout_tag(src, "v1")


def test_4_missing_only_on_v2(layouts: tuple[Path, Path]) -> None:
    src, dst = layouts
    assert run(layouts, "once", "v1", "v2").code == 0  # the target's v2 exists, with v1's content
    result = run(layouts, "once", "v2", "v2", "--missing")
    assert result.code == 0
    assert layout_tag(dst, "v2") == layout_tag(src, "v1") != layout_tag(src, "v2")
