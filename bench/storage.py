"""Up-to-date mirrors made on disk, not by a tool under test.

A no-op scenario needs a target that already holds the source's content. Filling it with
regplan or skopeo would make one tool's output the other's starting point (and take minutes at
thousands of tags), so the benchmark copies distribution's filesystem storage instead: the
layout (`docker/registry/v2/blobs/<alg>/<xx>/<hex>/data`, `repositories/<name>/...` holding
only link files) is the registry's own, stable since distribution 2.0. Blob data files are
content-addressed and never rewritten in place (a finished upload is renamed into place, and
skipped when the blob exists), so they are hard-linked; repository directories are copied.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_V2 = Path("docker/registry/v2")


def _link_or_copy(src: str, dst: str) -> None:
    if os.path.exists(dst):
        return
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


def mirror_repositories(src_root: Path, dst_root: Path, repos: dict[str, str]) -> None:
    """Make `dst_root` hold every repository of `repos` (source name → target name) as the
    registry at `src_root` holds it. Start (or keep) the target registry afterwards: it reads
    the filesystem on every request."""
    src, dst = src_root / _V2, dst_root / _V2
    shutil.copytree(src / "blobs", dst / "blobs", copy_function=_link_or_copy, dirs_exist_ok=True)
    for name, target in repos.items():
        shutil.copytree(src / "repositories" / name, dst / "repositories" / target)


def copy_repository(root: Path, name: str, target: str, *, drop_tags: set[str]) -> None:
    """Copy repository `name` to `target` in the same storage without the tags `drop_tags`
    (removing a tag's directory is what distribution's own tag delete does). Used to make the
    smaller planning-cost repositories out of the largest one instead of pushing them all."""
    repos = root / _V2 / "repositories"
    shutil.copytree(repos / name, repos / target)
    for tag in drop_tags:
        shutil.rmtree(repos / target / "_manifests" / "tags" / tag)
