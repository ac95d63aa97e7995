"""Deadlines and caps read from `apiOpts`, the stall rule, and waits that a close ends."""

from __future__ import annotations

import threading

import pytest

from regplan.config.hosts import Host, HostLimits, host_limits
from regplan.errors import RegistryError
from regplan.registry.credentials import CredentialStore
from regplan.registry.limits import STALL_BYTES, StallWatch
from regplan.registry.transport import HostTransport, RetryPolicy


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ((), HostLimits()),
        ((("requestTimeout", "30s"),), HostLimits(request_timeout=30.0)),
        ((("blobStallTimeout", "1m30s"),), HostLimits(blob_stall_timeout=90.0)),
        ((("maxListEntries", "250000"),), HostLimits(max_list_entries=250_000)),
        ((("disableHead", "true"),), HostLimits()),
    ],
)
def test_limits_come_from_api_opts(opts: tuple[tuple[str, str], ...], expected: HostLimits) -> None:
    assert host_limits(Host(name="r", api_opts=opts)) == expected


@pytest.mark.parametrize(
    "opts",
    [
        (("requestTimeout", "soon"),),
        (("requestTimeout", "-1s"),),
        (("blobStallTimeout", "0"),),
        (("maxListEntries", "0"),),
        (("maxListEntries", "1e6"),),
    ],
)
def test_bad_limits_are_refused(opts: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(RegistryError, match=r"^r: apiOpts\."):
        host_limits(Host(name="r", api_opts=opts))


def test_a_transfer_stalls_when_too_little_moves_in_the_window() -> None:
    watch = StallWatch(10.0, now=0.0)
    assert not watch.stalled(STALL_BYTES, now=9.0)  # enough moved: the window restarts at 9
    assert not watch.stalled(1, now=18.0)
    assert watch.stalled(1, now=19.5)  # 2 bytes in 10.5 s


def test_a_steady_trickle_below_the_rate_stalls() -> None:
    watch = StallWatch(60.0, now=0.0)
    stalled = [watch.stalled(1, now=5.0 * i) for i in range(1, 14)]  # a byte every 5 s
    assert stalled[:11] == [False] * 11 and stalled[12]


def test_closing_the_transport_ends_a_retry_wait() -> None:
    ht = HostTransport(
        Host(name="r"),
        user_agent="test",
        policy=RetryPolicy(),
        counter=None,
        credentials=CredentialStore(),
    )
    waiter = threading.Thread(target=ht.pause, args=(3600.0,))
    waiter.start()
    ht.close()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
