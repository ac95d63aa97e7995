"""OCI Layout targets and sources through the real command line: what a user meets when a
layout is damaged, hostile, shared or on a full disk."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.concurrency import layouts
from tests.regplan_cli import Result, regplan, write_config

pytestmark = pytest.mark.integration


def image_config(tmp_path: Path, source: str, target: str, kind: str = "image") -> Path:
    return write_config(
        tmp_path,
        f"""
        version: 1
        sync:
          - source: {source}
            target: {target}
            type: {kind}
        """,
    )


def once(config: Path, *extra: str) -> Result:
    return regplan("once", "-c", str(config), *extra)


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":")[1]


def one_error_line(result: Result) -> str:
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result
    assert errors, result
    return "\n".join(errors)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    layout = tmp_path / "source"
    layouts.make_source(layout, ["v1", "v2"], layer_size=4096)
    return layout


# -- a tag on incomplete content is repaired --------------------------------------------------


def test_a_target_tag_whose_layer_is_gone_is_planned_and_repaired(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    cfg = image_config(tmp_path, f"ocidir://{source}:v1", f"ocidir://{target}:v1")
    assert once(cfg).code == 0
    index = json.loads(blob(target, layouts.tags(target)["v1"]).read_bytes())
    child = json.loads(blob(target, index["manifests"][1]["digest"]).read_bytes())
    lost = child["layers"][1]["digest"]
    blob(target, lost).unlink()
    assert layouts.problems(target) == [f"v1: {lost} missing"]

    plan = regplan("plan", "-c", str(cfg), "--detailed-exitcode")
    assert plan.code == 2, plan  # changes: the tag is not trusted while its layer is gone
    assert "incomplete" in plan.stderr and lost in plan.stderr
    assert once(cfg).code == 0
    assert layouts.problems(target) == []
    assert regplan("plan", "-c", str(cfg), "--detailed-exitcode").code == 0


# -- leftovers of killed runs -------------------------------------------------------------------


def test_stale_uploads_of_killed_runs_are_removed_and_fresh_ones_kept(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    assert once(image_config(tmp_path, f"ocidir://{source}:v1", f"ocidir://{target}:v1")).code == 0
    blobs = target / "blobs" / "sha256"
    stale, fresh = blobs / ".upload-killed.tmp", blobs / ".upload-running.tmp"
    stale.write_bytes(b"x" * 1024 * 1024)
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    old_index_temp = target / ".index.json.abc123"
    old_index_temp.write_bytes(b"{")
    os.utime(old_index_temp, (two_hours_ago, two_hours_ago))

    assert once(image_config(tmp_path, f"ocidir://{source}:v2", f"ocidir://{target}:v2")).code == 0
    assert not stale.exists() and not old_index_temp.exists()
    assert fresh.exists()  # an hour is the bound: it may belong to a writer still running
    assert layouts.problems(target) == []


# -- hostile source layouts ---------------------------------------------------------------------


@pytest.mark.parametrize("link", ["blobs", "blobs/sha256"])
def test_a_symlinked_blob_directory_in_a_source_is_refused(
    source: Path, tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "outside"
    (source / link).rename(outside)
    (source / link).symlink_to(outside)
    target = tmp_path / "target"
    result = once(image_config(tmp_path, f"ocidir://{source}:v1", f"ocidir://{target}:v1"))
    assert result.code == 1, result
    line = one_error_line(result)
    assert f"{link} in the layout is a symlink" in line
    assert not (target / "index.json").exists() or layouts.tags(target) == {}


def _named(source: Path, names: dict[str, str]) -> None:
    """Rewrite the source's index.json so tag `t` is named `names[t]` (ref.name)."""
    index = json.loads((source / "index.json").read_text())
    for entry in index["manifests"]:
        tag = entry["annotations"][layouts.REF_NAME]
        entry["annotations"][layouts.REF_NAME] = names[tag]
    (source / "index.json").write_text(json.dumps(index))


