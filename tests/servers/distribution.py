"""CNCF distribution 2.8 (Debian's `docker-registry`) as a real registry for tests.

Each `RegistryServer` owns a work directory holding its config, its filesystem storage (the
in-memory driver takes uploads at ~3 MB/s) and its log. It listens on 127.0.0.1 on a random
port and is ready in ~30 ms. Variants: plain HTTP, TLS, htpasswd basic auth, token auth, and
read-only. `stop()` / `start()` keep the port and the storage, so a test can restart the
registry in the middle of an apply.

The access log (Apache combined format, which distribution writes to stdout) lands in the same
file as the application log; `requests()` parses it into `AccessLogEntry` values for counting.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import threading
import urllib.parse
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from tests.servers.certs import IssuedCert
from tests.servers.net import LOOPBACK, free_port, poll_until, spawn, stop_process_group

if TYPE_CHECKING:
    from tests.servers.tokenserver import TokenServer

REGISTRY_BINARY = "docker-registry"
INSTALL_HINT = (
    "the test registries need Debian's `docker-registry` (CNCF distribution 2.8) and `skopeo`: "
    "apt-get install docker-registry skopeo openssl (CI does this in .ci/run)"
)

# distribution's htpasswd backend accepts bcrypt only, and neither Python's stdlib (crypt is
# deprecated and leaves in 3.13) nor CI (no apache2-utils) makes bcrypt. So the test account is
# fixed, its hash made once with `htpasswd -nbB -C 5 regplan regplan-secret`.
HTPASSWD_USER = "regplan"
HTPASSWD_PASSWORD = "regplan-secret"
HTPASSWD_LINE = "regplan:$2y$05$dz/HQPlHwQoiRAqGfSujAuUlUo8/C8XNzQRz8Shq2N8VBu.pI.zUC"

# Requests the harness itself makes (readiness and log-sync probes) carry this query parameter
# and are left out of `requests()`.
_PROBE_PARAM = "regplan-test-probe"

# 127.0.0.1 - - [27/Nov/2026:09:37:37 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "Python-urllib/3.11"
_ACCESS_LINE = re.compile(
    r"^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<target>\S+) (?P<proto>[^"]+)" (?P<status>\d{3}) (?P<size>\d+|-)'
    r' "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$'
)
_API_PATH = re.compile(
    r"^/v2/(?P<repo>.+?)/(?P<kind>manifests|blobs/uploads|blobs|tags/list|referrers)(?:/(?P<rest>.*))?$"
)


@dataclass(frozen=True)
class AccessLogEntry:
    """One request as the registry saw it."""

    method: str
    path: str  # without the query string
    query: str
    status: int
    size: int  # response body bytes
    user_agent: str

    @property
    def kind(self) -> str:
        """ "ping", "catalog", "manifest", "blob", "upload", "tags", "referrers" or "other"."""
        if self.path in ("/v2/", "/v2"):
            return "ping"
        if self.path == "/v2/_catalog":
            return "catalog"
        m = _API_PATH.match(self.path)
        if not m:
            return "other"
        return {
            "manifests": "manifest",
            "blobs": "blob",
            "blobs/uploads": "upload",
            "tags/list": "tags",
            "referrers": "referrers",
        }[m.group("kind")]

    @property
    def repo(self) -> str:
        m = _API_PATH.match(self.path)
        return m.group("repo") if m else ""

    @property
    def reference(self) -> str:
        """Tag or digest of a manifest request, digest of a blob request, else ""."""
        m = _API_PATH.match(self.path)
        return (m.group("rest") or "") if m and m.group("kind") != "blobs/uploads" else ""


def parse_access_log(text: str) -> list[AccessLogEntry]:
    """Access-log entries of `text`; application-log lines (`time=... level=...`) are skipped."""
    entries = []
    for line in text.splitlines():
        m = _ACCESS_LINE.match(line)
        if not m:
            continue
        parsed = urllib.parse.urlsplit(m.group("target"))
        entries.append(
            AccessLogEntry(
                method=m.group("method"),
                path=parsed.path,
                query=parsed.query,
                status=int(m.group("status")),
                size=0 if m.group("size") == "-" else int(m.group("size")),
                user_agent=m.group("agent"),
            )
        )
    return entries


@dataclass(frozen=True)
class TokenAuthSettings:
    """distribution's `auth: token` section (`TokenServer.settings()`)."""

    realm: str
    service: str
    issuer: str
    root_cert_bundle: Path


