"""Crash safety: SIGKILL `regplan apply` at 20 random moments of a multi-image plan.

After each kill the same plan is applied again, and
- the final target equals a clean run's (tags and digests via skopeo, every image complete);
- no tag ever pointed at an incomplete image: a poller walks every tag the target shows,
  from the first request to the end of the re-apply;
- no blob was sent twice: the target's access log shows at most one completed upload
  (`PUT ...?digest=X` answered 201) per digest across the killed run and the re-apply.

Each kill starts from an empty target (same port, storage wiped), so every kill point lands in
a real copy. The kill delays are random but seeded: the seed is printed, and
REGPLAN_CRASH_SEED=<seed> replays a failure.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.regplan_cli import regplan, write_config
from tests.reliability.images import (
    KIB,
    assert_mirrored,
    make_images,
    missing_content,
    push_images,
)
from tests.servers import rawpush
from tests.servers.distribution import RegistryServer

pytestmark = pytest.mark.integration

KILLS = 20
REPO = "app"


class TagPoller:
    """Walks every tag of `repo` over and over from a thread; records incomplete images."""

    def __init__(self, url: str, repo: str) -> None:
        self.url = url
        self.repo = repo
        self.violations: list[str] = []
        self.polls = 0
        self.tags_seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TagPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        accept = ", ".join(sorted(rawpush.MANIFEST_TYPES))
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                listing = client.get(f"/v2/{self.repo}/tags/list")
                self.polls += 1
                tags = (listing.json().get("tags") or []) if listing.status_code == 200 else []
                for tag in tags:
                    head = client.head(
                        f"/v2/{self.repo}/manifests/{tag}", headers={"Accept": accept}
                    )
                    digest = head.headers.get("docker-content-digest", "")
                    if head.status_code != 200 or not digest:
                        continue
                    self.tags_seen.add(tag)
                    problems = missing_content(self.url, self.repo, digest)
                    if problems:
                        self.violations.append(f"{tag} -> {digest}: {problems[:3]}")


def completed_uploads(target: RegistryServer) -> Counter[str]:
    """digest -> completed blob uploads (final PUT answered 201) in the target's access log."""
    done: Counter[str] = Counter()
    for entry in target.requests():
        if entry.kind == "upload" and entry.method == "PUT" and entry.status == 201:
            digest = urllib.parse.parse_qs(entry.query).get("digest", [""])[0]
            done[digest] += 1
    return done


def wipe(target: RegistryServer) -> None:
    """An empty target on the same port (the plan's target address)."""
    target.stop()
    shutil.rmtree(target.root)
    target.root.mkdir()
    target.start()
    target.clear_requests()


def apply_command(plan: Path) -> list[str]:
    return [sys.executable, "-m", "regplan.cli", "apply", str(plan)]


def test_sigkill_at_twenty_random_points(
    registry_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("REGPLAN_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    with capsys.disabled():
        print(f"\ncrash-safety seed: REGPLAN_CRASH_SEED={seed}")
    rng = random.Random(seed)
    source, target = registry_factory(), registry_factory()
    images = make_images(
        tmp_path / "layout", seed=7, images=6, layers=3, min_size=256 * KIB,
        max_size=2048 * KIB, index_every=3,
    )  # fmt: skip
    push_images(images, source, REPO)
    work = tmp_path / "work"
    work.mkdir()
    config = write_config(
        work,
        f"""
        version: 1
        creds:
          - registry: {source.host}
            tls: disabled
          - registry: {target.host}
            tls: disabled
        defaults:
          parallel: 2
          skipDockerConfig: true
        sync:
          - source: {source.host}/{REPO}
            target: {target.host}/{REPO}
            type: repository
        """,
    )
    plan = work / "plan.json"
    made = regplan("plan", "-c", str(config), "-o", str(plan), cwd=work)
    assert made.code == 0, str(made)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    env["HOME"] = str(work)

    # A clean run: its duration spreads the kill points, its result is the reference state.
    started = time.monotonic()
    clean = regplan("apply", str(plan), cwd=work)
    clean_seconds = time.monotonic() - started
    assert clean.code == 0, str(clean)
    assert_mirrored(target.url, target.host, REPO, images.tags)
    assert max(completed_uploads(target).values()) == 1

    killed_after_writes = 0
    for kill in range(KILLS):
        wipe(target)
        delay = rng.uniform(0.15, clean_seconds)
        context = f"seed {seed}, kill {kill + 1}/{KILLS} after {delay:.2f}s"
        with TagPoller(target.url, REPO) as poller:
            proc = subprocess.Popen(
                apply_command(plan), cwd=work, env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                time.sleep(delay)
                os.killpg(proc.pid, signal.SIGKILL)
            finally:
                proc.wait(timeout=30)
            if any(e.method in ("PUT", "POST", "PATCH") for e in target.requests()):
                killed_after_writes += 1
            again = regplan("apply", str(plan), cwd=work)
        assert again.code == 0, f"{context}\n{again}"
        assert poller.violations == [], context
        assert poller.polls > 0, context
        assert_mirrored(target.url, target.host, REPO, images.tags)
        twice = {d: n for d, n in completed_uploads(target).items() if n > 1}
        assert twice == {}, f"{context}: blobs uploaded twice"
    # the kill points must mostly land inside the copy, or the test proves little
    assert killed_after_writes >= KILLS // 2, f"seed {seed}: only {killed_after_writes} kills hit"
