"""Shared fixtures: real registries on 127.0.0.1, the regclient test data, OCI Layout copies.

Registries are function-scoped (a distribution registry is ready in ~30 ms, so every test gets
clean storage and its own request log); certificates and signing keys are session-scoped.
Under pytest-xdist every worker starts its own servers on random free ports.
A missing `docker-registry` or `skopeo` FAILS the tests that need them (CI installs both).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The helpers are imported as `tests.servers`. `python -m pytest` (CI, the Justfile) puts the
# repo root on sys.path; a bare `pytest` does not, because tests/ is not a package.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.servers import distribution  # noqa: E402
from tests.servers.certs import CertificateAuthority, IssuedCert, issue_cert, make_ca  # noqa: E402
from tests.servers.distribution import INSTALL_HINT, RegistryServer  # noqa: E402


def require_tools(*tools: str) -> None:
    """Fail (not skip) when a server binary is missing: a skipped integration test would hide
    that CI lost its registry."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: {INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _stop_leftover_servers() -> Iterator[None]:
    yield
    distribution.stop_all()


# -- certificates ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """The session's CA; every test server certificate chains to it."""
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def server_cert(
    test_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> IssuedCert:
    """A server certificate for 127.0.0.1, ::1 and localhost."""
    return issue_cert(test_ca, tmp_path_factory.mktemp("server-cert"), "registry")


# -- distribution registries ----------------------------------------------------------------


def _serve(server: RegistryServer) -> Iterator[RegistryServer]:
    require_tools(distribution.REGISTRY_BINARY)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A fresh distribution registry over plain HTTP."""
    yield from _serve(RegistryServer(tmp_path_factory.mktemp("registry")))


@pytest.fixture
def tls_registry(
    tmp_path_factory: pytest.TempPathFactory, server_cert: IssuedCert
) -> Iterator[RegistryServer]:
    """A fresh registry over HTTPS; trust `.ca_file` / `.ca_pem` (or `.ssl_context()`)."""
    yield from _serve(RegistryServer(tmp_path_factory.mktemp("tls-registry"), tls=server_cert))


@pytest.fixture
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A fresh registry with htpasswd basic auth for `.user` / `.password` (plain HTTP)."""
    yield from _serve(RegistryServer(tmp_path_factory.mktemp("auth-registry"), htpasswd=True))
