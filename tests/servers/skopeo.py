"""The `skopeo` CLI as an independent client for tests, and seeding registries from OCI Layouts.

References are skopeo transport references: `docker://127.0.0.1:PORT/repo:tag`,
`oci:/path/to/layout:tag`. Pass the test server(s) involved so their TLS and credential flags
are added (`server=` for one-sided commands, `src_server=` / `dest_server=` for copy).

Seeding (`seed_layout`) copies each tag with `skopeo copy --all --preserve-digests` and falls
back to `rawpush` for what skopeo 1.9.3 cannot copy without changing digests:
- indexes whose descriptors carry `artifactType` (every referrers fallback tag `sha256-<hex>`):
  its OCI index type drops the field, so it refuses with "must be converted ... cannot modify";
- an index whose child is an index ("Unexpectedly received a manifest list instead of a
  manifest for a single image");
- manifests listed in index.json without a tag (its `oci:` transport names tags only).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.servers import rawpush
from tests.servers.distribution import INSTALL_HINT


class SkopeoServer(Protocol):
    """A test server: RegistryServer or OCIRegistry."""

    @property
    def url(self) -> str: ...
    @property
    def host(self) -> str: ...
    def skopeo_args(self, prefix: str = "") -> list[str]: ...


class PlainHTTP:
    """A plain-HTTP test registry named only by its host: skopeo must not verify TLS."""

    def skopeo_args(self, prefix: str = "") -> list[str]:
        return [f"--{prefix}tls-verify=false"]


PLAIN = PlainHTTP()


class SkopeoError(RuntimeError):
    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"skopeo {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
        )
        self.stderr = result.stderr


def run(
    args: Sequence[str], *, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `skopeo ARGS` (no shell); raise SkopeoError on failure when `check`."""
    if shutil.which("skopeo") is None:
        raise RuntimeError(f"skopeo not found: {INSTALL_HINT}")
    result = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise SkopeoError(args, result)
    return result


def _server_args(server: SkopeoServer | None, prefix: str = "") -> list[str]:
    return server.skopeo_args(prefix) if server is not None else []


def copy(
    src: str,
    dst: str,
    *,
    all: bool = True,
    preserve_digests: bool = False,
    src_server: SkopeoServer | None = None,
    dest_server: SkopeoServer | None = None,
    extra_args: Sequence[str] = (),
) -> None:
    """`skopeo copy`; `all` copies every platform of an index (else only the host's)."""
    args = ["copy", "--quiet"]
    if all:
        args.append("--all")
    if preserve_digests:
        args.append("--preserve-digests")
    args += _server_args(src_server, "src-") + _server_args(dest_server, "dest-")
    run([*args, *extra_args, src, dst])


