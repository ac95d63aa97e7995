"""`regplan watch` as a real process for tests: JSON log lines read as they come, the HTTP
listener's address taken from its log line, signals, and a guaranteed kill at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.regplan_cli import REPO_ROOT

Line = dict[str, Any]


class WatchProcess:
    def __init__(self, config: Path, *args: str, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
        env["HOME"] = str(cwd)  # no docker credentials leak in
        env["PYTHONPATH"] = str(REPO_ROOT)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "regplan.cli",
                "watch",
                "-c",
                str(config),
                "--logopt",
                "json",
                *args,
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # our signals go to regplan only
        )
        self.lines: list[Line] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"msg": raw.rstrip("\n"), "level": "RAW"}
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    # -- reading the log --------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[Line], bool], *, timeout: float, what: str) -> Line:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no log line for {what} within {timeout}s:\n{self.text()}"
                    )
                self._cond.wait(min(left, 0.2))

    def wait_msg(self, msg: str, *, timeout: float = 15, **fields: Any) -> Line:
        return self.wait_for(
            lambda line: (
                line.get("msg") == msg and all(line.get(k) == v for k, v in fields.items())
            ),
            timeout=timeout,
            what=f"{msg} {fields}",
        )

    def messages(self, msg: str, **fields: Any) -> list[Line]:
        with self._cond:
            return [
                line
                for line in self.lines
                if line.get("msg") == msg and all(line.get(k) == v for k, v in fields.items())
            ]

    def text(self) -> str:
        with self._cond:
            return "\n".join(json.dumps(line) for line in self.lines[-200:])

    # -- the HTTP listener ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return str(self.wait_msg("Serving health and metrics")["address"])

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.get("/readyz").status_code != 200:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"not ready within {timeout}s:\n{self.text()}")
            time.sleep(0.05)

    # -- lifecycle --------------------------------------------------------------------------
    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)


def no_overlap(lines: list[Line]) -> bool:
    """Per step, "Running task" and "Run finished" strictly alternate."""
    running: set[int] = set()
    for line in lines:
        if line.get("msg") == "Running task":
            if line["step"] in running:
                return False
            running.add(line["step"])
        elif line.get("msg") == "Run finished":
            running.discard(line["step"])
    return True
