"""A watch server in the test's own process, on one hourly image step between two OCI
Layouts under `tmp_path` (nothing runs until the test starts it)."""

from __future__ import annotations

from pathlib import Path

from regplan.watch.server import WatchServer, WatchSettings


def layout_server(tmp_path: Path) -> WatchServer:
    cfg = tmp_path / "regplan.yml"
    cfg.write_text(
        f"defaults:\n  skipDockerConfig: true\nsync:\n"
        f"  - source: ocidir://{tmp_path}/src:v1\n    target: ocidir://{tmp_path}/dst:v1\n"
        f"    type: image\n    interval: 1h\n"
    )
    return WatchServer(WatchSettings(str(cfg), listen=""))
