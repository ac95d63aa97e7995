"""Frozen dataclass values built from fields that are already checked.

A frozen dataclass's `__init__` sets each field with `object.__setattr__`: twice the cost of
filling in its `__dict__`, which is all a frozen dataclass without slots or `__post_init__`
is. The planner and the applier build hundreds of thousands of references, descriptors and
actions, so those hot constructors go through `filled`; everything else uses `__init__`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def filled(cls: type[T], fields: Mapping[str, Any]) -> T:
    """An instance of `cls` whose fields are `fields` (every field, each already valid)."""
    value = object.__new__(cls)
    value.__dict__.update(fields)
    return value