def inspect_raw(ref: str, *, server: SkopeoServer | None = None) -> bytes:
    """The manifest bytes exactly as served (`skopeo inspect --raw`)."""
    result = subprocess.run(
        ["skopeo", "inspect", "--raw", *_server_args(server), ref],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise SkopeoError(["inspect", "--raw", ref], _text(result))
    return result.stdout


def inspect_digest(ref: str, *, server: SkopeoServer | None = None) -> str:
    """The manifest digest: sha256 of the raw manifest (works for indexes and artifacts, which
    `skopeo inspect` without --raw would resolve to a platform or fail on)."""
    return "sha256:" + hashlib.sha256(inspect_raw(ref, server=server)).hexdigest()


def list_tags(ref: str, *, server: SkopeoServer | None = None) -> list[str]:
    """Tags of a repository (`docker://host/repo`), sorted."""
    result = run(["list-tags", *_server_args(server), ref])
    return sorted(json.loads(result.stdout)["Tags"])


def exists(ref: str, *, server: SkopeoServer | None = None) -> bool:
    try:
        inspect_raw(ref, server=server)
    except SkopeoError as e:
        if "manifest unknown" in e.stderr or "not found" in e.stderr.lower():
            return False
        raise
    return True


def delete(ref: str, *, server: SkopeoServer | None = None) -> None:
    run(["delete", *_server_args(server), ref])


def _text(result: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )  # fmt: skip


# -- seeding ----------------------------------------------------------------------------------


@dataclass
class SeedReport:
    """Which layout entries went through skopeo and which needed the raw pusher."""

    by_skopeo: list[str] = field(default_factory=list)  # tags
    by_raw_pusher: list[str] = field(default_factory=list)  # tags, or "@sha256:..." untagged

    @property
    def all(self) -> list[str]:
        return self.by_skopeo + self.by_raw_pusher


@dataclass(frozen=True)
class SeededStorage:
    """distribution storage holding seeded repositories (the `seeded_storage` fixture)."""

    root: Path
    reports: dict[str, SeedReport]  # repo → which entries skopeo / the raw pusher pushed


def seed_layout(
    layout_dir: Path,
    server: SkopeoServer,
    repo: str,
    tags: Sequence[str] | None = None,
    *,
    use_skopeo: bool = True,
) -> SeedReport:
    """Push every tag of the OCI Layout (or just `tags`) into `server`/`repo`, keeping digests.

    Without `tags`, index.json entries without a tag are pushed too (by digest), so the
    registry holds exactly the layout's content. Each tag is tried with skopeo first (unless
    `use_skopeo=False`); whatever skopeo refuses goes through `rawpush`. The digest of every
    tag is checked afterwards, so a silent conversion would fail here, not in a later test."""
    layout = rawpush.Layout(layout_dir)
    entries = layout.entries()
    if tags is not None:
        unknown = set(tags) - {e.tag for e in entries}
        if unknown:
            raise KeyError(f"tags not in {layout_dir}: {sorted(unknown)}")
        entries = [e for e in entries if e.tag in set(tags)]
    report = SeedReport()
    raw_entries: list[rawpush.LayoutEntry] = []
    for entry in entries:
        if use_skopeo and entry.tag:
            try:
                copy(
                    f"oci:{layout_dir}:{entry.tag}",
                    f"docker://{server.host}/{repo}:{entry.tag}",
                    preserve_digests=True,
                    dest_server=server,
                )
                report.by_skopeo.append(entry.tag)
                continue
            except SkopeoError:
                pass
        raw_entries.append(entry)
        report.by_raw_pusher.append(entry.tag or f"@{entry.digest}")
    rawpush.push_layout(layout_dir, server, repo, raw_entries)
    _verify_seed(layout, server, repo, entries)
    return report


def _verify_seed(
    layout: rawpush.Layout, server: SkopeoServer, repo: str, entries: list[rawpush.LayoutEntry]
) -> None:
    """One HEAD per entry, read straight from the registry (with the pusher's client and auth)."""
    accept = ", ".join(sorted(rawpush.MANIFEST_TYPES))
    with rawpush.RawPusher(server, repo, layout) as pusher:
        for entry in entries:
            reference = entry.tag or entry.digest
            response = pusher.client.head(
                f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept}
            )
            served = response.headers.get("Docker-Content-Digest")
            if response.status_code != 200 or served != entry.digest:
                raise RuntimeError(
                    f"seeding {repo}:{reference} gave {response.status_code} {served}, "
                    f"expected {entry.digest}"
                )


def _host(registry: str | SkopeoServer) -> str:
    return registry if isinstance(registry, str) else registry.host


def plain_digest(registry: str | SkopeoServer, ref: str) -> str:
    """The manifest digest of `ref` on a plain-HTTP registry (a host, or a server)."""
    return inspect_digest(f"docker://{_host(registry)}/{ref}", server=PLAIN)


def plain_exists(registry: str | SkopeoServer, ref: str) -> bool:
    """Whether `ref` exists on a plain-HTTP registry (a host, or a server)."""
    return exists(f"docker://{_host(registry)}/{ref}", server=PLAIN)
