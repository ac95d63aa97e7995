"""A cancelled run stops at once, even while the HTTP layer waits out a registry's
`Retry-After`: every wait of the request path is a wait on the run's cancel token."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from regplan.cancel import Cancelled, CancelToken
from regplan.config import load_config
from regplan.config.model import Config
from regplan.plan.planner import PlanOptions, make_plan
from regplan.refs import ImageRef
from regplan.registry.api import RequestCounter
from regplan.registry.client import RegistryClient
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, FaultProxy


@pytest.fixture
def busy_source(registry: RegistryServer) -> Iterator[FaultProxy]:
    """A registry answering every request 429 with `Retry-After: 25` (under the 30 s cap, so
    each of the 5 retries waits it out: over two minutes without cancellation)."""
    proxy = FaultProxy(registry.host).start()
    proxy.add(Fault("rate_limit", "/v2/", times=-1, retry_after="25"))
    try:
        yield proxy
    finally:
        proxy.stop()


def _config(tmp_path: Path, source: str, target: str) -> Path:
    path = tmp_path / "regplan.yml"
    path.write_text(
        f"""
version: 1
creds:
  - registry: {source}
    tls: disabled
  - registry: {target}
    tls: disabled
defaults:
  skipDockerConfig: true
sync:
  - source: {source}/app:v1
    target: {target}/app:v1
    type: image
"""
    )
    return path


def _cancel_once_answered(proxy: FaultProxy, token: CancelToken) -> None:
    while not proxy.seen:  # the 429 is out: the request path now waits it out
        time.sleep(0.01)
    token.cancel("server stopping")


@contextlib.contextmanager
def _cancelled_in_a_wait(
    proxy: FaultProxy, registry: RegistryServer, tmp_path: Path, *, shared: bool = False
) -> Iterator[tuple[Config, RegistryClient, CancelToken]]:
    """A run token cancelled once the proxy's 429 is out, and a client that carries it (or,
    `shared`, carries none, as watch's client shared by all runs); afterwards, the one request
    sent shows cancellation ended the wait before any retry."""
    config = load_config(str(_config(tmp_path, proxy.host, registry.host)))
    token = CancelToken()
    counter = RequestCounter()
    client = RegistryClient.from_config(config, counter=counter, cancel=None if shared else token)
    canceller = threading.Thread(target=_cancel_once_answered, args=(proxy, token))
    canceller.start()
    try:
        yield config, client, token
    finally:
        canceller.join()
        client.close_all()
    assert counter.total(registry=proxy.host) == 1


@pytest.mark.timeout(60)  # the hang detector: without cancellation the plan waits > 2 min
def test_cancel_stops_planning_during_a_retry_after_wait(
    busy_source: FaultProxy, registry: RegistryServer, tmp_path: Path
) -> None:
    with (
        _cancelled_in_a_wait(busy_source, registry, tmp_path) as (config, client, token),
        pytest.raises(Cancelled, match="server stopping"),
    ):
        make_plan(config, client, PlanOptions(cancel=token))


@pytest.mark.timeout(60)  # the hang detector: without cancellation the HEAD waits > 2 min
def test_cancel_ends_a_requests_retry_after_wait_with_cancelled(
    busy_source: FaultProxy, registry: RegistryServer, tmp_path: Path
) -> None:
    with (
        _cancelled_in_a_wait(busy_source, registry, tmp_path) as (_, client, _token),
        pytest.raises(Cancelled, match="server stopping"),
    ):
        client.manifest_head(ImageRef.parse(f"{busy_source.host}/app:v1"))


@pytest.mark.timeout(60)  # the hang detector: without the run's token the plan waits > 2 min
def test_cancelling_a_run_ends_its_wait_in_a_client_shared_by_runs(
    busy_source: FaultProxy, registry: RegistryServer, tmp_path: Path
) -> None:
    """watch shares one client between runs: a run's own token (its --run-timeout, a
    shutdown while it plans) still ends a wait in the request path."""
    with (
        _cancelled_in_a_wait(busy_source, registry, tmp_path, shared=True) as (cfg, client, token),
        pytest.raises(Cancelled, match="server stopping"),
    ):
        make_plan(cfg, client, PlanOptions(cancel=token))
