"""index.json rewrites: concurrent tag writes into one layout share one rewrite (group
commit), and every tag is in index.json by the time its write returns."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from regplan.errors import RegistryError
from regplan.oci.manifest import Manifest
from regplan.refs import ImageRef
from regplan.registry.ocidir import locks
from regplan.registry.ocidir.backend import OCIDirBackend
from tests.concurrency import layouts


def _source_and_target(tmp_path: Path, count: int) -> tuple[ImageRef, ImageRef, list[str]]:
    """A source layout of `count` tags and a target that has all their content, no tags."""
    source, target = tmp_path / "source", tmp_path / "target"
    tags = [f"t{i}" for i in range(count)]
    layouts.make_source(source, tags, layer_size=64)
    shutil.copytree(source / "blobs", target / "blobs")
    layouts.write_layout(target, [])
    return ImageRef.parse(f"ocidir://{source}"), ImageRef.parse(f"ocidir://{target}"), tags


def _manifests(backend: OCIDirBackend, source: ImageRef, tags: list[str]) -> list[Manifest]:
    return [backend.manifest_get(source.with_tag(t)) for t in tags]


def _wait_until_queued(backend: OCIDirBackend, root: Path, count: int) -> None:
    key = str(root.resolve())
    for _ in range(2000):  # a bound on the wait, not a timing: the count decides
        if backend._commits.queued(key) == count:
            return
        time.sleep(0.005)
    raise AssertionError(f"{backend._commits.queued(key)} of {count} writes queued")


def _put_all_while_locked(
    backend: OCIDirBackend, target: ImageRef, tags: list[str], manifests: list[Manifest]
) -> dict[str, BaseException]:
    """Write every tag from its own thread while another writer holds the layout lock."""
    errors: dict[str, BaseException] = {}

    def put(tag: str, manifest: Manifest) -> None:
        try:
            backend.manifest_put(target.with_tag(tag), manifest)
        except BaseException as e:
            errors[tag] = e

    threads = [
        threading.Thread(target=put, args=(t, m)) for t, m in zip(tags, manifests, strict=True)
    ]
    root = Path(target.path)
    with locks.exclusive(root):  # as another process in its read-merge-write would
        for thread in threads:
            thread.start()
        _wait_until_queued(backend, root, len(tags))
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_tag_writes_share_one_index_rewrite(tmp_path: Path) -> None:
    source, target, tags = _source_and_target(tmp_path, 20)
    backend = OCIDirBackend()
    manifests = _manifests(backend, source, tags)

    assert _put_all_while_locked(backend, target, tags, manifests) == {}

    assert backend.index_writes == 1  # one per tag before group commit: 20
    written = layouts.tags(Path(target.path))
    assert written == {t: m.digest for t, m in zip(tags, manifests, strict=True)}
    assert layouts.problems(Path(target.path)) == []


def test_a_refused_tag_does_not_hold_back_the_others_of_its_commit(tmp_path: Path) -> None:
    source, target, tags = _source_and_target(tmp_path, 6)
    backend = OCIDirBackend()
    manifests = _manifests(backend, source, tags)
    gone = manifests[2].manifests[0].digest  # t2's amd64 manifest
    (Path(target.path) / "blobs" / "sha256" / gone.split(":")[1]).unlink()

    errors = _put_all_while_locked(backend, target, tags, manifests)

    assert list(errors) == ["t2"]
    assert isinstance(errors["t2"], RegistryError)
    assert f"{gone} is missing from the layout" in str(errors["t2"])
    assert backend.index_writes == 1
    assert sorted(layouts.tags(Path(target.path))) == sorted(t for t in tags if t != "t2")


def test_each_tag_is_in_index_json_when_its_write_returns(tmp_path: Path) -> None:
    source, target, tags = _source_and_target(tmp_path, 5)
    backend = OCIDirBackend()
    for count, (tag, manifest) in enumerate(
        zip(tags, _manifests(backend, source, tags), strict=True), start=1
    ):
        backend.manifest_put(target.with_tag(tag), manifest)
        # read by an independent reader, as a crash right now would leave it
        assert layouts.tags(Path(target.path))[tag] == manifest.digest
        assert backend.index_writes == count  # one at a time: nothing to share


def test_the_last_write_of_a_tag_in_one_commit_wins(tmp_path: Path) -> None:
    source, target, tags = _source_and_target(tmp_path, 2)
    backend = OCIDirBackend()
    first, second = _manifests(backend, source, tags)
    root = Path(target.path)

    def put(manifest: Manifest) -> None:
        backend.manifest_put(target.with_tag("latest"), manifest)

    with locks.exclusive(root):
        one = threading.Thread(target=put, args=(first,))
        one.start()
        _wait_until_queued(backend, root, 1)
        two = threading.Thread(target=put, args=(second,))
        two.start()
        _wait_until_queued(backend, root, 2)
    one.join()
    two.join()

    assert backend.index_writes == 1
    assert layouts.tags(root) == {"latest": second.digest}