def test_two_full_names_ending_in_one_tag_are_an_error_naming_both(
    source: Path, tmp_path: Path
) -> None:
    _named(source, {"v1": "docker.io/library/alpine:3.19", "v2": "docker.io/library/busybox:3.19"})
    target = tmp_path / "target"
    for kind, ref in (("repository", f"ocidir://{source}"), ("image", f"ocidir://{source}:3.19")):
        dst = f"ocidir://{target}" + ("" if kind == "repository" else ":3.19")
        result = once(image_config(tmp_path, ref, dst, kind))
        assert result.code == 1, result
        line = one_error_line(result)
        assert "docker.io/library/alpine:3.19" in line and "docker.io/library/busybox:3.19" in line
    assert not (target / "index.json").exists() or layouts.tags(target) == {}


def test_a_full_name_is_read_as_its_tag_and_a_plain_tag_wins(source: Path, tmp_path: Path) -> None:
    digests = layouts.tags(source)
    _named(source, {"v1": "docker.io/library/alpine:3.19", "v2": "3.19"})
    target = tmp_path / "target"
    cfg = image_config(tmp_path, f"ocidir://{source}", f"ocidir://{target}", "repository")
    assert once(cfg).code == 0
    assert layouts.tags(target) == {"3.19": digests["v2"]}
    _named(source, {"docker.io/library/alpine:3.19": "docker.io/library/alpine:3.19", "3.19": "x"})
    assert once(cfg).code == 0
    assert layouts.tags(target) == {"3.19": digests["v1"], "x": digests["v2"]}


# -- garbage collection keeps what it cannot read ------------------------------------------------


def _put(layout: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob(layout, digest).write_bytes(data)
    return digest


def test_gc_keeps_artifact_manifests_big_indexes_and_all_below_them(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    assert once(image_config(tmp_path, f"ocidir://{source}:v1", f"ocidir://{target}:v1")).code == 0
    # a Helm chart as older ORAS wrote it: an OCI artifact manifest with `blobs`
    chart = _put(target, b"chart-tarball" * 100)
    artifact = json.dumps(
        {
            "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
            "artifactType": "application/vnd.cncf.helm.config.v1+json",
            "blobs": [
                {
                    "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": chart,
                    "size": 1300,
                }
            ],
        }
    ).encode()
    artifact_digest = _put(target, artifact)
    # an index over 4 MiB (padded with annotations) over a manifest of its own
    layer = _put(target, b"only-under-the-big-index")
    config = _put(target, b"{}")
    child = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": layouts.OCI_MANIFEST,
            "config": {"mediaType": layouts.OCI_CONFIG, "digest": config, "size": 2},
            "layers": [{"mediaType": layouts.OCI_LAYER, "digest": layer, "size": 24}],
        }
    ).encode()
    child_digest = _put(target, child)
    big = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": layouts.OCI_INDEX,
            "manifests": [
                {"mediaType": layouts.OCI_MANIFEST, "digest": child_digest, "size": len(child)}
            ],
            "annotations": {"pad": "p" * (5 * 1024 * 1024)},
        }
    ).encode()
    big_digest = _put(target, big)
    index = json.loads((target / "index.json").read_text())
    index["manifests"] += [
        {
            "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
            "digest": artifact_digest,
            "size": len(artifact),
            "annotations": {layouts.REF_NAME: "chart"},
        },
        {
            "mediaType": layouts.OCI_INDEX,
            "digest": big_digest,
            "size": len(big),
            "annotations": {layouts.REF_NAME: "big"},
        },
    ]
    (target / "index.json").write_text(json.dumps(index))
    garbage = _put(target, b"reached by nothing")

    assert once(image_config(tmp_path, f"ocidir://{source}:v2", f"ocidir://{target}:v2")).code == 0
    for kept in (chart, artifact_digest, big_digest, child_digest, layer, config):
        assert blob(target, kept).exists(), kept
    assert not blob(target, garbage).exists()  # GC ran, and kept exactly what is reachable