_running: weakref.WeakSet[RegistryServer] = weakref.WeakSet()


def stop_all() -> None:
    """Stop every registry still running (session teardown; a safety net for leaked fixtures)."""
    for server in list(_running):
        server.stop()


atexit.register(stop_all)  # also when pytest exits without running session teardown


class RegistryServer:
    """A distribution registry on 127.0.0.1. Call `start()` (or use it as a context manager)."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: IssuedCert | None = None,
        htpasswd: bool = False,
        token_server: TokenServer | None = None,
        credentials: tuple[str, str] | None = None,
        read_only: bool = False,
        root: Path | None = None,
        delete: bool = True,
    ) -> None:
        if htpasswd and token_server:
            raise ValueError("choose htpasswd or token auth, not both")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.htpasswd = htpasswd
        self.token_server = token_server  # started and stopped by its owner
        self.read_only = read_only
        self.delete = delete  # storage.delete.enabled: off, every DELETE answers 405 UNSUPPORTED
        self.root = root or workdir / "storage"
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_file = workdir / "registry.log"
        self.config_file = workdir / "config.yml"
        if htpasswd:
            credentials = credentials or (HTPASSWD_USER, HTPASSWD_PASSWORD)
        elif token_server:
            credentials = credentials or (token_server.user, token_server.password)
        self.user, self.password = credentials or ("", "")
        self.port = 0
        # Fixed per server, not per process: upload URLs carry state signed with this secret,
        # so an upload begun before a restart can continue after it.
        self._http_secret = secrets.token_hex(16)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self._probe_lock = threading.Lock()
        self._probe_count = 0
        self.cert_dir: Path | None = None
        if tls:
            # skopeo/containers-image style: a directory with the CA as *.crt.
            self.cert_dir = workdir / "certs.d"
            self.cert_dir.mkdir(exist_ok=True)
            shutil.copyfile(tls.ca.cert_file, self.cert_dir / "ca.crt")

    # -- addresses ----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def ca_file(self) -> Path | None:
        return self.tls.ca.cert_file if self.tls else None

    @property
    def ca_pem(self) -> str | None:
        return self.tls.ca.pem if self.tls else None

    def ref(self, repo: str, tag_or_digest: str = "latest") -> str:
        """`127.0.0.1:PORT/repo:tag` (or `@sha256:...`)."""
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting this server's CA (for httpx `verify=` or http.client)."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.tls.ca.cert_file))

    # -- skopeo arguments ---------------------------------------------------------------------
    def skopeo_tls_args(self, prefix: str = "") -> list[str]:
        """`prefix` is "" for inspect/list-tags/delete, "src-" or "dest-" for copy."""
        if self.tls:
            return [f"--{prefix}cert-dir={self.cert_dir}", f"--{prefix}tls-verify=true"]
        return [f"--{prefix}tls-verify=false"]

    def skopeo_creds_args(self, prefix: str = "") -> list[str]:
        if not self.user:
            return []
        return [f"--{prefix}creds={self.user}:{self.password}"]

    def skopeo_args(self, prefix: str = "") -> list[str]:
        return self.skopeo_tls_args(prefix) + self.skopeo_creds_args(prefix)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RegistryServer:
        """Start (or start again on the same port and storage) and wait until /v2/ answers."""
        if self.running:
            return self
        if shutil.which(REGISTRY_BINARY) is None:
            raise RuntimeError(f"{REGISTRY_BINARY} not found: {INSTALL_HINT}")
        if self.htpasswd:
            (self.workdir / "htpasswd").write_text(HTPASSWD_LINE + "\n")
        # Another process may grab a freshly picked port before the registry binds it; retry
        # with a new one, but a restart must keep its port.
        attempts = 5 if self.port == 0 else 1
        for attempt in range(attempts):
            if self.port == 0 or attempt > 0:
                self.port = free_port()
            try:
                self._launch()
                return self
            except _AddressInUse:
                if attempt == attempts - 1:
                    raise
        return self

    def _launch(self) -> None:
        self.config_file.write_text(json.dumps(self._config(), indent=2))
        # Clear REGISTRY_* variables: distribution reads them as config overrides.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self._log = self.log_file.open("ab")  # append: the log spans restarts
        self._proc = spawn(
            [REGISTRY_BINARY, "serve", str(self.config_file)], log=self._log.fileno(), env=env
        )
        _running.add(self)
        try:
            poll_until(self._ready, timeout=10, what=f"docker-registry on {self.host}")
        except BaseException:
            self.stop(kill=True)
            raise

    def _ready(self) -> bool | None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            tail = self.log_file.read_text(errors="replace")[-2000:]
            if "address already in use" in tail:
                raise _AddressInUse(tail)
            raise RuntimeError(f"docker-registry exited with {self._proc.returncode}:\n{tail}")
        try:
            self._probe("ready")
        except (ConnectionError, OSError):
            return None
        return True

    def stop(self, *, kill: bool = False) -> None:
        """Stop the process group (SIGTERM, or SIGKILL with `kill=True` to simulate a crash)."""
        if self._proc is not None:
            stop_process_group(self._proc, kill=kill)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        _running.discard(self)

    def restart(self) -> RegistryServer:
        self.stop()
        return self.start()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests -----------------------------------------------------------------------------
    def requests(self) -> list[AccessLogEntry]:
        """Every request since start (or since `clear_requests()`), across restarts.

        distribution writes an access-log line after the response left the handler, so a client
        can see its response before the line exists. To not miss the last request, this sends
        a probe request and reads the log until the probe's own line appears."""
        text = self._read_log_through_probe()
        return [
            e for e in parse_access_log(text[self._log_offset :]) if _PROBE_PARAM not in e.query
        ]

    def clear_requests(self) -> None:
        """Forget the requests so far: `requests()` lists only later ones."""
        self._log_offset = len(self._read_log_through_probe())

    def _read_log_through_probe(self) -> str:
        if not self.running:
            return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        marker = self._probe("sync")

        def probe_line_written() -> str | None:
            text = self.log_file.read_text(errors="replace")
            return text if marker in text else None

        return poll_until(probe_line_written, timeout=5, what="the registry access log")

    def _probe(self, purpose: str) -> str:
        """GET /v2/?<probe>=<id>: any HTTP answer (200, 401) means the API is serving."""
        with self._probe_lock:
            self._probe_count += 1
            marker = f"{purpose}-{self._probe_count}-{secrets.token_hex(4)}"
        conn: http.client.HTTPConnection
        if self.tls:
            conn = http.client.HTTPSConnection(
                LOOPBACK, self.port, timeout=5, context=self.ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
        try:
            conn.request("GET", f"/v2/?{_PROBE_PARAM}={marker}")
            conn.getresponse().read()
        finally:
            conn.close()
        return marker

    # -- config -------------------------------------------------------------------------------
    def _config(self) -> dict[str, object]:
        storage: dict[str, object] = {
            "filesystem": {"rootdirectory": str(self.root)},
            "delete": {"enabled": self.delete},
            # Upload purging walks the storage at start-up; not wanted in fast tests.
            "maintenance": {
                "uploadpurging": {"enabled": False},
                "readonly": {"enabled": self.read_only},
            },
        }
        http_section: dict[str, object] = {
            "addr": f"{LOOPBACK}:{self.port}",
            "secret": self._http_secret,
        }
        if self.tls:
            http_section["tls"] = {
                "certificate": str(self.tls.cert_file),
                "key": str(self.tls.key_file),
            }
        config: dict[str, object] = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text"},
            "storage": storage,
            "http": http_section,
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.htpasswd:
            config["auth"] = {
                "htpasswd": {"realm": "regplan-test", "path": str(self.workdir / "htpasswd")}
            }
        elif self.token_server:
            token = self.token_server.settings()
            config["auth"] = {
                "token": {
                    "realm": token.realm,
                    "service": token.service,
                    "issuer": token.issuer,
                    "rootcertbundle": str(token.root_cert_bundle),
                }
            }
        return config  # JSON is YAML: distribution reads it as its config file


class _AddressInUse(RuntimeError):
    pass
