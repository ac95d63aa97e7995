"""`regplan copy SRC DST`: one image without a config file, planned and applied like a step,
against a real registry and OCI Layouts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.regplan_cli import REPO_ROOT, regplan, write_config
from tests.servers import skopeo
from tests.servers.distribution import RegistryServer

pytestmark = pytest.mark.integration
SOURCE = REPO_ROOT / "fixtures" / "example" / "source"


class _Plain:
    def skopeo_args(self, prefix: str = "") -> list[str]:
        return [f"--{prefix}tls-verify=false"]


def layout_tags(layout: Path) -> dict[str, str]:
    index = orjson.loads((layout / "index.json").read_bytes())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
    }


def blob(layout: Path, digest: str) -> dict[str, object]:
    data: dict[str, object] = orjson.loads(
        (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    )
    return data


def creds_file(tmp_path: Path, registry: RegistryServer) -> Path:
    """Only creds: `copy -c` reads registry settings from a file with no sync steps."""
    return write_config(
        tmp_path, f"creds:\n  - registry: {registry.host}\n    tls: disabled\n", "creds.yml"
    )


def test_copy_a_layout_image_into_a_registry_and_back(
    tmp_path: Path, registry: RegistryServer
) -> None:
    creds = creds_file(tmp_path, registry)
    index = layout_tags(SOURCE / "app")["1.1"]
    dst = f"{registry.host}/mirror/app:1.1"

    dry = regplan("copy", "-c", str(creds), f"ocidir://{SOURCE}/app:1.1", dst, "--dry-run")
    assert dry.code == 0, str(dry)
    assert "+ create" in dry.stdout and "Apply complete" not in dry.stdout
    assert all(r.method in ("GET", "HEAD") for r in registry.requests())  # wrote nothing

    done = regplan("copy", "-c", str(creds), f"ocidir://{SOURCE}/app:1.1", dst)
    assert done.code == 0, str(done)
    assert "Plan: 1 to create" in done.stdout and "Apply complete: 1 image(s)" in done.stdout
    assert skopeo.inspect_digest(f"docker://{dst}", server=_Plain()) == index

    again = regplan("copy", "-c", str(creds), f"ocidir://{SOURCE}/app:1.1", dst)
    assert again.code == 0 and "No changes" in again.stdout

    # and back out of the registry, one platform only: the target gets that platform's image
    arm = next(
        m["digest"]
        for m in blob(SOURCE / "app", index)["manifests"]  # type: ignore[attr-defined]
        if m["platform"]["architecture"] == "arm64"
    )
    out = tmp_path / "layout"
    single = regplan(
        "copy", "-c", str(creds), dst, f"ocidir://{out}/app:1.1-arm64", "--platform", "linux/arm64"
    )
    assert single.code == 0, str(single)
    assert layout_tags(out / "app") == {"1.1-arm64": arm}


def test_copy_with_referrers_and_digest_tags_between_layouts(tmp_path: Path) -> None:
    source_tags = layout_tags(SOURCE / "tools")
    out = tmp_path / "out"
    result = regplan(
        "copy",
        f"ocidir://{SOURCE}/tools:latest",
        f"ocidir://{out}/tools:latest",
        "--referrers",
        "--digest-tags",
        cwd=tmp_path,
    )
    assert result.code == 0, str(result)
    copied = layout_tags(out / "tools")
    assert set(copied) == set(source_tags)  # the image and its sha256-<hex> referrers tag
    assert copied["latest"] == source_tags["latest"]
    plain = regplan(
        "copy", f"ocidir://{SOURCE}/tools:latest", f"ocidir://{out}/plain:latest", cwd=tmp_path
    )
    assert plain.code == 0 and set(layout_tags(out / "plain")) == {"latest"}


def test_copy_dry_run_as_json(tmp_path: Path) -> None:
    result = regplan(
        "copy",
        f"ocidir://{SOURCE}/app:1.0",
        f"ocidir://{tmp_path}/out/app:1.0",
        "--dry-run",
        "--format",
        "json",
    )
    assert result.code == 0, str(result)
    plan = orjson.loads(result.stdout)
    assert plan["has_changes"] and plan["summary"]["tags_create"] == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ocidir://x/app:1", "Bad Ref!"], "TARGET 'Bad Ref!':"),
        (["ocidir://x/app:1", "ocidir://y/app:1", "--platform", "linux/amd64/v8/x"], "--platform"),
        (["ocidir://x/app:1", "ocidir://y/app:1", "--format", "json"], "needs --dry-run"),
    ],
)
def test_copy_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = regplan("copy", *args, cwd=tmp_path)
    assert result.code == 2, str(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_copy_from_a_missing_source_fails_and_copies_nothing(tmp_path: Path) -> None:
    result = regplan(
        "copy", f"ocidir://{tmp_path}/none/app:1", f"ocidir://{tmp_path}/out/app:1", cwd=tmp_path
    )
    assert result.code == 1
    assert "planning failed" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_copy_with_several_platforms_pushes_an_index_of_those(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = regplan(
        "copy",
        f"ocidir://{SOURCE}/app:1.1",
        f"ocidir://{out}/app:1.1",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/s390x",  # not in the source: selects nothing, as regsync's `platforms` does
        cwd=tmp_path,
    )
    assert result.code == 0, str(result)
    index = blob(out / "app", layout_tags(out / "app")["1.1"])
    listed = [m["platform"]["architecture"] for m in index["manifests"]]  # type: ignore[attr-defined]
    assert listed == ["amd64"]
