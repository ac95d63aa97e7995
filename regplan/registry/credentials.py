"""Where registry credentials come from: docker's config.json, credential helpers, `creds`.

`load_hosts` builds the effective `Host` list in regsync's order (docs/regsync-behaviour.md,
5.1 Docker config import): a built-in docker.io entry, then docker's config (unless
`skipDockerConfig`), then the config file's `creds`; later sources override earlier ones
field by field. `CredentialStore` turns a `Host` into the
username/password/token to use, running its credential helper when it has one (cached for
`credExpire`).

Helpers are run as `docker-credential-<name> get` without a shell, the credential host on
stdin; their stderr passes through to ours. Secrets never reach a log line or a repr.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from regplan import logs
from regplan.config.hosts import DOCKER_HUB, Host, TLSMode
from regplan.errors import UnauthorizedError

log = logs.get(__name__)

HELPER_PREFIX = "docker-credential-"
DOCKER_HUB_CRED_HOST = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 60.0  # seconds; cloud helpers (ecr-login, gcloud) can be slow on first use
HELPER_RETRY_AFTER = 5.0  # seconds before a failed helper is asked again
TOKEN_USERNAME = "<token>"  # helper answer meaning "Secret is an identity token"
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HELPER_SUFFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HOST_KEY = re.compile(r"[A-Za-z0-9.\-\[\]:]+")


@dataclass(frozen=True)
class Credential:
    """What to log in with. `token` is an identity (OAuth refresh) token."""

    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    @property
    def has_password(self) -> bool:
        return bool(self.user and self.password)

    @property
    def empty(self) -> bool:
        return not (self.has_password or self.token)


ANONYMOUS = Credential()


# -- docker config.json ---------------------------------------------------------------------


def docker_config_path(env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    home = env.get("HOME")
    return Path(home) / ".docker" / "config.json" if home else None


def registry_from_config_key(key: str) -> tuple[str, bool] | None:
    """(registry name, plain http?) for an `auths`/`credHelpers` key, None if unusable.

    Keys are a bare host[:port], optionally with a scheme; docker's own
    `https://index.docker.io/v1/` and the Hub's other spellings all mean docker.io."""
    text = key.strip()
    plain_http = False
    lowered = text.lower()
    if lowered.startswith("https://"):
        text = text[len("https://") :]
    elif lowered.startswith("http://"):
        text, plain_http = text[len("http://") :], True
    host, _, path = text.partition("/")
    if host.lower() in _HUB_ALIASES:
        return DOCKER_HUB, plain_http
    if path.strip("/") or not host or not _HOST_KEY.fullmatch(host):
        return None
    return host, plain_http


