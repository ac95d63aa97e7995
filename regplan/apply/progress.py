"""Progress of an apply: rich bars on a terminal (overall and per image), nothing otherwise —
off a terminal the structured log lines ("Copy layer", "Saving backup", ...) tell the story."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

from regplan.plan.model import Plan


class ProgressDisplay:
    def __init__(self, plan: Plan, *, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._plan = plan
        self._lock = threading.Lock()
        self._progress: Any = None
        self._overall: Any = None
        self._tasks: dict[str, Any] = {}
        self._group_bytes: dict[str, int] = {}
        for action in plan.actions:
            self._group_bytes[action.group] = self._group_bytes.get(action.group, 0) + action.bytes

    def __enter__(self) -> ProgressDisplay:
        total = sum(self._group_bytes.values())
        if not self.enabled or total == 0:
            self.enabled = False
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._progress.start()
        self._overall = self._progress.add_task("total", total=total)
        return self

    def advance(self, group: str, nbytes: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            task = self._tasks.get(group)
            if task is None:
                name = group if len(group) <= 48 else "…" + group[-47:]
                task = self._progress.add_task(name, total=self._group_bytes.get(group) or None)
                self._tasks[group] = task
            self._progress.advance(task, nbytes)
            self._progress.advance(self._overall, nbytes)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
