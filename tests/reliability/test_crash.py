"""Crash safety: SIGKILL `regplan apply` at 20 random moments of a multi-image plan.

After each kill the same plan is applied again, and
- the final target equals a clean run's (tags and digests via skopeo, every image complete);
- no tag ever pointed at an incomplete image: a poller walks every tag the target shows,
  from the first request to the end of the re-apply;
- no blob was sent twice: the target's access log shows at most one completed upload
  (`PUT ...?digest=X` answered 201) per digest across the killed run and the re-apply.

Each kill starts from an empty target (same port, storage wiped) and lands right after the
k-th write request of the apply (k random up to 90% of a whole apply's writes), so every kill
point is inside the copy. k is seeded: the seed is printed, and REGPLAN_CRASH_SEED=<seed>
replays a failure.
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

from tests.regplan_cli import regplan, sync_config, sync_step
from tests.reliability.images import (
    KIB,
    assert_mirrored,
    make_images,
    missing_content,
    push_images,
)
from tests.servers import rawpush
from tests.servers.distribution import RegistryServer, parse_access_log

pytestmark = pytest.mark.integration

KILLS = 20
REPO = "app"
WRITES = ("PUT", "POST", "PATCH")


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


def writes_since(target: RegistryServer, offset: int) -> int:
    """Write requests in the target's access log after byte `offset` (read directly: fast
    enough to poll while apply runs)."""
    with target.log_file.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return sum(1 for e in parse_access_log(text) if e.method in WRITES)


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
    config = sync_config(
        work,
        [source, target],
        sync_step(f"{source.host}/{REPO}", f"{target.host}/{REPO}", "repository"),
        defaults={"parallel": 2, "skipDockerConfig": True},
        version=1,
    )
    plan = work / "plan.json"
    made = regplan("plan", "-c", str(config), "-o", str(plan), cwd=work)
    assert made.code == 0, str(made)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    env["HOME"] = str(work)

    # A clean run: the reference state, and how many writes a whole apply sends.
    clean = regplan("apply", str(plan), cwd=work)
    assert clean.code == 0, str(clean)
    assert_mirrored(target.url, target.host, REPO, images.tags)
    assert max(completed_uploads(target).values()) == 1
    total_writes = sum(1 for e in target.requests() if e.method in WRITES)
    assert total_writes > 40

    killed_mid_apply = 0
    for kill in range(KILLS):
        wipe(target)
        # kill right after the k-th write request lands: every point is inside the copy,
        # whatever the machine's speed (a delay in seconds was not, under load)
        k = rng.randint(1, total_writes * 9 // 10)
        context = f"seed {seed}, kill {kill + 1}/{KILLS} after write {k} of {total_writes}"
        log_start = target.log_file.stat().st_size
        with TagPoller(target.url, REPO) as poller:
            proc = subprocess.Popen(
                apply_command(plan), cwd=work, env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                while proc.poll() is None and writes_since(target, log_start) < k:
                    time.sleep(0.002)
                if proc.poll() is None:
                    killed_mid_apply += 1
                    os.killpg(proc.pid, signal.SIGKILL)
            finally:
                proc.wait(timeout=30)
            again = regplan("apply", str(plan), cwd=work)
        assert again.code == 0, f"{context}\n{again}"
        assert poller.violations == [], context
        assert poller.polls > 0, context
        assert_mirrored(target.url, target.host, REPO, images.tags)
        twice = {d: n for d, n in completed_uploads(target).items() if n > 1}
        assert twice == {}, f"{context}: blobs uploaded twice"
    # the kills must land while apply runs, or the test proves little
    assert killed_mid_apply >= KILLS - 2, f"seed {seed}: only {killed_mid_apply} kills landed"
