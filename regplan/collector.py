"""The cyclic garbage collector, paused while a big structure is built."""

from __future__ import annotations

import contextlib
import gc
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
