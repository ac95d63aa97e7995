"""Run regplan on a pseudo-terminal and read back what a person would see (pyte emulates
the terminal)."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte

from tests.regplan_cli import REPO_ROOT

COLUMNS, ROWS = 180, 200  # tall enough that nothing scrolls off


def run_on_terminal(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Run regplan with stdin, stdout and stderr on a pty: its exit code and every byte it
    wrote to the terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    full.pop("NO_COLOR", None)
    full.update(HOME=str(cwd), TERM="xterm-256color", PYTHONPATH=str(REPO_ROOT))
    full.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "regplan.cli", *args],
        cwd=cwd,
        env=full,
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError as e:  # EIO: the child closed the terminal
            if e.errno != errno.EIO:
                raise
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks)


def screen_of(output: bytes) -> list[str]:
    """The terminal's final screen, line by line."""
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(output)
    return [line.rstrip() for line in screen.display]
