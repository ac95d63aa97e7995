"""The plan file: round trip, integrity, versioning, determinism, and the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from regplan.errors import PlanFileError
from regplan.plan import model
from regplan.plan.model import Action, Plan, StepSummary, load_plan, save_plan

SCHEMA = json.loads((Path(model.__file__).parent / "schema.json").read_text())
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
CFG = "sha256:" + "c" * 64


def sample_plan() -> Plan:
    manifest = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
    from regplan.oci import digest

    mdigest = digest.of(manifest)
    return Plan(
        created_at="2026-11-27T10:00:00Z",
        config_path="regplan.yml",
        config_digest=CFG,
        mode="full",
        steps=(
            StepSummary(
                index=0,
                name="sync[0] a -> b",
                type="image",
                source="a",
                target="b",
                images=1,
                to_sync=1,
            ),
        ),
        actions=(
            Action(
                id="a1",
                kind=model.BLOB,
                reason=model.MISSING,
                target=f"r.example/b@{D1}",
                digest=D1,
                media_type="application/octet-stream",
                size=10,
                source=f"docker.io/library/a@{D1}",
                steps=(0,),
                group="r.example/b:latest",
                bytes=10,
            ),
            Action(
                id="a2",
                kind=model.TAG,
                reason=model.UPDATE,
                target="r.example/b:latest",
                digest=mdigest,
                media_type="application/vnd.oci.image.manifest.v1+json",
                size=len(manifest),
                source=f"docker.io/library/a@{mdigest}",
                steps=(0,),
                group="r.example/b:latest",
                before=D2,
                source_tag="latest",
                manifest=manifest,
                depends_on=("a1",),
            ),
        ),
        regplan_version="0.1.0",
    )


def test_round_trip_is_identity(tmp_path: Path) -> None:
    plan = sample_plan()
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    again = load_plan(path)
    assert again == plan
    assert again.to_bytes() == plan.to_bytes()


def test_bytes_are_deterministic() -> None:
    assert sample_plan().to_bytes() == sample_plan().to_bytes()


def test_schema_accepts_a_plan() -> None:
    jsonschema.validate(orjson.loads(sample_plan().to_bytes()), SCHEMA)


def test_tampering_is_detected(tmp_path: Path) -> None:
    body = orjson.loads(sample_plan().to_bytes())
    body["actions"][1]["digest"] = D1
    path = tmp_path / "plan.json"
    path.write_bytes(orjson.dumps(body))
    with pytest.raises(PlanFileError, match="integrity check failed"):
        load_plan(path)


def test_truncated_plan_is_refused() -> None:
    data = sample_plan().to_bytes()
    with pytest.raises(PlanFileError, match="invalid JSON"):
        Plan.from_bytes(data[: len(data) // 2])


def test_unknown_major_version_is_refused() -> None:
    body = orjson.loads(sample_plan().to_bytes())
    body["format_version"] = "3.0"
    body["integrity"] = model.integrity_of(body)
    with pytest.raises(PlanFileError, match=r"plan format 3\.0 is not supported"):
        Plan.from_bytes(orjson.dumps(body))


def test_unknown_keys_are_ignored() -> None:
    body = orjson.loads(sample_plan().to_bytes())
    body["future_field"] = {"x": 1}
    body["actions"][0]["future"] = True
    body["format_version"] = "1.7"
    body["integrity"] = model.integrity_of(body)
    plan = Plan.from_bytes(orjson.dumps(body))
    assert plan.actions == sample_plan().actions


def test_summary_counts() -> None:
    s = sample_plan().summary
    assert (s.images, s.tags_update, s.blobs, s.manifests, s.bytes) == (1, 1, 1, 1, 10)
    assert sample_plan().has_changes


def test_missing_file_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match="cannot read plan file"):
        load_plan(tmp_path / "nope.json")
