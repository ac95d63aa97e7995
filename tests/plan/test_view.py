"""The planner's memoised view: one computation per question, and answered questions cost a
dict read (no lock the planning threads share, no future to wait on)."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import pytest

from regplan.errors import NotFoundError
from regplan.plan import view


class CountingLock:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = 0

    def __enter__(self) -> Any:
        self.taken += 1
        return self.lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.lock.__exit__(*exc)


def test_an_answered_question_takes_no_lock() -> None:
    once = view._Once()
    lock = CountingLock()
    once._lock = lock  # type: ignore[assignment]
    calls = []
    for _ in range(100):
        assert once.get("k", lambda: calls.append(1) or 42) == 42
    assert calls == [1]
    assert lock.taken == 2  # the first ask only: to claim the question, then to answer it


def test_a_failure_is_remembered_and_raised_to_every_asker() -> None:
    once = view._Once()
    calls = []

    def missing() -> None:
        calls.append(1)
        raise NotFoundError("gone")

    assert once.failed("k") is None
    for _ in range(3):
        with pytest.raises(NotFoundError):
            once.get("k", missing)
    assert calls == [1]
    assert isinstance(once.failed("k"), NotFoundError)


class Held:
    """Something a request's frames hold (a response, its buffers)."""


def test_a_failed_question_keeps_nothing_its_computation_held_alive() -> None:
    # The error is kept for the whole plan; its traceback would keep every frame of the
    # failed request, and all they referenced, alive with it (a cold plan of 7,500 images
    # held thousands of frames).
    once = view._Once()
    refs: list[weakref.ref[Held]] = []

    def missing() -> None:
        held = Held()
        refs.append(weakref.ref(held))
        raise NotFoundError("gone")

    for _ in range(3):
        with pytest.raises(NotFoundError):
            once.get("k", missing)
    gc.collect()
    assert refs[0]() is None


def test_an_answered_question_keeps_no_future() -> None:
    # one Future (with its Condition and lock) per distinct question of a plan adds up
    once = view._Once()

    def gone() -> int:
        raise NotFoundError("gone")

    for i in range(10):
        once.get(("ok", i), lambda: 1)
        with pytest.raises(NotFoundError):
            once.get(("gone", i), gone)
    assert once._futures == {}


def test_concurrent_askers_share_one_computation() -> None:
    once = view._Once()
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 7

    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(once.get("k", slow)))
    first.start()
    started.wait(5)
    others = [
        threading.Thread(target=lambda: results.append(once.get("k", slow))) for _ in range(4)
    ]
    for t in others:
        t.start()
    release.set()
    for t in [first, *others]:
        t.join(5)
    assert results == [7] * 5 and calls == [1]
