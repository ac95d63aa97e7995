"""The config file's JSON Schema, generated from the typed schema in `schema.py`.

Editors (yaml-language-server) and linters read `config.schema.json`, shipped beside this
module. It is generated, never edited by hand, so it cannot drift from what the loader reads:

    python -m regplan.config.jsonschema > regplan/config/config.schema.json

and the tests compare the shipped file with a fresh generation. It describes the file as a
YAML 1.2 tool sees it (`yes` is a string there, `3.9` a number): every value the loader accepts
must validate, so plain scalars are allowed wherever regplan reads text.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from regplan.config import schema
from regplan.config.schema import Ignored, Obj, ObjList, Scalar, StrList, StrMap

SCHEMA_FILE = "config.schema.json"
SCHEMA_ID = "https://regplan.dev/schema/config-1.json"

# YAML 1.2 reads `yes`/`on` as strings; regsync's loader (and regplan's) as booleans
_BOOL_WORDS = [
    w
    for word in ("true", "false", "yes", "no", "on", "off")
    for w in (word, word.capitalize(), word.upper())
]
_DURATION = r"^[-+]?(0|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)$"
_TEXT = ["string", "number", "boolean"]  # unquoted 3.10 or true is still read as text

_ENUMS: dict[str, list[str]] = {
    "sync.type": ["registry", "repository", "image"],
    "creds.tls": [v for w in ("enabled", "insecure", "disabled") for v in (w, w.capitalize())],
}

DESCRIPTIONS: dict[str, str] = {
    "version": "Config format version: 1.",
    "creds": "Registry hosts: credentials, TLS, mirrors and limits.",
    "defaults": "Global options, and defaults for every sync step.",
    "sync": "The sync steps, run in file order.",
    "source": "What to copy: an image, a repository or a registry (ocidir://path for a layout).",
    "target": "Where to copy it.",
    "type": "registry, repository or image.",
    "tags": "Tag filters (RE2 regexes, anchored) and semver ranges.",
    "tagSets": "Several tag filters; a tag is copied when any set selects it.",
    "repos": "Repository filters of a registry step.",
    "allow": "RE2 patterns, anchored; only matching names are kept.",
    "deny": "RE2 patterns, anchored; matching names are dropped.",
    "semverRange": "Semantic version ranges, e.g. '>=1.2 <2'.",
    "platform": "Copy only this platform's image (os/arch[/variant]).",
    "platforms": "Copy an index with only these platforms.",
    "backup": "Go template naming the backup of an image about to be overwritten.",
    "interval": "Go duration between runs in watch (e.g. 1h).",
    "schedule": "Cron schedule for watch (5 fields, @daily, @every 1h, CRON_TZ=...).",
    "referrers": "Also copy referrers (signatures, SBOMs).",
    "digestTags": "Also copy digest tags (sha256-<hex>.sig, ...).",
    "fastCopy": "Skip child manifests and referrers when the top-level digest matches.",
    "fastCheck": "regsync's name for fastCopy.",
    "parallel": "Images copied at once.",
    "registry": "Host[:port] these settings are for (docker.io for Docker Hub).",
    "tls": "enabled, insecure (no verification) or disabled (plain HTTP).",
    "hooks": "Accepted for compatibility; never run.",
}


def _nullable(types: str | list[str]) -> list[str]:
    listed = [types] if isinstance(types, str) else list(types)
    return [*listed, "null"]  # `key:` with no value is the same as leaving the key out


def _scalar(spec: Scalar) -> dict[str, Any]:
    t = spec.type
    if t == "str":
        return {"type": _nullable(_TEXT)}
    if t == "int":
        return {"type": _nullable("integer")}
    if t == "uint":
        return {"type": _nullable("integer"), "minimum": 0}
    if t == "bytes":
        return {"type": _nullable("integer"), "minimum": -1}
    if t == "float":
        return {"type": _nullable("number")}
    if t == "bool":
        return {"anyOf": [{"type": ["boolean", "null"]}, {"enum": _BOOL_WORDS}]}
    if t == "duration":
        return {
            "anyOf": [
                {"type": "string", "pattern": _DURATION},
                {"const": 0},
                {"type": "null"},
            ]
        }
    raise AssertionError(t)


def _value(spec: Any, path: str) -> dict[str, Any]:
    if isinstance(spec, Scalar):
        return _scalar(spec)
    if isinstance(spec, StrList):
        return {"type": _nullable("array"), "items": {"type": _nullable(_TEXT)}}
    if isinstance(spec, StrMap):
        return {"type": _nullable("object"), "additionalProperties": {"type": _nullable(_TEXT)}}
    if isinstance(spec, Obj):
        return _object(spec, path)
    if isinstance(spec, ObjList):
        return {"type": _nullable("array"), "items": _object(spec.item, path)}
    if isinstance(spec, Ignored):
        return {"description": spec.why}
    raise AssertionError(spec)


def _object(spec: Obj, path: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for key, child in spec.keys.items():
        child_path = f"{path}.{key}" if path else key
        prop = _value(child, child_path)
        if child_path in _ENUMS:
            prop = {"anyOf": [{"enum": _ENUMS[child_path]}, {"type": "null"}]}
        if key in DESCRIPTIONS and "description" not in prop:
            prop = {"description": DESCRIPTIONS[key], **prop}
        properties[key] = prop
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "patternProperties": {"^x-": {}, "^<<$": {}},  # user extensions; merge keys
        "additionalProperties": False,
    }
    if path == "sync":
        out["required"] = ["source", "target", "type"]
    if path == "creds":
        out["required"] = ["registry"]
    return out


def build_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a regsync/regplan config file."""
    root = _object(schema.ROOT, "")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "regplan / regsync configuration",
        "description": "regsync's config format as regplan reads it (regsync.yml, regplan.yml).",
        **root,
    }


def render_schema() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def schema_text() -> str:
    """The shipped schema file's text."""
    return resources.files("regplan.config").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


if __name__ == "__main__":
    print(render_schema(), end="")
