"""Running a tool once and what is measured about it: wall and CPU time, peak RSS (from wait4,
for the tool's process only), and the requests both registries saw (from their access logs,
the same way for every tool)."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.distribution import AccessLogEntry, RegistryServer

MB = 1_000_000


@dataclass(frozen=True)
class ProcessStats:
    wall: float  # seconds
    cpu: float  # user + system seconds
    peak_rss: int  # bytes
    returncode: int


GNU_TIME = "/usr/bin/time"


def run_process(
    argv: Sequence[str], *, log: Path, env: dict[str, str] | None = None, timeout: float = 1800
) -> ProcessStats:
    """Run `argv` with stdout and stderr appended to `log`.

    CPU time and peak RSS come from GNU time wrapped around the tool: a child forked straight
    from this (large) Python process starts with this process's resident pages, and its
    ru_maxrss would report them. Wall time is measured here (time's %e has 10 ms steps)."""
    stats_file = log.with_suffix(".time")
    wrapped = [GNU_TIME, "-f", "%U %S %M", "-o", str(stats_file), *argv]
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
        wall = time.perf_counter() - start
    # "Command exited with non-zero status N" comes first when the tool failed
    user, system, max_kib = stats_file.read_text().strip().splitlines()[-1].split()
    return ProcessStats(
        wall=wall,
        cpu=float(user) + float(system),
        peak_rss=int(max_kib) * 1024,
        returncode=returncode,
    )


def registry_pid(server: RegistryServer) -> int | None:
    """The docker-registry process serving `server` (found by its config file argument)."""
    wanted = str(server.config_file).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in argv:
            return int(entry.name)
    return None


def process_cpu(pid: int | None) -> float:
    """User + system seconds a live process has used so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()  # after "(comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_GO_DURATION = re.compile(r"([\d.]+)(ms|µs|us|ns|h|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
_COMPLETED = re.compile(
    r'msg="response completed".*http\.request\.method=(?P<method>\w+) .*'
    r'http\.request\.uri="?(?P<uri>[^" ]+)"?.*http\.response\.duration="?(?P<duration>[^" ]+)"?'
)


def go_duration(text: str) -> float:
    """Seconds in a Go time.Duration string ("1m2.5s", "14.6ms", "822.4µs")."""
    return sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_DURATION.findall(text))


def upload_request_seconds(log_file: Path) -> float:
    """How long the registry spent on the longest blob-upload request (PUT or PATCH) in its
    application log: the request that carried a big layer, whoever sent it. A tool-neutral
    transfer time, free of the tool's start-up and planning."""
    longest = 0.0
    for line in log_file.read_text(errors="replace").splitlines():
        m = _COMPLETED.search(line)
        if m and m["method"] in ("PUT", "PATCH") and "/blobs/uploads/" in m["uri"]:
            longest = max(longest, go_duration(m["duration"]))
    return longest


@dataclass
class Requests:
    """Requests one tool run caused, on every registry involved, classified."""

    entries: list[tuple[str, AccessLogEntry]] = field(default_factory=list)  # (role, entry)

    @classmethod
    def collect(cls, registries: dict[str, RegistryServer]) -> Requests:
        found = cls()
        seen: set[int] = set()
        for role, server in registries.items():
            if id(server) in seen:  # same-registry scenarios name one server twice
                continue
            seen.add(id(server))
            found.entries.extend((role, e) for e in server.requests())
        return found

    def on(self, role: str) -> list[AccessLogEntry]:
        return [e for r, e in self.entries if r == role]

    @property
    def total(self) -> int:
        return len(self.entries)

    def by_kind(self, role: str | None = None) -> Counter[str]:
        """Counts keyed "METHOD kind" (e.g. "HEAD manifest", "PATCH upload")."""
        return Counter(f"{e.method} {e.kind}" for r, e in self.entries if role in (None, r))

    def count(self, role: str | None, method: str, kind: str) -> int:
        return sum(
            1
            for r, e in self.entries
            if role in (None, r) and e.method == method and e.kind == kind
        )

    def manifest_requests(self) -> int:
        return sum(1 for _, e in self.entries if e.kind == "manifest")

    def bytes_served(self, role: str | None = None) -> int:
        """Response bodies: what the tool read from the registries."""
        return sum(e.size for r, e in self.entries if role in (None, r) and e.method == "GET")

    def bytes_received(self, sizes: dict[str, int], tags: dict[str, int]) -> tuple[int, int]:
        """What the registries stored from the tool: completed blob uploads (PUT ?digest=) and
        manifest PUTs, sized from the dataset (access logs carry no request sizes). Returns
        (bytes, uploads whose size is unknown, e.g. a manifest the tool rewrote)."""
        total = unknown = 0
        for _, e in self.entries:
            if e.method != "PUT" or e.status >= 300:
                continue
            if e.kind == "upload":
                digest = urllib.parse.parse_qs(e.query).get("digest", [""])[0]
            elif e.kind == "manifest":
                digest = e.reference
            else:
                continue
            size = sizes.get(digest, tags.get(f"{e.repo}:{digest}", -1))
            if size < 0:
                unknown += 1
            else:
                total += size
        return total, unknown

    def mounts(self) -> tuple[int, int]:
        """(mounted, refused): POST ?mount= answered 201, or 202 (an upload began instead)."""
        posts = [e for _, e in self.entries if e.method == "POST" and "mount=" in e.query]
        return sum(1 for e in posts if e.status == 201), sum(1 for e in posts if e.status != 201)

    def blob_gets_per_digest(self, role: str) -> Counter[str]:
        return Counter(e.reference for e in self.on(role) if e.method == "GET" and e.kind == "blob")

    def errors(self) -> Counter[str]:
        """Non-2xx answers by "METHOD kind status" (404s of existence checks are normal)."""
        return Counter(
            f"{e.method} {e.kind} {e.status}" for _, e in self.entries if e.status >= 300
        )


@dataclass
class Run:
    """One run of one tool in one scenario."""

    tool: str
    round: int
    stats: ProcessStats
    requests: Requests
    bytes_moved: int
    registry_cpu: float = 0.0  # seconds the registries spent serving this run
    unknown_sizes: int = 0
    notes: list[str] = field(default_factory=list)


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")
