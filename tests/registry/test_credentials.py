"""docker config.json import, credential helpers, and how login sources merge."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from regplan.config.hosts import Host, TLSMode
from regplan.errors import UnauthorizedError
from regplan.registry.credentials import (
    Credential,
    CredentialStore,
    hosts_from_docker_config,
    load_hosts,
    merge_host,
    read_docker_config,
    registry_from_config_key,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("https://index.docker.io/v1/", ("docker.io", False)),
        ("registry-1.docker.io", ("docker.io", False)),
        ("docker.io", ("docker.io", False)),
        ("ghcr.io", ("ghcr.io", False)),
        ("https://quay.io", ("quay.io", False)),
        ("http://localhost:5000", ("localhost:5000", True)),
        ("registry.example.org/path", None),
        ("", None),
        ("bad host", None),
    ],
)
def test_registry_from_config_key(key: str, expected: tuple[str, bool] | None) -> None:
    assert registry_from_config_key(key) == expected


def test_auths_entries() -> None:
    hosts = hosts_from_docker_config(
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass\x00\x00")},
                "ghcr.io": {"username": "gh", "password": "ghp"},
                "http://localhost:5000": {"auth": b64("l:p")},
                "quay.io": {"identitytoken": "idtok"},
                "empty.example": {},
                "registry.example.org/path": {"auth": b64("x:y")},
            }
        },
        list_helper=lambda program: {},
    )
    by_name = {h.name: h for h in hosts}
    assert set(by_name) == {"docker.io", "ghcr.io", "localhost:5000", "quay.io"}
    assert (by_name["docker.io"].user, by_name["docker.io"].password) == ("hubuser", "hubpass")
    assert by_name["localhost:5000"].tls == TLSMode.DISABLED
    assert by_name["quay.io"].token == "idtok"
    assert "hubpass" not in repr(by_name["docker.io"])


def test_cred_helpers_and_creds_store() -> None:
    listed: list[str] = []

    def list_helper(program: str) -> dict[str, str]:
        listed.append(program)
        return {"https://store.example": "me", "bad/path/x": "me"}

    hosts = hosts_from_docker_config(
        {
            "auths": {"desktop.example": {}, "gcr.io": {"auth": b64("a:b")}},
            "credHelpers": {"gcr.io": "gcloud", "ecr.example": "ecr-login", "evil": "../x"},
            "credsStore": "desktop",
        },
        list_helper=list_helper,
    )
    by_name = {h.name: h for h in hosts}
    assert listed == ["docker-credential-desktop"]
    assert by_name["gcr.io"].cred_helper == "docker-credential-gcloud"
    assert by_name["gcr.io"].user == ""  # the helper answers for it
    assert by_name["ecr.example"].cred_helper == "docker-credential-ecr-login"
    assert by_name["desktop.example"].cred_helper == "docker-credential-desktop"
    assert by_name["store.example"].cred_helper == "docker-credential-desktop"
    assert "evil" not in by_name


def test_read_docker_config_file_and_env(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"a.example": {"auth": b64("u:p")}}})
    )
    env = {
        "DOCKER_CONFIG": str(tmp_path),
        "DOCKER_AUTH_CONFIG": json.dumps({"auths": {"b.example": {"auth": b64("u2:p2")}}}),
    }
    names = sorted(h.name for h in read_docker_config(env))
    assert names == ["a.example", "b.example"]


def test_home_docker_config_and_broken_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text("{not json")
    assert read_docker_config({"HOME": str(tmp_path)}) == []
    assert read_docker_config({"HOME": str(tmp_path / "missing")}) == []


def test_merge_rules() -> None:
    base = Host(name="r", user="old", password="oldpass", tls=TLSMode.DISABLED)
    helper = merge_host(base, Host(name="r", cred_helper="docker-credential-x"))
    assert (helper.user, helper.password, helper.cred_helper) == ("", "", "docker-credential-x")
    assert helper.tls == TLSMode.DISABLED  # fields the override did not set are kept
    back = merge_host(helper, Host(name="r", user="new", password="np"))
    assert (back.user, back.password, back.cred_helper) == ("new", "np", "")
    prio = merge_host(base, Host(name="r", priority=3, mirrors=("m",)))
    assert (prio.user, prio.priority, prio.mirrors) == ("old", 3, ("m",))


def test_load_hosts_precedence(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "r.example": {"auth": b64("docker:dpass")},
                    "s.example": {"auth": b64("s:p")},
                }
            }
        )
    )
    env = {"DOCKER_CONFIG": str(tmp_path)}
    creds = [Host(name="r.example", user="cfg", password="cpass", req_concurrent=7)]
    hosts = {
        h.name: h
        for h in load_hosts(creds, skip_docker_config=False, env=env, certs_dir=tmp_path / "none")
    }
    assert set(hosts) == {"docker.io", "r.example", "s.example"}
    assert (hosts["r.example"].user, hosts["r.example"].req_concurrent) == ("cfg", 7)
    skipped = {h.name for h in load_hosts(creds, skip_docker_config=True, env=env)}
    assert skipped == {"docker.io", "r.example"}


def test_load_hosts_docker_certs_dir(tmp_path: Path) -> None:
    (tmp_path / "r.example:5000").mkdir()
    (tmp_path / "r.example:5000" / "ca.crt").write_text("PEM-CA")
    hosts = {
        h.name: h
        for h in load_hosts(
            [Host(name="r.example:5000")], skip_docker_config=False, env={}, certs_dir=tmp_path
        )
    }
    assert hosts["r.example:5000"].regcert == "PEM-CA"


# -- helpers run as programs ------------------------------------------------------------------

HELPER = """#!/bin/sh
# a fake docker credential helper: logs each call, answers from the host it is given
read host
echo "$1 $host" >> "{log}"
case "$host" in
  reg.example) echo '{{"ServerURL":"reg.example","Username":"alice","Secret":"s3cret"}}' ;;
  tok.example) echo '{{"ServerURL":"tok.example","Username":"<token>","Secret":"idtoken"}}' ;;
  https://index.docker.io/v1/) echo '{{"Username":"hub","Secret":"hubsecret"}}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""


