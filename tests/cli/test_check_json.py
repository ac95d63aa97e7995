"""`check --format json`: what needs syncing, per step, for scripts — against a real registry."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.regplan_cli import REPO_ROOT, regplan, write_config
from tests.servers.distribution import RegistryServer

pytestmark = pytest.mark.integration


def config(tmp_path: Path, registry: RegistryServer) -> Path:
    source = REPO_ROOT / "fixtures" / "example" / "source" / "app"
    return write_config(
        tmp_path,
        f"""
        creds:
          - registry: {registry.host}
            tls: disabled
        sync:
          - source: ocidir://{source}
            target: {registry.host}/mirror/app
            type: repository
            tags:
              allow: ["1\\\\.[01]"]
        """,
    )


def check(tmp_path: Path, cfg: Path) -> tuple[int, dict[str, object]]:
    result = regplan("check", "-c", str(cfg), "--format", "json", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    return result.code, orjson.loads(result.stdout)


def test_check_json_before_and_after_apply(tmp_path: Path, registry: RegistryServer) -> None:
    cfg = config(tmp_path, registry)
    code, report = check(tmp_path, cfg)
    assert code == 0
    assert (report["images"], report["to_sync"], report["up_to_date"]) == (2, 2, 0)
    assert report["ok"] is True and report["in_sync"] is False and report["errors"] == []
    step = report["steps"][0]  # type: ignore[index]
    assert step["index"] == 0 and step["to_sync"] == 2 and step["type"] == "repository"
    assert all(r.method in ("GET", "HEAD") for r in registry.requests())  # check writes nothing

    assert regplan("once", "-c", str(cfg), cwd=tmp_path).code == 0
    code, report = check(tmp_path, cfg)
    assert code == 0 and report["in_sync"] is True
    assert (report["to_sync"], report["up_to_date"]) == (0, 2)


def test_check_json_with_the_target_down(tmp_path: Path, registry: RegistryServer) -> None:
    cfg = config(tmp_path, registry)
    registry.stop()
    code, report = check(tmp_path, cfg)
    assert code == 1
    assert report["ok"] is False and report["in_sync"] is False
    assert report["errors"] and report["steps"][0]["errors"]  # type: ignore[index]
