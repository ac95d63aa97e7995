"""`watch` has no reviewer: it deletes only with `--prune`, and otherwise reports what it would."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.regplan_cli import sync_config, sync_step
from tests.servers import tinyimage
from tests.servers.ociregistry import OCIRegistry
from tests.watch.proc import WatchProcess


def test_watch_prunes_only_with_the_flag(tmp_path: Path) -> None:
    with OCIRegistry() as source, OCIRegistry() as target:
        tinyimage.push(source, "app", ["a"], seed="a")
        tinyimage.push(target, "app", ["a"], seed="a")
        tinyimage.push(target, "app", ["stale"], seed="stale")
        step = sync_step(
            f"{source.host}/app", f"{target.host}/app", "repository", interval="1h", prune=True
        )
        cfg = sync_config(tmp_path, [source, target], step, defaults={"skipDockerConfig": True})
        for flags, left in (((), ["a", "stale"]), (("--prune",), ["a"])):
            proc = WatchProcess(cfg, "--listen", "127.0.0.1:0", *flags, cwd=tmp_path)
            try:
                proc.wait_ready()
                metrics = proc.get("/metrics").text
                pending = 0.0 if flags else 1.0
                assert f'regplan_prune_pending{{step="0"}} {pending}' in metrics, metrics
                would = proc.messages("Would prune (run watch --prune to delete)")
                assert [m["target"] for m in would] == (
                    [] if flags else [f"{target.host}/app:stale"]
                )
                assert tinyimage.tags(target, "app") == left
                proc.signal(signal.SIGTERM)
                assert proc.wait_exit() == 0, proc.text()
            finally:
                proc.close()
