"""The lifecycle keys in a config file: inherited from `defaults`, validated with file:line."""

from __future__ import annotations

from pathlib import Path

from tests.regplan_cli import regplan, write_config

STEP = "  - source: registry.example.org/app\n    target: mirror.example.org/app\n    type: repository\n"


def test_lifecycle_keys_inherit_from_defaults_and_show_in_config_show(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        'defaults:\n  prune: true\n  pruneProtect: ["keep-.*"]\n  pruneMax: 5\n  minTags: 2\n'
        '  immutableTags: ["v.*"]\n'
        f'sync:\n{STEP}    tags:\n      semverRange: [">=1"]\n      latest: 3\n'
        f"{STEP}    pruneMax: 7\n    prune: false\n",
    )
    shown = regplan("config", "show", "-c", str(cfg), cwd=tmp_path)
    assert shown.code == 0, str(shown)
    first, second = shown.stdout.split("  - source:")[1:]
    assert "latest: 3" in first and "prune: true" in first and "pruneMax: 5" in first
    assert "pruneProtect:\n      - keep-.*" in first and "minTags: 2" in first
    assert "prune:" not in second and "minTags: 2" in second and "immutableTags" in second


def test_lifecycle_key_errors_name_file_and_line(tmp_path: Path) -> None:
    for text, message in (
        (
            f"sync:\n{STEP}    pruneMax: -1\n",
            "regplan.yml:5:15: sync[0].pruneMax: must not be negative",
        ),
        (
            f'sync:\n{STEP}    pruneProtect: ["("]\n',
            'regplan.yml:5:20: sync[0].pruneProtect[0]: invalid pruneProtect pattern "("',
        ),
        (
            f"sync:\n{STEP}    tags:\n      latest: -2\n",
            "sync[0].tags.latest: must not be negative",
        ),
        (f"sync:\n{STEP}    prune: maybe\n", "regplan.yml:5:12:"),
        (
            "sync:\n  - source: a.example.org/x:1\n    target: b.example.org/x:1\n"
            "    type: image\n    prune: true\n",
            "regplan.yml:5:12: sync[0].prune: only repository and registry steps prune tags",
        ),
    ):
        cfg = write_config(tmp_path, text)
        result = regplan("config", "validate", "-c", str(cfg), cwd=tmp_path)
        assert result.code == 1, str(result)
        assert message in result.stderr + result.stdout, str(result)
        assert len((result.stderr + result.stdout).strip().splitlines()) == 1, str(result)
