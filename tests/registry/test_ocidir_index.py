"""index.json read once per change, and ref.name read as regclient reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regplan.config.model import Config, Defaults, SyncStep
from regplan.errors import ManifestError
from regplan.plan.planner import make_plan
from regplan.refs import ImageRef
from regplan.registry.client import RegistryClient
from regplan.registry.ocidir.index import LayoutIndex, tag_of
from tests.concurrency import layouts


def _layout_with_tags(layout: Path, count: int) -> None:
    """`count` tags over ten distinct images (index.json as big as a real 1,000-tag one)."""
    images = [layouts.image(layout, f"img{i}", layer_size=512) for i in range(10)]
    entries = [{**images[i % 10], "annotations": {layouts.REF_NAME: f"t{i}"}} for i in range(count)]
    layouts.write_layout(layout, entries)


def _config(source: Path, target: Path) -> Config:
    step = SyncStep(
        index=0, line=1, source=f"ocidir://{source}", target=f"ocidir://{target}", type="repository"
    )
    return Config(
        path="t.yml",
        digest="sha256:" + "0" * 64,
        version=1,
        creds=(),
        defaults=Defaults(),
        sync=(step,),
    )


def test_planning_1000_tags_parses_each_index_json_once(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    _layout_with_tags(source, 1000)
    client = RegistryClient()
    plan = make_plan(_config(source, target), client)
    assert sum(a.kind == "tag" for a in plan.actions) == 1000
    assert client.ocidir.index_parses == 1  # the target does not exist: nothing to parse there

    _layout_with_tags(target, 1000)  # now up to date
    client = RegistryClient()
    assert not make_plan(_config(source, target), client).has_changes
    assert client.ocidir.index_parses == 2  # source and target, once each


def test_a_change_by_another_writer_is_seen(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    _layout_with_tags(layout, 3)
    client = RegistryClient()
    ref = ImageRef.parse(f"ocidir://{layout}")
    assert client.tag_list(ref) == ["t0", "t1", "t2"]
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"][layouts.REF_NAME] = "renamed"
    (layout / "index.json").write_text(json.dumps(index))  # same size or not: a new write
    assert client.tag_list(ref) == ["renamed", "t1", "t2"]
    assert client.ocidir.index_parses == 2


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("v1", "v1"),
        ("docker.io/library/alpine:3.19", "3.19"),
        ("localhost:5000/app:v2", "v2"),
        ("localhost:5000/app", ""),  # a port, not a tag
        ("", ""),
        ("has space", ""),
    ],
)
def test_tag_of_a_ref_name(name: str, tag: str) -> None:
    assert tag_of(name) == tag


def _index(*names: str) -> LayoutIndex:
    return LayoutIndex.from_json(
        {
            "manifests": [
                {
                    "mediaType": layouts.OCI_MANIFEST,
                    "digest": "sha256:" + f"{i:x}" * 64,
                    "size": 1,
                    "annotations": {layouts.REF_NAME: name},
                }
                for i, name in enumerate(names, start=1)
            ]
        }
    )


def test_plain_tags_win_and_two_full_names_for_one_tag_are_refused() -> None:
    index = _index("a.io/x:1", "1", "b.io/y:2", "c.io/z:2", "d.io/w:3")
    plain, full = index.lookup("1", "here"), index.lookup("3", "here")
    assert plain is not None and plain.digest == "sha256:" + "2" * 64  # the plain entry
    assert full is not None and full.digest == "sha256:" + "5" * 64
    with pytest.raises(ManifestError, match=r"'b\.io/y:2' and 'c\.io/z:2' all name tag '2'"):
        index.lookup("2", "here")
    with pytest.raises(ManifestError, match=r"b\.io/y:2"):
        index.tags("here")
    assert _index("a.io/x:1", "1", "d.io/w:3").tags("here") == ["1", "3"]


def _entry(n: int, name: str) -> dict[str, object]:
    return {
        "mediaType": layouts.OCI_MANIFEST,
        "digest": "sha256:" + f"{n:x}" * 64,
        "size": 1,
        "annotations": {layouts.REF_NAME: name},
    }


@pytest.mark.parametrize(
    ("before", "changes"),
    [
        ([], [("v1", 1)]),  # a new tag into an empty layout
        ([("v1", 1), ("v2", 2)], [("v3", 3)]),  # a new tag
        ([("v1", 1), ("v2", 2)], [("v1", 3)]),  # a tag moved: its old entry goes
        ([("v1", 1), ("v1", 2), ("v2", 1)], [("v1", 3)]),  # both plain entries of v1 go
        ([("a.io/x:2", 1), ("b.io/y:2", 2)], [("2", 3)]),  # ambiguous full names: plain wins
        ([("a.io/x:2", 1)], [("2", 1)]),  # the full name stays, the plain entry is added
        ([("v1", 1)], [("v2", 1), ("v3", 2), ("v2", 3)]),  # the last change of a tag wins
        ([("v1", 1), ("v2", 1)], [("v1", 2)]),  # the digest's first entry moved
    ],
)
def test_with_tags_is_the_index_of_the_tags_written_one_by_one(
    before: list[tuple[str, int]], changes: list[tuple[str, int]]
) -> None:
    manifests = [_entry(n, name) for name, n in before]
    for name, n in changes:  # the index a rewrite per tag gave
        manifests = [m for m in manifests if m["annotations"] != {layouts.REF_NAME: name}]
        manifests.append(_entry(n, name))
    expected = LayoutIndex.from_json({"manifests": manifests})

    index = LayoutIndex.from_json({"manifests": [_entry(n, name) for name, n in before]})
    got = index.with_tags([(name, _entry(n, name)) for name, n in changes])

    assert got.raw == expected.raw
    assert got.entries == expected.entries
    assert dict(got.by_tag) == dict(expected.by_tag)
    assert dict(got.by_digest) == dict(expected.by_digest)
    assert dict(got.ambiguous) == dict(expected.ambiguous)
