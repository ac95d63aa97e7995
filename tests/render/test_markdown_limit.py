"""The Markdown PR comment fits GitHub's limit: a first sync of an 800-tag repository, with
some tags being overwritten, keeps its headline and warnings whole and cuts rows per step."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.regplan_cli import regplan, write_config

TAGS = 800
OVERWRITTEN = 40


def _retag(layout: Path, tags: list[tuple[str, dict]]) -> None:
    index = json.loads((layout / "index.json").read_text())
    index["manifests"] = [
        {**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}}
        for tag, descriptor in tags
    ]
    (layout / "index.json").write_text(json.dumps(index))


def big_repository(root: Path) -> tuple[Path, Path]:
    """A source layout with 800 release tags (over the example's images) and a target that
    already holds the first 40 of them at another image."""
    example = root / "fixtures" / "example" / "source" / "app"
    source, target = root / "big" / "app", root / "mirror" / "app"
    shutil.copytree(example, source)
    shutil.copytree(example, target)
    entries = {
        m["annotations"]["org.opencontainers.image.ref.name"]: {
            k: v for k, v in m.items() if k != "annotations"
        }
        for m in json.loads((example / "index.json").read_text())["manifests"]
    }
    images = [entries["1.0"], entries["1.1"], entries["dev"]]
    names = [f"{1 + i // 100}.{(i // 10) % 10}.{i % 10}" for i in range(TAGS)]
    _retag(source, [(tag, images[i % 3]) for i, tag in enumerate(names)])
    _retag(target, [(tag, images[(i + 1) % 3]) for i, tag in enumerate(names[:OVERWRITTEN])])
    return source, target


def test_an_800_tag_first_plan_fits_a_pr_comment(example: Path) -> None:
    big_repository(example)
    write_config(
        example,
        """
        version: 1
        sync:
          - source: ocidir://big/app
            target: ocidir://mirror/app
            type: repository
            backup: "backup-{{ .Ref.Tag }}"
          - source: ocidir://fixtures/example/source/tools:latest
            target: ocidir://mirror/tools:latest
            type: image
        """,
    )
    result = regplan("plan", "--format", "markdown", cwd=example)
    assert result.code == 0, str(result)
    comment = result.stdout
    assert len(comment) <= 60_000, len(comment)
    assert comment.startswith(
        f"### regplan plan: {TAGS - OVERWRITTEN + 1} to create, {OVERWRITTEN} to update"
    )
    # every overwritten tag is in the warning block, whole
    warning = comment.split("> [!WARNING]", 1)[1].split("\n\n", 1)[0]
    assert warning.count("\n> - ") == OVERWRITTEN
    saved = re.findall(
        r"^> - `ocidir://mirror/app:(.*?)`: .* \(backup: `ocidir://mirror/app:(.*?)`\)$",
        warning,
        re.M,
    )
    assert len(saved) == OVERWRITTEN and all(backup == f"backup-{tag}" for tag, backup in saved), (
        saved
    )
    # rows are cut per step, with how many were left out
    more = [int(n) for n in re.findall(r"^… (\d+) more — see the plan artifact$", comment, re.M)]
    rows = [
        line
        for line in comment.splitlines()
        if line.startswith("| create |")
        or line.startswith("| update |")
        or line.startswith("| backup |")
    ]
    assert len(more) == 1 and len(rows) + more[0] == TAGS + OVERWRITTEN + 1, (more, len(rows))
    assert "ocidir://mirror/tools:latest" in comment  # the small step keeps its rows
    assert comment.rstrip().endswith("</details>")

    small = regplan("plan", "--format", "markdown", "--markdown-limit", "20000", cwd=example)
    assert small.code == 0 and len(small.stdout) <= 20_000, len(small.stdout)
    assert small.stdout.split("\n\n", 1)[0] == comment.split("\n\n", 1)[0]

    # a limit the warning block alone is over: the list is cut with a count, the headline kept
    tiny = regplan("plan", "--format", "markdown", "--markdown-limit", "3000", cwd=example)
    assert tiny.code == 0 and len(tiny.stdout) <= 3000, len(tiny.stdout)
    assert tiny.stdout.split("\n\n", 1)[0] == comment.split("\n\n", 1)[0]
    assert "> 40 tag(s) will be **overwritten**:" in tiny.stdout
    cut = re.findall(r"^> … (\d+) more — see the plan artifact$", tiny.stdout, re.M)
    listed = re.findall(r"^> - ", tiny.stdout, re.M)
    assert len(cut) == 1 and len(listed) + int(cut[0]) == OVERWRITTEN, tiny.stdout
