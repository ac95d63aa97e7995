"""The shipped JSON Schema of the config file: generated from the loader's own schema tables
(so they cannot drift), accepting every config in the repository, refusing what the loader
refuses."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from regplan.config import schema
from regplan.config.jsonschema import render_schema, schema_text
from regplan.config.loader import load_bytes
from regplan.config.schema import Obj, ObjList
from regplan.config.yamlsource import compose, kind, mapping_items
from regplan.errors import ConfigError
from tests.regplan_cli import REPO_ROOT, regplan
from tests.servers.paths import regclient_testdata

SCHEMA = json.loads(schema_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

_SCALARS = {
    "tag:yaml.org,2002:int": lambda t: int(t.replace("_", ""), 0),
    "tag:yaml.org,2002:float": float,
    "tag:yaml.org,2002:bool": lambda t: t.lower() == "true",
    "tag:yaml.org,2002:null": lambda t: None,
}


def as_data(node: Any) -> Any:
    """A YAML node tree as a YAML 1.2 editor sees it (merges applied, `yes` a string)."""
    k = kind(node)
    if k == "mapping":
        return {key: as_data(value) for key, _, value in mapping_items(node, "test")}
    if k == "sequence":
        return [as_data(item) for item in node.value]
    if node.style:  # quoted: always a string
        return str(node.value)
    return _SCALARS.get(node.tag, str)(str(node.value))


def errors(text: str) -> list[str]:
    data = as_data(compose(textwrap.dedent(text), "test"))
    return [e.message for e in VALIDATOR.iter_errors(data)]


def repo_configs() -> list[Path]:
    shared = sorted(regclient_testdata().glob("config*.yml"))
    assert shared, "regclient test data not found (set REGPLAN_SHARED)"
    return [
        *sorted((REPO_ROOT / "fixtures").rglob("*.yml")),
        *sorted((REPO_ROOT / "tests" / "config" / "data").glob("*.yml")),
        *shared,
    ]


def test_the_shipped_schema_is_the_generated_one() -> None:
    assert schema_text() == render_schema(), (
        "regplan/config/config.schema.json is stale: run "
        "python -m regplan.config.jsonschema > regplan/config/config.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def _loader_keys(spec: Obj, path: str = "") -> set[str]:
    out: set[str] = set()
    for key, child in spec.keys.items():
        here = f"{path}.{key}"
        out.add(here)
        if isinstance(child, Obj):
            out |= _loader_keys(child, here)
        elif isinstance(child, ObjList):
            out |= _loader_keys(child.item, here + "[]")
    return out


def _schema_keys(node: dict[str, Any], path: str = "") -> set[str]:
    out: set[str] = set()
    for key, child in node.get("properties", {}).items():
        here = f"{path}.{key}"
        out.add(here)
        if child.get("properties"):
            out |= _schema_keys(child, here)
        elif isinstance(child.get("items"), dict) and child["items"].get("properties"):
            out |= _schema_keys(child["items"], here + "[]")
    return out


def test_every_loader_key_is_in_the_schema_and_back() -> None:
    loader, shipped = _loader_keys(schema.ROOT), _schema_keys(SCHEMA)
    assert loader == shipped, {
        "missing from the JSON Schema": sorted(loader - shipped),
        "not read by the loader": sorted(shipped - loader),
    }
    assert len(loader) > 60  # the walk really descended into creds, defaults and sync


@pytest.mark.parametrize("path", repo_configs(), ids=lambda p: p.name)
def test_every_config_in_the_repo_validates(path: Path) -> None:
    text = path.read_text()
    load_bytes(text.encode(), path=str(path), label=path.name)  # the loader accepts it too
    assert errors(text) == []


def test_what_yaml_reads_as_other_types_still_validates() -> None:
    assert (
        errors(
            """
            x-base: &base
              type: repository
              referrers: yes
            defaults:
              interval: 0
              parallel: 2
            sync:
              - <<: *base
                source: r.example.org/app
                target: r.example.org/mirror
                tags:
                  allow: [3, 3.9, true]
                  semverRange: [">=1.2 <2"]
                platforms: [linux/amd64, ""]
                x-note: anything
                backup:
            """
        )
        == []
    )


STEP = "sync:\n- source: r.example.org/a\n  target: r.example.org/b\n  type: image\n"


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("sync:\n- source: a\n  target: b\n  type: image\n  fastcopy: true\n", "fastcopy"),
        ("sync:\n- source: a\n  target: b\n  type: mirror\n", "mirror"),
        ("sync:\n- source: a\n  type: image\n", "'target' is a required property"),
        ("defaults:\n  parallel: many\n" + STEP, "'many'"),
        ("defaults:\n  interval: 1d\n" + STEP, "'1d'"),
        ("creds:\n- registry: r\n  tls: off-ish\n" + STEP, "'off-ish'"),
        ("creds:\n- registry: r\n  priority: -1\n" + STEP, "-1"),
        ("sync:\n- source: a\n  target: b\n  type: image\n  referrers: maybe\n", "'maybe'"),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(text: str, wanted: str) -> None:
    found = errors(text)
    assert found and any(wanted in e for e in found), found
    with pytest.raises(ConfigError):
        load_bytes(text.encode(), path="t.yml", label="t.yml")


def test_config_schema_command_prints_the_shipped_file() -> None:
    result = regplan("config", "schema")
    assert result.code == 0 and result.stdout == schema_text()
