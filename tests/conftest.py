"""Shared fixtures: real registries on 127.0.0.1, the regclient test data, OCI Layout copies.

Registries are function-scoped (a distribution registry is ready in ~30 ms, so every test gets
clean storage and its own request log); certificates and signing keys are session-scoped.
Under pytest-xdist every worker starts its own servers on random free ports.
A missing `docker-registry` or `skopeo` FAILS the tests that need them (CI installs both).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The helpers are imported as `tests.servers`. `python -m pytest` (CI, the Justfile) puts the
# repo root on sys.path; a bare `pytest` does not, because tests/ is not a package.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.servers import distribution, paths, skopeo  # noqa: E402
from tests.servers.certs import CertificateAuthority, IssuedCert, issue_cert, make_ca  # noqa: E402
from tests.servers.distribution import INSTALL_HINT, RegistryServer  # noqa: E402
from tests.servers.ociregistry import OCIRegistry  # noqa: E402
from tests.servers.paths import REGCLIENT_REPOS  # noqa: E402
from tests.servers.skopeo import SeededStorage  # noqa: E402
from tests.servers.tokenserver import TokenServer  # noqa: E402


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
def registry_factory(
    tmp_path_factory: pytest.TempPathFactory, server_cert: IssuedCert
) -> Iterator[Callable[..., RegistryServer]]:
    """Start extra or combined registries: `registry_factory(tls=True, htpasswd=True)`, or
    `read_only=`, `token_server=`, `root=` (RegistryServer's options). All stop at teardown."""
    require_tools(distribution.REGISTRY_BINARY)
    started: list[RegistryServer] = []

    def make(*, tls: bool = False, **options: Any) -> RegistryServer:
        workdir = tmp_path_factory.mktemp("registry")
        server = RegistryServer(workdir, tls=server_cert if tls else None, **options)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A fresh registry with htpasswd basic auth for `.user` / `.password` (plain HTTP)."""
    yield from _serve(RegistryServer(tmp_path_factory.mktemp("auth-registry"), htpasswd=True))


@pytest.fixture(scope="session")
def token_signing_cert(
    test_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> IssuedCert:
    """The RSA certificate whose key signs registry tokens (chains to `test_ca`)."""
    return issue_cert(
        test_ca, tmp_path_factory.mktemp("token-cert"), "token-signer", sans=(), rsa=True,
        extended_usage="codeSigning",
    )  # fmt: skip


@pytest.fixture
def token_server(token_signing_cert: IssuedCert) -> Iterator[TokenServer]:
    """A token server for one user (`.user` / `.password`); `.requests()` lists token fetches."""
    with TokenServer(token_signing_cert) as server:
        yield server


@pytest.fixture
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[RegistryServer]:
    """A fresh registry with token auth; its `.token_server` (also the `token_server` fixture)
    issues the tokens, and `.user` / `.password` are valid there."""
    yield from _serve(
        RegistryServer(tmp_path_factory.mktemp("token-registry"), token_server=token_server)
    )


# -- regclient's test data, seeded ----------------------------------------------------------


@pytest.fixture(scope="session")
def regclient_testdata() -> Path:
    """`../shared/testdata/regclient` (or under $REGPLAN_SHARED): OCI Layouts testrepo, external."""
    path = paths.regclient_testdata()
    if not all((path / repo / "index.json").is_file() for repo in REGCLIENT_REPOS):
        pytest.fail(
            f"regclient test data not found at {path}: expected ../shared beside the repo "
            "(as in CI), or set REGPLAN_SHARED to the shared/ directory",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def seeded_storage(
    tmp_path_factory: pytest.TempPathFactory, regclient_testdata: Path
) -> SeededStorage:
    require_tools(distribution.REGISTRY_BINARY, "skopeo")
    workdir = tmp_path_factory.mktemp("seeded-golden")
    with RegistryServer(workdir) as server:
        reports = {
            repo: skopeo.seed_layout(regclient_testdata / repo, server, repo)
            for repo in REGCLIENT_REPOS
        }
    return SeededStorage(server.root, reports)  # the server is stopped; tests copy its storage


def copy_tree_writable(source: Path, destination: Path) -> Path:
    """Copy a tree and make the copy writable (CI's ../shared has no write bits)."""
    shutil.copytree(source, destination, copy_function=shutil.copyfile)
    for directory, _, files in os.walk(destination):
        os.chmod(directory, os.stat(directory).st_mode | stat.S_IWUSR)
        for name in files:
            file = os.path.join(directory, name)
            os.chmod(file, os.stat(file).st_mode | stat.S_IWUSR)
    return destination


@pytest.fixture
def seeded_registry(
    tmp_path_factory: pytest.TempPathFactory, seeded_storage: SeededStorage
) -> Iterator[RegistryServer]:
    """A fresh plain-HTTP registry holding regclient's `testrepo` and `external` with every tag
    (and untagged index.json entry) at its layout digest, like regsync's tests. Each test gets
    its own copy of the storage, so writes do not leak into other tests."""
    workdir = tmp_path_factory.mktemp("seeded-registry")
    root = copy_tree_writable(seeded_storage.root, workdir / "storage")
    yield from _serve(RegistryServer(workdir, root=root))


@pytest.fixture
def readonly_registry(
    tmp_path_factory: pytest.TempPathFactory, seeded_storage: SeededStorage
) -> Iterator[RegistryServer]:
    """A read-only registry (distribution's maintenance read-only mode) serving the seeded
    `testrepo` and `external`: reads work, every write is refused with 405."""
    workdir = tmp_path_factory.mktemp("readonly-registry")
    root = copy_tree_writable(seeded_storage.root, workdir / "storage")
    yield from _serve(RegistryServer(workdir, root=root, read_only=True))


@pytest.fixture
def ocidir_copy(tmp_path: Path, regclient_testdata: Path) -> Path:
    """A writable directory holding copies of the OCI Layouts `testrepo/` and `external/`."""
    destination = tmp_path / "ocidir"
    for repo in REGCLIENT_REPOS:
        copy_tree_writable(regclient_testdata / repo, destination / repo)
    return destination


# -- the Python OCI registry ----------------------------------------------------------------


@pytest.fixture
def referrers_registry() -> Iterator[OCIRegistry]:
    """A fresh in-process OCI registry with the referrers API (tests/servers/ociregistry.py)."""
    with OCIRegistry() as server:
        yield server
