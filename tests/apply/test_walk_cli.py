"""`regplan apply` of a plan of thousands of actions whose content reached the target after
planning: every tag lands, and the walk looks at each action a bounded number of times (it
reports the count at debug level). The walk once rescanned every ready action after each
completion: minutes for 8,000 actions."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import orjson
import pytest

from bench.walk import IMAGES_PER_REPO, make_layouts
from tests.regplan_cli import regplan, write_config
from tests.servers.distribution import RegistryServer

pytestmark = pytest.mark.timeout(600)

_WALKED = re.compile(r'msg="Walk finished" actions=(\d+) examined=(\d+)')


def test_a_plan_of_thousands_of_actions_is_walked_in_linear_work(tmp_path: Path) -> None:
    repos = 100
    config = make_layouts(tmp_path, repos)
    plan_file = tmp_path / "plan.json"
    planned = regplan("plan", "-c", str(config), "-o", str(plan_file), cwd=tmp_path)
    assert planned.code in (0, 2), planned  # 2: changes to apply
    actions = orjson.loads(plan_file.read_bytes())["actions"]
    assert len(actions) == repos * IMAGES_PER_REPO * 3
    for src in (tmp_path / "src").iterdir():  # the content arrives before the apply
        shutil.copytree(src / "blobs", tmp_path / "dst" / src.name / "blobs", dirs_exist_ok=True)

    applied = regplan("-v", "debug", "apply", str(plan_file), cwd=tmp_path, timeout=540)

    assert applied.code == 0, applied.stdout[-2000:] + applied.stderr[-2000:]
    assert f"Apply complete: {repos * IMAGES_PER_REPO} image(s)" in applied.stdout
    found = _WALKED.search(applied.stderr)
    assert found, applied.stderr[-2000:]
    walked, examined = int(found[1]), int(found[2])
    assert walked == len(actions)
    edges = sum(len(a.get("depends_on", ())) for a in actions)
    assert examined <= 3 * walked + edges
    for layout in (tmp_path / "dst").iterdir():
        index = orjson.loads((layout / "index.json").read_bytes())
        assert len(index["manifests"]) == IMAGES_PER_REPO


_CREATED = re.compile(r"^([^/\s]+)/\S+:(\S+): created", re.MULTILINE)


def test_a_cold_once_into_three_registries_takes_them_in_turn(
    tmp_path: Path, registry: RegistryServer, ocidir_copy: Path
) -> None:
    # Three registry names on one registry (a repository of its own each), listed target by target as generated configs do.
    # Each registry allows only `reqConcurrent` requests at once: copying all of the first
    # registry's images before the second's left two of three registries idle.
    names = ("one.example", "two.example", "three.example")
    creds = "".join(
        f"  - registry: {n}\n    hostname: {registry.host}\n    tls: disabled\n" for n in names
    )
    steps = "".join(
        f"  - source: ocidir://{ocidir_copy}/testrepo:{tag}\n"
        f"    target: {n}/mirror-{n}:{tag}\n    type: image\n"
        for n in names
        for tag in ("v1", "v2", "v3")
    )
    config = write_config(
        tmp_path, f"version: 1\ncreds:\n{creds}defaults:\n  parallel: 1\nsync:\n{steps}"
    )

    result = regplan("once", "-c", str(config), cwd=tmp_path)

    assert result.code == 0, result
    created = _CREATED.findall(result.stdout)
    assert sorted(created) == sorted((n, t) for n in names for t in ("v1", "v2", "v3"))
    turns = [{n for n, _ in created[i : i + 3]} for i in (0, 3, 6)]
    assert turns == [set(names)] * 3, created