@pytest.fixture
def helper_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.log"
    script = tmp_path / "docker-credential-test"
    script.write_text(HELPER.format(log=log))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    return log


def test_helper_answers_and_is_cached(helper_on_path: Path) -> None:
    now = [0.0]
    store = CredentialStore(clock=lambda: now[0])
    host = Host(name="reg.example", cred_helper="docker-credential-test", cred_expire=60)
    assert store.get(host) == Credential(user="alice", password="s3cret")
    assert store.get(host).password == "s3cret"
    assert helper_on_path.read_text().splitlines() == ["get reg.example"]
    now[0] = 61.0
    store.get(host)
    assert len(helper_on_path.read_text().splitlines()) == 2
    assert "s3cret" not in repr(store.get(host)) and "s3cret" not in repr(store)


def test_helper_token_username_docker_hub_and_cred_host(helper_on_path: Path) -> None:
    store = CredentialStore()
    assert (
        store.get(Host(name="tok.example", cred_helper="docker-credential-test")).token == "idtoken"
    )
    hub = store.get(Host(name="docker.io", cred_helper="docker-credential-test"))
    assert hub.user == "hub"
    aliased = Host(name="other", cred_helper="docker-credential-test", cred_host="reg.example")
    assert store.get(aliased).user == "alice"


def test_helper_without_credentials_means_anonymous(helper_on_path: Path) -> None:
    store = CredentialStore()
    assert store.get(Host(name="unknown.example", cred_helper="docker-credential-test")).empty


def test_missing_or_failing_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    calls: list[str] = []

    def runner(program: str, action: str, stdin: str) -> str:
        calls.append(stdin)
        raise UnauthorizedError(f"credential helper {program} get failed (exit 1)")

    store = CredentialStore(runner=runner, clock=lambda: now[0])
    host = Host(name="r", cred_helper="docker-credential-broken")
    for _ in range(3):
        with pytest.raises(UnauthorizedError):
            store.get(host)
    assert len(calls) == 1  # not asked again within the retry delay
    now[0] = 6.0
    with pytest.raises(UnauthorizedError):
        store.get(host)
    assert len(calls) == 2
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UnauthorizedError, match="not found in PATH"):
        CredentialStore().get(Host(name="r", cred_helper="docker-credential-nope"))
