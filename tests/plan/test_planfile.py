"""The plan file (planfile.py): round trip, integrity, versioning, types, the JSON Schema."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import orjson
import pytest

from regplan.errors import PlanFileError
from regplan.plan import model, planfile
from regplan.plan.model import Action, Plan, StepSummary
from regplan.plan.planfile import load_plan, save_plan

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
                reason=model.Reason.CONTENT_LACKING,
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
    assert planfile.encode(again) == planfile.encode(plan)


def test_bytes_are_deterministic() -> None:
    assert planfile.encode(sample_plan()) == planfile.encode(sample_plan())


def test_schema_accepts_a_plan() -> None:
    jsonschema.validate(orjson.loads(planfile.encode(sample_plan())), SCHEMA)


def test_tampering_is_detected(tmp_path: Path) -> None:
    body = orjson.loads(planfile.encode(sample_plan()))
    body["actions"][1]["digest"] = D1
    path = tmp_path / "plan.json"
    path.write_bytes(orjson.dumps(body))
    with pytest.raises(PlanFileError, match="integrity check failed"):
        load_plan(path)


def test_truncated_plan_is_refused() -> None:
    data = planfile.encode(sample_plan())
    with pytest.raises(PlanFileError, match="invalid JSON"):
        planfile.decode(data[: len(data) // 2])


def test_unknown_major_version_is_refused() -> None:
    body = orjson.loads(planfile.encode(sample_plan()))
    body["format_version"] = "3.0"
    body["integrity"] = planfile.integrity_of(body)
    with pytest.raises(PlanFileError, match=r"plan format 3\.0 is not supported"):
        planfile.decode(orjson.dumps(body))


def test_unknown_keys_are_ignored() -> None:
    body = orjson.loads(planfile.encode(sample_plan()))
    body["future_field"] = {"x": 1}
    body["actions"][0]["future"] = True
    body["format_version"] = "1.7"
    body["integrity"] = planfile.integrity_of(body)
    plan = planfile.decode(orjson.dumps(body))
    assert plan.actions == sample_plan().actions


def test_summary_counts() -> None:
    s = sample_plan().summary
    assert (s.images, s.tags_update, s.blobs, s.manifests, s.bytes) == (1, 1, 1, 1, 10)
    assert sample_plan().has_changes


def test_missing_file_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match="cannot read plan file"):
        load_plan(tmp_path / "nope.json")


def _resealed(body: dict[str, object]) -> bytes:
    body["integrity"] = planfile.integrity_of(body)
    return orjson.dumps(body)


@pytest.mark.parametrize("warnings", [[None], [1], "text", {"a": "b"}])
def test_warnings_of_the_wrong_type_are_a_plan_error(warnings: object) -> None:
    body = orjson.loads(planfile.encode(sample_plan()))
    body["warnings"] = warnings
    with pytest.raises(PlanFileError, match=r"malformed plan file .*warnings"):
        planfile.decode(_resealed(body))


def test_decoded_kinds_are_the_enum() -> None:
    plan = planfile.decode(planfile.encode(sample_plan()))
    assert [type(a.kind) for a in plan.actions] == [model.Kind, model.Kind]


@pytest.mark.parametrize(
    ("depends", "problem"),
    [
        ({"a1": ["a2"], "a2": ["a1"]}, "dependency cycle: a1 -> a2 -> a1"),
        ({"a1": ["a1"]}, "dependency cycle: a1 -> a1"),
        ({"a2": ["a3"]}, "plan action a2 depends on a3, which comes after it"),
        ({"a2": ["a9"]}, "plan action a2 depends on unknown action a9"),
        ({"a3": ["a1", "a2"], "a2": ["a1"]}, ""),
    ],
)
def test_graph_problems_are_named(depends: dict[str, list[str]], problem: str) -> None:
    """Checked in one pass when every dependency comes first; named as before otherwise."""
    actions = tuple(
        replace(sample_plan().actions[0], id=f"a{i}", depends_on=tuple(depends.get(f"a{i}", ())))
        for i in (1, 2, 3)
    )
    assert planfile.graph_problem(actions) == problem
