"""What a person sees while a plan is applied.

- One result line per reviewed action (tag, backup, digest tag, referrer) on stdout as it is
  settled, as Terraform prints each resource as it finishes: CI logs show what landed even
  when the run is cut short.
- On a terminal, rich bars on stderr (the total and one per image). While they run, log lines
  and result lines are printed through the bars' console, above them, instead of into them.
  Blobs the target already had, or that were mounted, count as done, so the total reaches
  100 %.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from regplan import logs, textsafe
from regplan.apply.result import ActionResult
from regplan.apply.status import ActionStatus
from regplan.plan import model
from regplan.plan.model import Plan
from regplan.terminal import is_terminal

# Past-tense words for a finished action, by (kind, reason); then by kind.
_DONE_WORDS: dict[tuple[str, str] | str, str] = {
    (model.TAG, model.CREATE): "created",
    (model.TAG, model.UPDATE): "updated",
    (model.TAG, model.REFRESH): "refreshed",
    model.BACKUP: "backed up",
    model.DIGEST_TAG: "digest tag pushed",
    model.REFERRER: "referrer pushed",
}
_QUIET_KINDS = frozenset({model.BLOB, model.MANIFEST})  # parts of an image, not lines of their own


def result_line(result: ActionResult) -> str | None:
    """The line for one settled action, or None for the parts of an image."""
    action = result.action
    if action.kind in _QUIET_KINDS:
        return None
    short = "sha256:" + action.digest.partition(":")[2][:12]
    target = action.target
    if action.kind not in model.TAG_KINDS:  # repo@digest: the digest follows anyway
        target = target.split("@", 1)[0]
    target = textsafe.terminal(target)
    detail = textsafe.terminal(result.detail)
    if result.status == ActionStatus.DONE:
        word = _DONE_WORDS.get((action.kind, action.reason)) or _DONE_WORDS.get(action.kind, "done")
        return f"{target}: {word} ({short}, {result.seconds:.1f}s)"
    if result.status == ActionStatus.SKIPPED:
        return f"{target}: already there ({short})"
    if result.status == ActionStatus.FAILED:
        return f"{target}: FAILED: {detail}"
    if result.status == ActionStatus.NOT_RUN:
        return f"{target}: not run: {detail}"
    return None


class _ConsoleLines(io.TextIOBase):
    """A text stream that hands whole lines to a rich console (no markup: they are data)."""

    def __init__(self, print_line: Callable[[str], None]) -> None:
        self._print = print_line
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._print(line)
        return len(text)


class ProgressDisplay:
    def __init__(
        self,
        plan: Plan,
        *,
        enabled: bool | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self._out = out
        self._err = err
        self.enabled = is_terminal(err or sys.stderr) if enabled is None else enabled
        self._lock = threading.Lock()
        self._progress: Any = None
        self._overall: Any = None
        self._tasks: dict[str, Any] = {}
        self._group_bytes: dict[str, int] = {}
        self._routing = contextlib.ExitStack()
        self._console_lines: _ConsoleLines | None = None
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
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        err = self._err or sys.stderr
        console = Console(file=err, highlight=False)
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),  # image names are data
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._progress.start()
        self._overall = self._progress.add_task("total", total=total)

        def above(line: str) -> None:
            from rich.text import Text

            console.print(Text(line), soft_wrap=True)

        self._console_lines = _ConsoleLines(above)
        self._routing.enter_context(logs.routed_to(self._console_lines))
        return self

    def advance(self, group: str, nbytes: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._advance(group, nbytes)

    def _advance(self, group: str, nbytes: int) -> None:
        task = self._tasks.get(group)
        if task is None:
            name = group if len(group) <= 48 else "…" + group[-47:]
            task = self._progress.add_task(
                textsafe.terminal(name), total=self._group_bytes.get(group) or None
            )
            self._tasks[group] = task
        self._progress.advance(task, nbytes)
        self._progress.advance(self._overall, nbytes)

    def finished(self, result: ActionResult) -> None:
        """An action was settled: its line, and the bytes it did not have to stream."""
        line = result_line(result)
        if line is not None:
            self._line(line)
        action = result.action
        if (
            self.enabled
            and action.kind == model.BLOB
            and result.status in (ActionStatus.DONE, ActionStatus.SKIPPED)
        ):
            unstreamed = max(0, action.bytes - result.bytes)  # mounted, or already there
            if unstreamed:
                with self._lock:
                    self._advance(action.group, unstreamed)

    def _line(self, line: str) -> None:
        out = self._out or sys.stdout
        if self._console_lines is not None and is_terminal(out):
            self._console_lines.write(line + "\n")  # the same terminal: above the bars
        else:
            out.write(line + "\n")
            out.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._routing.close()
        if self._progress is not None:
            self._progress.stop()
