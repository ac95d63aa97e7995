"""The plan file: parse → render → parse is the identity, rendering is deterministic, and no
input — random bytes, a damaged plan, or a crafted plan with a valid integrity digest — raises
anything but PlanFileError. A plan that does load can always be rendered."""

from __future__ import annotations

import base64

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regplan.errors import PlanFileError, RegplanError
from regplan.plan import model, planfile
from regplan.plan.model import Action, Plan, StepSummary
from regplan.plan.planfile import integrity_of
from regplan.plan.render import render

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
digests = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)
small = st.integers(0, 10**12)


@st.composite
def actions(draw: st.DrawFn) -> tuple[Action, ...]:
    out: list[Action] = []
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(model.KINDS))
        out.append(
            Action(
                id=f"a{i + 1}",
                kind=kind,
                reason=draw(
                    st.sampled_from(
                        [model.CREATE, model.UPDATE, model.REFRESH, model.Reason.CONTENT_LACKING]
                    )
                ),
                target=draw(text),
                digest=draw(digests),
                media_type=draw(text),
                size=draw(st.integers(-1, 10**12)),
                source=draw(text),
                steps=tuple(draw(st.lists(st.integers(0, 50), max_size=3))),
                group=draw(text),
                # `before` is written for tag kinds only (None there means "absent")
                before=draw(st.one_of(st.none(), digests)) if kind in model.TAG_KINDS else None,
                source_tag=draw(text),
                mount_from=draw(text),
                subject=draw(st.one_of(st.just(""), digests)),
                artifact_type=draw(text),
                platform=draw(text),
                manifest=draw(st.one_of(st.none(), st.binary(max_size=200))),
                depends_on=tuple(draw(st.sets(st.sampled_from([a.id for a in out]), max_size=3)))
                if out
                else (),
                bytes=draw(small),
            )
        )
    return tuple(out)


string_dicts = st.dictionaries(st.sampled_from(["ref", "why", "tag"]), text, max_size=2)
steps = st.builds(
    StepSummary,
    index=st.integers(0, 50),
    name=text,
    type=st.sampled_from(["registry", "repository", "image"]),
    source=text,
    target=text,
    images=small,
    up_to_date=small,
    to_sync=small,
    skipped=st.lists(string_dicts, max_size=2).map(tuple),
    dropped=st.lists(string_dicts, max_size=2).map(tuple),
    rate_limit=st.one_of(
        st.none(), st.dictionaries(st.sampled_from(["remaining", "limit"]), st.integers(0, 1000))
    ),
    errors=st.lists(text, max_size=2).map(tuple),
)
plans = st.builds(
    Plan,
    created_at=st.just("2026-11-27T10:00:00Z"),
    config_path=text,
    config_digest=digests,
    mode=st.sampled_from(["full", "missing"]),
    steps=st.lists(steps, max_size=3).map(tuple),
    actions=actions(),
    regplan_version=text,
    format_version=st.sampled_from(["1.0", "1.1", "1.42"]),
    warnings=st.lists(text, max_size=2).map(tuple),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans)
def test_parse_render_parse_is_identity(plan: Plan) -> None:
    data = planfile.encode(plan)
    again = planfile.decode(data)
    assert again == plan
    assert planfile.encode(again) == data  # byte-identical: deterministic
    assert render(again, "json").encode() == data
    for fmt in ("text", "markdown"):
        assert render(again, fmt) == render(plan, fmt)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans, st.data())
def test_damage_is_harmless_or_detected(plan: Plan, data: st.DataObject) -> None:
    """One byte changed, inserted or removed, or the file cut: the plan either still reads
    as exactly the same plan (whitespace) or is refused with PlanFileError."""
    raw = bytearray(planfile.encode(plan))
    i = data.draw(st.integers(0, len(raw) - 1))
    how = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
    if how == "flip":
        raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "insert":
        raw.insert(i, data.draw(st.integers(0, 255)))
    elif how == "delete":
        del raw[i]
    else:
        del raw[i:]
    try:
        loaded = planfile.decode(bytes(raw))
    except PlanFileError:
        return
    assert loaded == plan


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_plan_file_errors(raw: bytes) -> None:
    try:
        planfile.decode(raw)
    except PlanFileError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def _sealed(body: dict) -> bytes:
    body = dict(body)
    body.pop("integrity", None)
    body["integrity"] = integrity_of(body)
    return orjson.dumps(body)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans, st.data())
def test_crafted_plans_raise_only_plan_file_errors(plan: Plan, data: st.DataObject) -> None:
    """A valid plan with one field anywhere replaced by arbitrary JSON, integrity resealed
    (the integrity digest is no signature): it loads and renders, or PlanFileError."""
    body = orjson.loads(planfile.encode(plan))
    containers: list[tuple[object, object]] = [(body, k) for k in body if k != "integrity"]
    for action in body["actions"]:
        containers += [(action, k) for k in action]
    for step in body["steps"]:
        containers += [(step, k) for k in step]
    owner, key = data.draw(st.sampled_from(containers))
    owner[key] = data.draw(json_values)  # type: ignore[index]
    try:
        loaded = planfile.decode(_sealed(body))
    except PlanFileError:
        return
    for fmt in ("json", "text", "markdown"):
        try:
            render(loaded, fmt)
        except RegplanError:
            pass


def test_manifest_bytes_survive_base64() -> None:
    raw = bytes(range(256))
    action = Action(id="a1", kind=model.TAG, reason=model.CREATE, target="r/x:1",
                    digest="sha256:" + "0" * 64, media_type="t", size=1, source="s",
                    steps=(0,), group="a1", manifest=raw)  # fmt: skip
    assert base64.b64decode(planfile.action_to_json(action)["manifest"]) == raw
    assert planfile.action_from_json(planfile.action_to_json(action)) == action
