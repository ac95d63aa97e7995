"""Loopback helpers shared by the test servers: free ports, readiness polling, process hygiene."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self, TypeVar

LOOPBACK = "127.0.0.1"
T = TypeVar("T")


class BackgroundHTTPServer:
    """A stdlib threaded HTTP server serving from a daemon thread; `stop()` ends both.

    Subclasses build their server and hand it to `_serve`; they implement `start()`."""

    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def _serve(self, httpd: ThreadingHTTPServer, name: str) -> None:
        httpd.daemon_threads = True
        self._httpd = httpd
        # shutdown() waits up to one poll interval: keep it short so stop() is quick.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()

    def _listen(self, handler: type[BaseHTTPRequestHandler], name: str, port: int = 0) -> None:
        """Serve `handler` on 127.0.0.1:`port` (0: a free one)."""
        self._serve(ThreadingHTTPServer((LOOPBACK, port), handler), name=name)

    @property
    def bound_port(self) -> int:
        assert self._httpd is not None, "not started"
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, as configs and references name the server."""
        return f"{LOOPBACK}:{self.bound_port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def start(self) -> Self:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (servers record what they need), speaks HTTP/1.1,
    sends every method to `route`, and ends a connection the client dropped without a trace."""

    protocol_version = "HTTP/1.1"
    # what a dropped client raises; a server that provokes more can widen it
    dropped: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except self.dropped:
            self.close_connection = True

    def route(self) -> None:
        raise NotImplementedError

    def read_body(self) -> bytes:
        """The request body: Content-Length, chunked (streamed uploads), or none."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self.route()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


def free_port() -> int:
    """A port that was free a moment ago. Another process can still take it before the server
    binds, so starters retry with a new port when the bind fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def poll_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.002
) -> T:
    """Call `probe` until it returns something other than None; back off from 2 ms to 50 ms so a
    fast server is seen within milliseconds without spinning on a slow one."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 2, 0.05)


def _die_with_parent() -> None:
    """Runs in the child before exec: if the test process dies (even by SIGKILL), the kernel
    kills the server too, so an aborted pytest leaves no registry behind.

    The kernel sends the signal when the spawning *thread* ends, so this is only armed for
    servers started from the main thread (a test may restart a registry from a helper thread)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _arm_parent_death_signal() -> bool:
    return os.uname().sysname == "Linux" and threading.current_thread() is threading.main_thread()


def spawn(
    args: list[str], *, log: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group with stdout and stderr appended to `log`."""
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
        start_new_session=True,  # own process group: stop() signals the whole group
        preexec_fn=_die_with_parent if _arm_parent_death_signal() else None,
    )


def stop_process_group(
    proc: subprocess.Popen[bytes], *, kill: bool = False, grace: float = 5.0
) -> None:
    """SIGTERM (or SIGKILL) the process group, escalate to SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)
