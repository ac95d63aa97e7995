"""`regplan once` through a fault proxy in front of a real source and target registry.

Each fault either is survived — bounded retries, exit 0, and the target ends exactly as a
fault-free run leaves it (tags and digests read with skopeo, every manifest and blob of every
image present) — or makes regplan fail with a clear one-line error per failed action, exit 1,
and every tag it did not finish is untouched (still at its old digest, or absent).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest

from tests.reliability.conftest import REPO, Mirror
from tests.reliability.images import assert_mirrored, assert_tags_consistent, tag_digests
from tests.servers.faultproxy import Fault

pytestmark = pytest.mark.integration

BLOB = r"/blobs/sha256:"
UPLOAD = r"/blobs/uploads/"
MANIFEST = r"/manifests/"

# (id, which proxy, fault) — regplan must recover from each of these.
RECOVERABLE: list[tuple[str, str, Fault]] = [
    ("source blob reset mid-body", "src", Fault("reset", BLOB, "GET", times=3)),
    ("source blob truncated", "src", Fault("truncate", BLOB, "GET", times=3, fraction=0.3)),
    ("source blob 502 x3", "src", Fault("status", BLOB, "GET", times=3, status=502)),
    ("source manifest HEAD 503 x3", "src", Fault("status", MANIFEST, "HEAD", times=3)),
    ("source manifest GET 500 x2", "src", Fault("status", MANIFEST, "GET", times=2, status=500)),
    ("source manifest body truncated", "src", Fault("truncate", MANIFEST, "GET", times=2)),
    ("source tag list 503 x2", "src", Fault("status", r"/tags/list", "GET", times=2)),
    ("source responses delayed", "src", Fault("delay", BLOB, "GET", times=4, delay=0.5)),
    ("target upload start 502 x3", "tgt", Fault("status", UPLOAD + "$", "POST", times=3, status=502)),
    ("target blob PUT 503 x3", "tgt", Fault("status", UPLOAD + ".", "PUT", times=3)),
    ("target blob PUT answer lost", "tgt", Fault("status", UPLOAD + ".", "PUT", times=2, forward=True)),
    ("target blob PUT connection reset", "tgt", Fault("reset", UPLOAD + ".", "PUT", times=2)),
    ("target manifest PUT 500 x2", "tgt", Fault("status", MANIFEST, "PUT", times=2, status=500)),
    ("target tag PUT answer lost", "tgt", Fault("status", MANIFEST + "v", "PUT", times=1, forward=True)),
    ("target manifest HEAD 429", "tgt", Fault("rate_limit", MANIFEST, "HEAD", times=2, retry_after="1")),
    ("target blob HEAD 504 x3", "tgt", Fault("status", BLOB, "HEAD", times=3, status=504)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("side", "fault"), [c[1:] for c in RECOVERABLE], ids=[c[0] for c in RECOVERABLE]
)
def test_recovers_to_the_fault_free_state(
    make_mirror: Callable[..., Mirror], side: str, fault: Fault
) -> None:
    mirror = make_mirror()
    if side == "tgt" and fault.method == "HEAD" and fault.path == BLOB:
        # blob HEADs only go to a repository that exists (a new one is known empty after one
        # tag list), so give the target older images under the same tags first
        mirror.seed_target(seed=7)
    proxy = mirror.src_proxy if side == "src" else mirror.tgt_proxy
    proxy.add(fault)
    result = mirror.once()
    assert fault.applied == fault.times, f"the fault never fired: {fault}"
    assert result.code == 0, str(result)
    retried = "Sleeping for backoff" in result.stderr or "Retrying blob upload" in result.stderr
    assert retried or fault.action == "delay", str(result)
    assert_mirrored(mirror.target.url, mirror.target.host, REPO, mirror.expected)


def test_retry_after_is_honoured(make_mirror: Callable[..., Mirror]) -> None:
    mirror = make_mirror(images=1)
    fault = mirror.tgt_proxy.add(Fault("rate_limit", MANIFEST, "HEAD", times=1, retry_after="2"))
    result = mirror.once()
    assert result.code == 0, str(result)
    assert fault.applied == 1
    heads = mirror.tgt_proxy.requests("HEAD", MANIFEST + "v1")
    assert [s.status for s in heads[:2]] == [429, 404]
    assert re.search(r"Sleeping for backoff.*reason=429.*seconds=2", result.stderr), result.stderr
    assert mirror.last_seconds >= 2
    assert_mirrored(mirror.target.url, mirror.target.host, REPO, mirror.expected)


def test_target_restarted_mid_apply(make_mirror: Callable[..., Mirror]) -> None:
    """The target registry is killed while blobs are being uploaded and comes back 0.3 s later
    on the same port and storage; regplan's retries carry the apply through."""
    mirror = make_mirror(images=4, layers=3)
    restarted = threading.Event()

    def crash_and_restart() -> None:
        # killed before this upload is forwarded (so it meets a dead registry), back in 0.3 s
        mirror.target.stop(kill=True)

        def start_again() -> None:
            time.sleep(0.3)
            mirror.target.start()
            restarted.set()

        threading.Thread(target=start_again, daemon=True).start()

    mirror.tgt_proxy.add(
        Fault("hook", UPLOAD + ".", "PUT", skip=2, times=1, hook=crash_and_restart)
    )
    result = mirror.once()
    assert restarted.wait(10), "the registry was not restarted"
    assert result.code == 0, str(result)
    assert [s for s in mirror.tgt_proxy.seen if s.status == 0], "no request saw the registry down"
    assert_mirrored(mirror.target.url, mirror.target.host, REPO, mirror.expected)


