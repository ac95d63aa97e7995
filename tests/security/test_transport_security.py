"""Transport promises, end to end through the CLI:
- `Authorization` never goes to a redirect target on another origin (a blob redirect to
  "object storage", as registries on S3/GCS do);
- TLS certificates are verified by default; `tls: insecure` works and is warned about once
  per host; `regcert` makes a private CA trusted without that warning;
- credential helper names and hosts cannot inject shell commands (no shell is used)."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.regplan_cli import regplan
from tests.reliability.images import ImageSet, assert_mirrored, make_images, push_images
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.integration


class BlobStorage:
    """Another origin serving blobs by digest, recording every request's headers."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.seen: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.seen.append(dict(self.headers.items()))
                digest = self.path.split("?")[0].rsplit("/", 1)[-1]
                body = owner.blobs.get(digest)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> BlobStorage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def seeded(server: RegistryServer, tmp_path: Path, repo: str = "app") -> ImageSet:
    images = make_images(tmp_path / f"layout-{server.port}", seed=11, images=2, layers=2)
    push_images(images, server, repo)
    return images


def test_authorization_is_not_sent_to_a_redirect_on_another_origin(
    auth_registry: RegistryServer, registry: RegistryServer, tmp_path: Path
) -> None:
    images = seeded(auth_registry, tmp_path)
    with FaultProxy(auth_registry.host) as proxy, BlobStorage(images.blobs) as storage:
        proxy.add(Fault("redirect", r"/blobs/sha256:", "GET", times=-1, location=storage.url))
        cfg = tmp_path / "regplan.yml"
        cfg.write_text(
            f"creds:\n  - registry: {proxy.host}\n    tls: disabled\n"
            f"    user: {auth_registry.user}\n    pass: {auth_registry.password}\n"
            f"  - registry: {registry.host}\n    tls: disabled\n"
            f"defaults:\n  skipDockerConfig: true\nsync:\n"
            f"  - source: {proxy.host}/app\n    target: {registry.host}/app\n"
            f"    type: repository\n"
        )
        result = regplan("once", "-c", str(cfg), cwd=tmp_path)
        assert result.code == 0, str(result)
        redirected = proxy.requests("GET", r"/blobs/sha256:")
        assert redirected and all(s.status == 307 for s in redirected)
        assert all("Authorization" in s.headers for s in redirected), "auth was not in play"
        assert len(storage.seen) == len(redirected), "every blob came from the storage"
        leaked = [h for h in storage.seen if any(k.lower() == "authorization" for k in h)]
        assert leaked == []
    assert_mirrored(registry.url, registry.host, "app", images.tags)


# -- TLS ----------------------------------------------------------------------------------------


def tls_config(path: Path, src: RegistryServer, tgt: RegistryServer, src_tls: str,
               tgt_tls: str) -> Path:  # fmt: skip
    def entry(server: RegistryServer, setting: str) -> str:
        if setting == "regcert":
            pem = (server.ca_pem or "").strip().replace("\n", "\n      ")
            return f"  - registry: {server.host}\n    regcert: |\n      {pem}\n"
        return f"  - registry: {server.host}\n    tls: {setting}\n"

    path.write_text(
        "creds:\n" + entry(src, src_tls) + entry(tgt, tgt_tls)
        + f"defaults:\n  skipDockerConfig: true\nsync:\n"
        f"  - source: {src.host}/app\n    target: {tgt.host}/app\n    type: repository\n"
    )  # fmt: skip
    return path