def test_gc_that_cannot_read_a_tagged_manifest_collects_nothing(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    assert once(image_config(tmp_path, f"ocidir://{source}:v1", f"ocidir://{target}:v1")).code == 0
    opaque = _put(target, b"\x00\x01 not json, perhaps a format from the future")
    index = json.loads((target / "index.json").read_text())
    index["manifests"].append(
        {
            "mediaType": "application/vnd.example.future+binary",
            "digest": opaque,
            "size": 46,
            "annotations": {layouts.REF_NAME: "future"},
        }
    )
    (target / "index.json").write_text(json.dumps(index))
    unknown = _put(target, b"maybe below the future manifest")

    result = once(image_config(tmp_path, f"ocidir://{source}:v2", f"ocidir://{target}:v2"))
    assert result.code == 0, result
    assert blob(target, unknown).exists()
    assert "garbage collection skipped" in result.stderr and opaque in result.stderr


# -- files other accounts can read ---------------------------------------------------------------


def _modes(layout: Path) -> set[tuple[str, int]]:
    out = set()
    for path in [layout, *layout.rglob("*")]:
        kind = "dir" if path.is_dir() else "file"
        out.add((kind, stat.S_IMODE(path.stat().st_mode)))
    return out


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)]
)
def test_layout_files_follow_the_umask(
    source: Path, tmp_path: Path, umask: int, file_mode: int, dir_mode: int
) -> None:
    target = tmp_path / "target"
    cfg = image_config(tmp_path, f"ocidir://{source}:v1", f"ocidir://{target}:v1")
    proc = subprocess.run(
        [
            "sh",
            "-c",
            f'umask {umask:03o} && exec "$0" -m regplan.cli once -c "$1"',
            sys.executable,
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert _modes(target) == {("file", file_mode), ("dir", dir_mode)}


# -- a full disk -----------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_filesystem(where: Path) -> Iterator[bool]:
    """A 512 KiB tmpfs at `where` (True), or False when mounting is not permitted."""
    where.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(where)], check=True)


def test_a_full_disk_while_a_layout_is_created_leaves_no_broken_layout(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = tmp_path / "disk"
    with tiny_filesystem(disk) as mounted:
        if not mounted:
            _full_disk_in_process(source, disk / "target", monkeypatch)
            return
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        target = disk / "target"
        cfg = image_config(tmp_path, f"ocidir://{source}:v1", f"ocidir://{target}:v1")
        full = once(cfg)
        assert full.code == 1, full
        assert "No space left on device" in one_error_line(full)
        assert not (target / "oci-layout").exists()  # never an empty one
        filler.unlink()
        assert once(cfg).code == 0
        assert layouts.problems(target) == [] and set(layouts.tags(target)) == {"v1"}


def _full_disk_in_process(source: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the right to mount a tiny filesystem, a full disk cannot be made for real: make
    fsync fail with ENOSPC (as it does on a full disk with delayed allocation), in-process."""
    import errno

    from regplan.apply.applier import apply_plan
    from regplan.config.model import Config, Defaults, SyncStep
    from regplan.plan.planner import make_plan
    from regplan.registry.client import RegistryClient

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    step = SyncStep(
        index=0, line=1, source=f"ocidir://{source}:v1", target=f"ocidir://{target}:v1",
        type="image",
    )  # fmt: skip
    cfg = Config(
        path="t.yml", digest="sha256:" + "0" * 64, version=1, creds=(), defaults=Defaults(),
        sync=(step,),
    )  # fmt: skip
    client = RegistryClient()
    plan = make_plan(cfg, client)
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", no_space)
        result = apply_plan(plan, client)
    assert not result.ok
    assert any("No space left on device" in r.detail for r in result.results)
    assert not (target / "oci-layout").exists()
    assert apply_plan(make_plan(cfg, client), client).ok
    assert layouts.problems(target) == [] and set(layouts.tags(target)) == {"v1"}