# -- faults that must fail the run cleanly ------------------------------------------------------


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "level=ERROR" in line or "error:" in line]


def test_manifest_not_matching_its_digest_fails_that_image_only(
    make_mirror: Callable[..., Mirror],
) -> None:
    mirror = make_mirror(images=2)
    before = mirror.seed_target(seed=99)
    v1 = mirror.expected["v1"]
    mirror.src_proxy.add(Fault("corrupt", MANIFEST + v1, "GET", times=-1))
    result = mirror.once()
    assert result.code == 1, str(result)
    assert any("v1" in line and "digest" in line for line in _error_lines(result.stderr)), str(
        result
    )
    now = assert_tags_consistent(
        mirror.target.url, mirror.target.host, REPO, before, mirror.expected
    )
    assert now["v1"] == before["v1"], "v1's tag moved although its manifest was refused"
    assert now["v2"] == mirror.expected["v2"], "an unrelated image was not mirrored"


def test_tag_manifest_lying_about_its_digest_is_refused(
    make_mirror: Callable[..., Mirror],
) -> None:
    """The source answers a tag with bytes that do not hash to its Docker-Content-Digest."""
    mirror = make_mirror(images=1)
    mirror.src_proxy.add(Fault("corrupt", MANIFEST + "v1$", "GET", times=-1))
    mirror.src_proxy.add(Fault("corrupt", MANIFEST + "sha256:", "GET", times=-1))
    result = mirror.once()
    assert result.code == 1, str(result)
    assert "digest" in result.stderr and "v1" in result.stderr, str(result)
    assert tag_digests(mirror.target.host, REPO) == {}


def test_corrupt_blob_never_lands(make_mirror: Callable[..., Mirror]) -> None:
    mirror = make_mirror(images=1, index_every=0)
    before = mirror.seed_target(seed=98)
    layer = sorted(mirror.images.layer_digests)[0]
    mirror.src_proxy.add(Fault("corrupt", "/blobs/" + layer, "GET", times=-1))
    result = mirror.once()
    assert result.code == 1, str(result)
    assert any(layer in line for line in _error_lines(result.stderr)), str(result)
    assert_tags_consistent(mirror.target.url, mirror.target.host, REPO, before, {})
    # the registry never stored bytes under the layer's digest
    import httpx

    assert httpx.head(f"{mirror.target.url}/v2/{REPO}/blobs/{layer}").status_code == 404


@pytest.mark.parametrize(
    ("side", "fault", "words"),
    [
        ("tgt", Fault("status", MANIFEST, "PUT", times=-1, status=503), "Service Unavailable"),
        ("tgt", Fault("rate_limit", UPLOAD, "POST", times=-1, retry_after="3600"), "rate limited"),
        ("src", Fault("reset", BLOB, "GET", times=-1), "broke"),
        ("src", Fault("status", BLOB, "GET", times=-1, status=500), "Internal Server Error"),
    ],
    ids=["target manifest PUT 503 forever", "target 429 for an hour", "source blob resets forever",
         "source blob 500 forever"],
)  # fmt: skip
def test_persistent_fault_fails_clearly_and_leaves_tags_untouched(
    make_mirror: Callable[..., Mirror], side: str, fault: Fault, words: str
) -> None:
    mirror = make_mirror(images=2)
    before = mirror.seed_target(seed=97)
    (mirror.src_proxy if side == "src" else mirror.tgt_proxy).add(fault)
    # 5 retries from 0.1 s doubling is ~3 s per request; the timeout detects unbounded retries
    result = mirror.once(timeout=120)
    assert result.code == 1, str(result)
    assert "Apply FAILED" in result.stdout, str(result)
    errors = _error_lines(result.stderr)
    assert errors and any(words in line for line in errors), str(result)
    assert any(f"{REPO}" in line for line in errors), str(result)
    assert_tags_consistent(mirror.target.url, mirror.target.host, REPO, before, mirror.expected)