def _decode_auth(value: str) -> tuple[str, str] | None:
    try:
        text = base64.b64decode(value.strip(), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = text.partition(":")
    if not sep:
        return None
    return user, password.strip("\x00")


def helper_program(suffix: str) -> str | None:
    """`docker-credential-<suffix>`, or None for a suffix that could name another path."""
    return HELPER_PREFIX + suffix if _HELPER_SUFFIX.fullmatch(suffix) else None


def hosts_from_docker_config(
    data: Mapping[str, Any], *, list_helper: Callable[[str], dict[str, str]] | None = None
) -> list[Host]:
    """Hosts described by one docker config document (file or `DOCKER_AUTH_CONFIG`).

    `list_helper(program)` runs `<program> list` for `credsStore` (injected for tests)."""
    list_helper = list_helper or run_helper_list
    found: dict[str, Host] = {}

    def put(host: Host) -> None:
        found[host.name] = merge_host(found[host.name], host) if host.name in found else host

    store = data.get("credsStore")
    store_program = helper_program(store) if isinstance(store, str) and store else None
    helpers = data.get("credHelpers")
    helpers = helpers if isinstance(helpers, dict) else {}
    helper_by_name: dict[str, str] = {}
    for key, suffix in helpers.items():
        parsed = registry_from_config_key(str(key))
        program = helper_program(suffix) if isinstance(suffix, str) else None
        if parsed and program:
            helper_by_name[parsed[0]] = program

    auths = data.get("auths")
    for key, entry in (auths if isinstance(auths, dict) else {}).items():
        parsed = registry_from_config_key(str(key))
        if parsed is None or not isinstance(entry, dict):
            continue
        name, plain_http = parsed
        user = str(entry.get("username") or "")
        password = str(entry.get("password") or "")
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            decoded = _decode_auth(entry["auth"])
            if decoded:
                user, password = decoded
        token = str(entry.get("identitytoken") or "")
        helper = helper_by_name.get(name, "")
        if not helper and not ((user and password) or token):
            helper = store_program or ""
        if helper:  # a helper answers for this host; stored secrets are not used alongside it
            user, password, token = "", "", ""
        if not ((user and password) or token or helper):
            continue
        put(
            Host(
                name=name,
                user=user,
                password=password,
                token=token,
                cred_helper=helper,
                tls=TLSMode.DISABLED if plain_http else TLSMode.ENABLED,
            )
        )
    for name, program in helper_by_name.items():
        if name not in found:
            put(Host(name=name, cred_helper=program))
    if store_program:
        try:
            listed = list_helper(store_program)
        except (OSError, ValueError, UnauthorizedError) as e:
            log.warn("Failed to list credentials store", helper=store_program, error=str(e))
            listed = {}
        for key in listed:
            parsed = registry_from_config_key(str(key))
            if parsed and parsed[0] not in found:
                put(Host(name=parsed[0], cred_helper=store_program))
    return list(found.values())


def read_docker_config(
    env: Mapping[str, str] | None = None,
    *,
    list_helper: Callable[[str], dict[str, str]] | None = None,
) -> list[Host]:
    """Hosts from docker's config.json and `DOCKER_AUTH_CONFIG`; failures are warnings."""
    env = os.environ if env is None else env
    documents: list[tuple[str, str]] = []
    path = docker_config_path(env)
    if path is not None:
        try:
            documents.append((str(path), path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warn("Failed to load docker creds", file=str(path), error=e.strerror or str(e))
    if env.get("DOCKER_AUTH_CONFIG"):
        documents.append(("DOCKER_AUTH_CONFIG", env["DOCKER_AUTH_CONFIG"]))
    hosts: dict[str, Host] = {}
    for source, text in documents:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            # the message of a JSON error quotes no input, so no secret leaks here
            log.warn("Failed to load docker creds", file=source, error=str(e))
            continue
        for host in hosts_from_docker_config(data, list_helper=list_helper):
            hosts[host.name] = merge_host(hosts[host.name], host) if host.name in hosts else host
    return list(hosts.values())


# -- merging --------------------------------------------------------------------------------

_DEFAULTS = Host(name="")
_SECRET_FIELDS = ("user", "password", "token")


def _set_fields(host: Host) -> dict[str, Any]:
    """The fields of `host` that differ from a default Host (what a source actually set)."""
    return {
        f.name: getattr(host, f.name)
        for f in fields(Host)
        if f.name != "name" and getattr(host, f.name) != getattr(_DEFAULTS, f.name)
    }


def merge_host(base: Host, override: Host) -> Host:
    """`override`'s explicitly set fields over `base` (regsync's rules for login sources).

    A later password clears an earlier helper; a later helper without user/password clears
    earlier user/password/token."""
    changes = _set_fields(override)
    if override.password or override.token:
        changes.setdefault("cred_helper", "")
    if override.cred_helper and not (override.user or override.password or override.token):
        changes.update(user="", password="", token="")
    if base.user and override.user and base.user != override.user:
        log.warn("Changing login user for registry", registry=base.name, user=override.user)
    if base.cred_helper and override.cred_helper and base.cred_helper != override.cred_helper:
        log.warn("Changing credential helper for registry", registry=base.name)
    return replace(base, **changes)


def _with_docker_certs(host: Host, certs_dir: Path) -> Host:
    """Add `/etc/docker/certs.d/<host>/` CAs (`*.crt`) and client cert/key, as docker does."""
    for dirname in dict.fromkeys((host.name, host.connect_hostname)):
        directory = certs_dir / dirname
        if not directory.is_dir():
            continue
        try:
            cas = [p.read_text() for p in sorted(directory.glob("*.crt"))]
            if cas:
                host = replace(host, regcert="\n".join(filter(None, [host.regcert, *cas])))
            cert, key = directory / "client.cert", directory / "client.key"
            if not host.client_cert and cert.is_file() and key.is_file():
                host = replace(host, client_cert=cert.read_text(), client_key=key.read_text())
        except OSError as e:
            log.warn("Failed to read docker certificates", dir=str(directory), error=str(e))
        break
    return host


def load_hosts(
    config_creds: Sequence[Host],
    *,
    skip_docker_config: bool,
    env: Mapping[str, str] | None = None,
    certs_dir: Path = DOCKER_CERTS_DIR,
    list_helper: Callable[[str], dict[str, str]] | None = None,
) -> list[Host]:
    """The effective hosts: built-in docker.io, then docker config, then `creds` (wins)."""
    merged: dict[str, Host] = {DOCKER_HUB: Host(name=DOCKER_HUB)}
    layers: list[Sequence[Host]] = []
    if not skip_docker_config:
        layers.append(read_docker_config(env, list_helper=list_helper))
    layers.append(config_creds)
    for layer in layers:
        for host in layer:
            merged[host.name] = merge_host(merged[host.name], host) if host.name in merged else host
    hosts = list(merged.values())
    if not skip_docker_config:
        hosts = [_with_docker_certs(h, certs_dir) for h in hosts]
    return hosts


# -- credential helpers ---------------------------------------------------------------------


def _helper_path(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise UnauthorizedError(f"credential helper {program} not found in PATH")
    return found


class CredentialsNotFoundError(UnauthorizedError):
    """The helper knows no login for this host: go on anonymously, as docker does."""


def run_helper(program: str, action: str, stdin: str, *, timeout: float = HELPER_TIMEOUT) -> str:
    """Run `<program> <action>` (no shell), return stdout. Raises UnauthorizedError."""
    try:
        done = subprocess.run(
            [_helper_path(program), action],
            input=stdin.encode(),
            stdout=subprocess.PIPE,
            stderr=None,  # the helper's own messages pass through, as docker does
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UnauthorizedError(
            f"credential helper {program} timed out after {timeout:g}s"
        ) from None
    except OSError as e:
        raise UnauthorizedError(f"credential helper {program}: {e.strerror or e}") from None
    out = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0 and "credentials not found" in out.lower():
        raise CredentialsNotFoundError(f"credential helper {program} has no credentials")
    if done.returncode != 0:
        # helpers print e.g. "credentials not found in native keychain" on stdout
        first = out.strip().splitlines()[0][:200] if out.strip() else ""
        raise UnauthorizedError(
            f"credential helper {program} {action} failed (exit {done.returncode})"
            + (f": {first}" if first and action != "get" else "")
        )
    return out


def run_helper_list(program: str) -> dict[str, str]:
    data = json.loads(run_helper(program, "list", ""))
    if not isinstance(data, dict):
        raise ValueError(f"{program} list: not a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def parse_helper_answer(text: str) -> Credential:
    try:
        data = json.loads(text)
    except ValueError:
        raise UnauthorizedError("credential helper answered with invalid JSON") from None
    if not isinstance(data, dict):
        raise UnauthorizedError("credential helper answered with invalid JSON")
    user = str(data.get("Username") or "")
    secret = str(data.get("Secret") or "")
    if user == TOKEN_USERNAME:
        return Credential(token=secret)
    return Credential(user=user, password=secret)


def cred_host(host: Host) -> str:
    """What a helper is asked for: `credHost`, else the hostname (docker's URL for the Hub)."""
    if host.cred_host:
        return host.cred_host
    if host.name == DOCKER_HUB and not host.hostname:
        return DOCKER_HUB_CRED_HOST
    return host.connect_hostname


@dataclass
class _Cached:
    credential: Credential | None
    error: str
    at: float


class CredentialStore:
    """Credentials per host: the configured ones, or a helper's answer cached for
    `credExpire` (a failed helper is asked again after a few seconds). Thread-safe."""

    def __init__(
        self,
        *,
        runner: Callable[[str, str, str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runner = runner or (lambda program, action, stdin: run_helper(program, action, stdin))
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._fetch_locks: dict[tuple[str, str], threading.Lock] = {}

    def __repr__(self) -> str:
        return f"<CredentialStore {len(self._cache)} cached>"

    def get(self, host: Host) -> Credential:
        if not host.cred_helper:
            return Credential(user=host.user, password=host.password, token=host.token)
        key = (host.cred_helper, cred_host(host))
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:  # one helper run per key at a time; the others use its answer
            now = self._clock()
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None:
                age = now - cached.at
                if cached.credential is not None and age < host.cred_expire:
                    return cached.credential
                if cached.credential is None and age < HELPER_RETRY_AFTER:
                    raise UnauthorizedError(cached.error)
            try:
                credential = parse_helper_answer(self._runner(key[0], "get", key[1]))
            except CredentialsNotFoundError:
                credential = ANONYMOUS
            except UnauthorizedError as e:
                with self._lock:
                    self._cache[key] = _Cached(None, str(e), now)
                raise
            with self._lock:
                self._cache[key] = _Cached(credential, "", now)
            log.debug("Credential helper answered", helper=key[0], host=key[1])
            return credential
