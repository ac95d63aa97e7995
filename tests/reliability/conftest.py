"""A source and a target registry, each behind its own fault proxy, with generated images in
the source, and `regplan` configured to mirror the source repository through the proxies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.regplan_cli import Result, regplan, sync_config, sync_step
from tests.reliability.images import ImageSet, make_images, push_images
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import FaultProxy

REPO = "app"


@dataclass
class Mirror:
    source: RegistryServer
    target: RegistryServer
    src_proxy: FaultProxy
    tgt_proxy: FaultProxy
    images: ImageSet
    workdir: Path
    last_seconds: float = 0.0
    runs: list[Result] = field(default_factory=list)

    @property
    def expected(self) -> dict[str, str]:
        return dict(self.images.tags)

    def config(self, *, parallel: int = 2) -> Path:
        source, target = self.src_proxy.host, self.tgt_proxy.host
        return sync_config(
            self.workdir,
            [source, target],
            sync_step(f"{source}/{REPO}", f"{target}/{REPO}", "repository"),
            defaults={"parallel": parallel, "skipDockerConfig": True},
            version=1,
        )

    def run(self, *args: str, timeout: float = 120) -> Result:
        started = time.monotonic()
        result = regplan(*args, cwd=self.workdir, timeout=timeout)
        self.last_seconds = time.monotonic() - started
        self.runs.append(result)
        assert "Traceback" not in result.stderr, str(result)
        return result

    def once(self, *extra: str, parallel: int = 2, timeout: float = 120) -> Result:
        return self.run("once", "-c", str(self.config(parallel=parallel)), *extra, timeout=timeout)

    def seed_target(self, seed: int) -> dict[str, str]:
        """Put older images under the same tags in the target (so the plan overwrites them)."""
        old = make_images(self.workdir / f"old-{seed}", seed=seed, images=len(self.images.tags))
        push_images(old, self.target, REPO)
        return dict(old.tags)


@pytest.fixture
def make_mirror(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> Iterator[Callable[..., Mirror]]:
    proxies: list[FaultProxy] = []

    def make(*, seed: int = 1, images: int = 2, layers: int = 2, **sizes: int) -> Mirror:
        source, target = registry_factory(), registry_factory()
        generated = make_images(
            tmp_path / "layout", seed=seed, images=images, layers=layers, **sizes
        )
        push_images(generated, source, REPO)
        src_proxy, tgt_proxy = FaultProxy(source.host).start(), FaultProxy(target.host).start()
        proxies.extend((src_proxy, tgt_proxy))
        work = tmp_path / "work"
        work.mkdir()
        return Mirror(source, target, src_proxy, tgt_proxy, generated, work)

    yield make
    for proxy in proxies:
        proxy.stop()
