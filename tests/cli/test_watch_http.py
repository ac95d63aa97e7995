"""`regplan watch`'s listener answers methods it does not serve in plain text, not HTML."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import EXAMPLE
from tests.watch.proc import WatchProcess

pytestmark = pytest.mark.timeout(60)


def test_post_to_an_endpoint_is_405_with_allow(example: Path) -> None:
    proc = WatchProcess(example / EXAMPLE, "--listen", "127.0.0.1:0", cwd=example)
    try:
        proc.wait_ready()
        for method in ("POST", "PUT", "DELETE"):
            r = httpx.request(method, proc.url + "/healthz", content=b"x", timeout=5)
            assert r.status_code == 405, (method, r.text)
            assert r.headers["allow"] == "GET, HEAD"
            assert r.headers["content-type"].startswith("text/plain")
            assert r.text == "method not allowed: use GET or HEAD\n"
        odd = httpx.request("BREW", proc.url + "/healthz", timeout=5)
        assert odd.status_code == 501 and "<html" not in odd.text.lower()
        assert odd.headers["content-type"].startswith("text/plain")
        assert proc.get("/healthz").status_code == 200  # still serving after all that
    finally:
        proc.close()
