"""The per-request work of the one request path, counted: a no-op plan sends a manifest HEAD
per source and target, so whatever the path does per request it does thousands of times."""

from __future__ import annotations

import httpx
import pytest

from regplan.config.hosts import Host
from regplan.oci import mediatypes as mt
from regplan.refs import ImageRef
from regplan.registry import transport
from regplan.registry.auth import Scope
from regplan.registry.transport import Transports
from tests.registry.mock import REG, Recorder, backend

DIGEST = "sha256:" + "a" * 64
HEADS = 20


def _head_answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        headers={
            "Content-Type": mt.OCI_MANIFEST,
            "Docker-Content-Digest": DIGEST,
            "Content-Length": "100",
        },
    )


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_registry_without_mirrors_is_asked_without_ordering_candidates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _count_calls(monkeypatch, Transports, "candidates")
    rec = Recorder(_head_answer)
    be = backend(rec)
    for i in range(HEADS):
        assert be.manifest_head(ImageRef.parse(f"{REG}/team/app:v{i}")) is not None
    assert calls[0] == 0
    assert len(rec.requests) == HEADS


def test_a_registry_with_mirrors_still_tries_them_first(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_calls(monkeypatch, Transports, "candidates")
    rec = Recorder(_head_answer)
    be = backend(rec, Host(name=REG, mirrors=("mirror.test",)), Host(name="mirror.test"))
    assert be.manifest_head(ImageRef.parse(f"{REG}/team/app:v1")) is not None
    assert calls[0] == 1
    assert rec.lines() == ["HEAD /v2/team/app/manifests/v1?ns=reg.test"]
    assert rec.requests[0].url.host == "mirror.test"


def test_a_repository_scope_is_built_once_for_many_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport._repository_scope.cache_clear()
    calls = _count_calls(monkeypatch, Scope, "repository")
    be = backend(Recorder(_head_answer))
    for i in range(HEADS):
        assert be.manifest_head(ImageRef.parse(f"{REG}/team/app:v{i}")) is not None
    assert calls[0] == 1
