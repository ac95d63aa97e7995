"""Cancellation tokens: check() raises once cancelled, wait() ends early and raises."""

from __future__ import annotations

import threading

import pytest

from regplan.cancel import Cancelled, CancelToken
from regplan.errors import RegplanError


def test_check_passes_until_cancelled_then_raises_with_the_first_reason() -> None:
    token = CancelToken()
    token.check()
    assert not token.cancelled
    token.cancel("server stopping")
    token.cancel("later reason")
    assert token.cancelled
    with pytest.raises(Cancelled, match=r"^server stopping$"):
        token.check()
    assert issubclass(Cancelled, RegplanError)  # reported as one line, never a traceback


def test_wait_returns_after_its_time_and_raises_once_cancelled_from_another_thread() -> None:
    token = CancelToken()
    token.wait(0.01)  # not cancelled: returns
    threading.Timer(0.05, token.cancel).start()
    with pytest.raises(Cancelled, match="task was canceled"):
        token.wait(30)  # ends at the cancel, not after 30 s
