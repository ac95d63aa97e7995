"""The cyclic garbage collector, paused while a big structure is built."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside: for building many objects that all stay alive (a loaded
    config, a decoded plan), where every allocation burst would set off a pass that walks
    all of them again and frees nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_frozen_guard = threading.Lock()
_frozen_holders = 0  # runs holding a freeze now (watch runs several at once): the last thaws


@contextlib.contextmanager
def frozen() -> Iterator[None]:
    """Every object alive on entry stays out of cyclic collections until the last `frozen`
    exits (they are still freed when nothing refers to them). For a run that holds a big
    structure (a plan, an apply's scheduler state) while it makes many short-lived objects:
    each full collection walked all of that structure again and freed none of it; on a
    100,000-action apply that was 2.5 s."""
    global _frozen_holders
    with _frozen_guard:
        gc.freeze()
        _frozen_holders += 1
    try:
        yield
    finally:
        with _frozen_guard:
            _frozen_holders -= 1
            if _frozen_holders == 0:
                gc.unfreeze()