@pytest.fixture
def tls_pair(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> Iterator[tuple[RegistryServer, RegistryServer, ImageSet]]:
    src, tgt = registry_factory(tls=True), registry_factory(tls=True)
    images = seeded(src, tmp_path)
    yield src, tgt, images


def test_tls_is_verified_by_default(
    tls_pair: tuple[RegistryServer, RegistryServer, ImageSet], tmp_path: Path
) -> None:
    src, tgt, _ = tls_pair
    cfg = tls_config(tmp_path / "regplan.yml", src, tgt, "enabled", "enabled")
    result = regplan("once", "-c", str(cfg), cwd=tmp_path)
    assert result.code == 1, str(result)
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert "Sleeping for backoff" not in result.stderr, "a refused certificate is not transient"
    assert "Traceback" not in result.stderr
    assert [e for e in tgt.requests() if e.method in ("PUT", "POST", "PATCH")] == []


def test_insecure_tls_warns_once_per_host(
    tls_pair: tuple[RegistryServer, RegistryServer, ImageSet], tmp_path: Path
) -> None:
    src, tgt, images = tls_pair
    cfg = tls_config(tmp_path / "regplan.yml", src, tgt, "insecure", "insecure")
    result = regplan("once", "-c", str(cfg), cwd=tmp_path)
    assert result.code == 0, str(result)
    warnings = [line for line in result.stderr.splitlines() if "verification disabled" in line]
    assert len(warnings) == 2, "\n".join(warnings)
    assert {src.host, tgt.host} == {
        next(h for h in (src.host, tgt.host) if h in line) for line in warnings
    }
    assert all("level=WARN" in line for line in warnings)
    assert len(tgt.requests()) > 10, "one warning for many requests"
    assert sorted(_tags(tgt)) == sorted(images.tags)


def test_regcert_trusts_a_private_ca_without_warning(
    tls_pair: tuple[RegistryServer, RegistryServer, ImageSet], tmp_path: Path
) -> None:
    src, tgt, images = tls_pair
    cfg = tls_config(tmp_path / "regplan.yml", src, tgt, "regcert", "regcert")
    result = regplan("once", "-c", str(cfg), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "verification disabled" not in result.stderr
    assert sorted(_tags(tgt)) == sorted(images.tags)


def _tags(server: RegistryServer) -> list[str]:
    import httpx

    listing = httpx.get(
        f"{server.url}/v2/app/tags/list", verify=server.ssl_context() or True, timeout=10
    )
    return list(listing.json().get("tags") or [])


# -- credential helpers -------------------------------------------------------------------------

EVIL_NAMES = [
    "docker-credential-x; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "x && touch {marker}",
    "x | touch {marker}",
    "x\ntouch {marker}",
]


def helper_on_path(bin_dir: Path, user: str, password: str, log: Path) -> str:
    """A real helper: writes what it got on stdin to `log`, answers with the login."""
    bin_dir.mkdir(exist_ok=True)
    helper = bin_dir / "docker-credential-regplantest"
    reply = json.dumps({"ServerURL": "", "Username": user, "Secret": password})
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 1\ncat > "{log}"\necho \'{reply}\'\n'
    )  # fmt: skip
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    return helper.name


def helper_config(path: Path, src: RegistryServer, tgt: RegistryServer, helper: str,
                  cred_host: str = "") -> Path:  # fmt: skip
    quoted = json.dumps(helper)  # a YAML double-quoted string, newlines escaped
    host_line = f"    credHost: {json.dumps(cred_host)}\n" if cred_host else ""
    path.write_text(
        f"creds:\n  - registry: {src.host}\n    tls: disabled\n    credHelper: {quoted}\n"
        + host_line
        + f"  - registry: {tgt.host}\n    tls: disabled\n"
        f"defaults:\n  skipDockerConfig: true\nsync:\n"
        f"  - source: {src.host}/app\n    target: {tgt.host}/app\n    type: repository\n"
    )
    return path


@pytest.mark.parametrize("name", EVIL_NAMES, ids=range(len(EVIL_NAMES)))
def test_credential_helper_names_cannot_inject_shell(
    auth_registry: RegistryServer, registry: RegistryServer, tmp_path: Path, name: str
) -> None:
    seeded(auth_registry, tmp_path)
    marker = tmp_path / "pwned"
    cfg = helper_config(tmp_path / "regplan.yml", auth_registry, registry,
                        name.format(marker=marker))  # fmt: skip
    result = regplan("plan", "-c", str(cfg), cwd=tmp_path)
    assert not marker.exists(), "a shell ran the helper name"
    assert result.code == 1, str(result)
    assert "credential helper" in result.stderr and "Traceback" not in result.stderr


def test_credential_host_reaches_the_helper_as_data(
    auth_registry: RegistryServer, registry: RegistryServer, tmp_path: Path
) -> None:
    """Positive control for the cases above: a real helper on PATH is run and its login
    works; a credHost full of shell syntax reaches it verbatim on stdin, and runs nothing."""
    images = seeded(auth_registry, tmp_path)
    marker, stdin_log = tmp_path / "pwned", tmp_path / "helper-stdin"
    helper = helper_on_path(tmp_path / "bin", auth_registry.user, auth_registry.password,
                            stdin_log)  # fmt: skip
    evil_host = f"$(touch {marker}); `touch {marker}`"
    cfg = helper_config(tmp_path / "regplan.yml", auth_registry, registry, helper, evil_host)
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    result = regplan("once", "-c", str(cfg), cwd=tmp_path, env={"PATH": path})
    assert result.code == 0, str(result)
    assert not marker.exists()
    assert stdin_log.read_text().strip() == evil_host
    assert_mirrored(registry.url, registry.host, "app", images.tags)


def test_docker_config_helper_names_are_refused(
    auth_registry: RegistryServer, registry: RegistryServer, tmp_path: Path
) -> None:
    """credHelpers/credsStore suffixes that are not plain names are never run."""
    seeded(auth_registry, tmp_path)
    marker = tmp_path / "pwned"
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({
        "credHelpers": {auth_registry.host: f"x; touch {marker}"},
        "credsStore": f"../../bin/sh -c 'touch {marker}'",
    }))  # fmt: skip
    cfg = tmp_path / "regplan.yml"
    cfg.write_text(
        f"creds:\n  - registry: {auth_registry.host}\n    tls: disabled\n"
        f"  - registry: {registry.host}\n    tls: disabled\nsync:\n"
        f"  - source: {auth_registry.host}/app\n    target: {registry.host}/app\n"
        "    type: repository\n"
    )
    result = regplan("plan", "-c", str(cfg), cwd=tmp_path, env={"DOCKER_CONFIG": str(docker)})
    assert not marker.exists()
    assert result.code == 1, str(result)  # anonymous: the source refuses
    assert "unauthorized" in result.stderr.lower() and "Traceback" not in result.stderr
