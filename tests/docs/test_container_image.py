"""docs/examples/container/Dockerfile builds, and the image runs regplan and the bundled example.

No image registry is reachable here, so the base image is made from Debian's packages with
mmdebstrap (python3 of Debian 12, the same Python 3.11 as `python:3.11-slim`) and passed as
`--build-arg BASE`. buildah builds the Dockerfile as it is and runs commands in the image with
chroot isolation: this machine's kernel mixes cgroup v1 and v2, which OCI runtimes refuse, so
`podman run` / `docker run` cannot start containers here. The wheels come from this checkout
(`pip wheel`), exactly as the Dockerfile's header tells users.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.regplan_cli import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("container-image")]

DOCKERFILE = REPO_ROOT / "docs" / "examples" / "container" / "Dockerfile"
BASE = "localhost/regplan-test-base:bookworm"
IMAGE = "localhost/regplan-test:latest"
INSTALL = "apt-get install buildah mmdebstrap"


def run(args: list[str], *, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result


def base_image(work: Path) -> None:
    """A Debian 12 root with python3, made once per machine (buildah keeps it)."""
    if (
        subprocess.run(
            ["buildah", "inspect", "--type", "image", BASE], capture_output=True
        ).returncode
        == 0
    ):
        return
    tar = work / "base.tar"
    run(["mmdebstrap", "--variant=apt", "--include=python3,python3-venv,passwd",
         "--format=tar", "bookworm", str(tar)])  # fmt: skip
    container = run(["buildah", "from", "scratch"]).stdout.strip()
    try:
        run(["buildah", "add", container, str(tar), "/"])
        run(["buildah", "commit", "--rm", container, BASE])
    except AssertionError:
        subprocess.run(["buildah", "rm", container], capture_output=True)
        raise


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for tool in ("buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: {INSTALL}", pytrace=False)
    work = tmp_path_factory.mktemp("container")
    base_image(work)
    context = work / "context"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(context / "wheels"),
         str(REPO_ROOT)])  # fmt: skip
    run(["buildah", "bud", "--isolation", "chroot", "--build-arg", f"BASE={BASE}",
         "-f", str(DOCKERFILE), "-t", IMAGE, str(context)])  # fmt: skip
    container = run(["buildah", "from", IMAGE]).stdout.strip()
    try:
        yield container
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)
        subprocess.run(["buildah", "rmi", IMAGE], capture_output=True)


def in_image(container: str, *args: str, volume: Path | None = None) -> str:
    mount = ["--volume", f"{volume}:/work"] if volume else []
    return run(["buildah", "run", "--isolation", "chroot", *mount, container, "--", *args]).stdout


def test_the_image_runs_regplan_as_a_non_root_user(image: str) -> None:
    assert "regplan 0." in in_image(image, "regplan", "version")
    assert in_image(image, "id", "-u").strip() == "65532"
    # package data made it into the wheel: the config schema ships with the package
    assert '"$schema"' in in_image(image, "regplan", "config", "schema")
    config = run(["buildah", "inspect", "--type", "container", "--format",
                  "{{.OCIv1.Config.Entrypoint}}", image]).stdout  # fmt: skip
    assert "regplan" in config


def test_the_bundled_example_runs_inside_the_image(image: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(REPO_ROOT / "fixtures" / "example", work / "fixtures" / "example")
    for path in [work, *work.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)  # writable by the image's user
    script = (
        "cd /work && regplan plan -c fixtures/example/regplan.yml -o demo-plan.json"
        " && regplan apply demo-plan.json"
        " && regplan plan -c fixtures/example/regplan.yml --detailed-exitcode"
    )
    out = in_image(image, "sh", "-c", script, volume=work)
    assert "Apply complete" in out
    assert (work / "demo-target" / "app" / "index.json").is_file()
