"""The partition of a plan between N workers: pure, stable, whole repositories, no dependency
across shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from regplan.config import load_config
from regplan.plan.model import Action, Plan
from regplan.plan.shard import (
    Shard,
    ShardError,
    partition,
    repository,
    shard_from,
    shard_loads,
    shard_plan,
    share_limits,
)
from tests.regplan_cli import regplan

DIGEST = "sha256:" + "a" * 64


def action(n: int, target: str, kind: str = "blob", deps: tuple[str, ...] = ()) -> Action:
    return Action(
        id=f"a{n}",
        kind=kind,
        reason="missing",
        target=target,
        digest=DIGEST,
        media_type="application/octet-stream",
        size=10,
        source=f"127.0.0.1:1/src@{DIGEST}",
        steps=(0,),
        group=f"a{n}",
        depends_on=deps,
        bytes=10,
    )


def plan_of(actions: list[Action]) -> Plan:
    return Plan(
        created_at="2026-12-01T00:00:00Z",
        config_path="/c.yml",
        config_digest="sha256:" + "0" * 64,
        mode="full",
        steps=(),
        actions=tuple(actions),
    )


def many_repositories(repos: int = 40, per_repo: int = 5) -> Plan:
    actions = []
    for r in range(repos):
        first = len(actions)
        for _i in range(per_repo - 1):
            actions.append(action(len(actions), f"127.0.0.1:2/repo{r}@{DIGEST}"))
        deps = tuple(f"a{k}" for k in range(first, len(actions)))
        actions.append(action(len(actions), f"127.0.0.1:2/repo{r}:v1", "tag", deps))
    return plan_of(actions)


def test_every_action_is_in_exactly_one_shard_and_repositories_stay_whole() -> None:
    plan = many_repositories()
    parts = [shard_plan(plan, Shard(i, 4)) for i in range(4)]
    ids = [a.id for p in parts for a in p.actions]
    assert sorted(ids) == sorted(a.id for a in plan.actions)
    owners: dict[str, set[int]] = {}
    for i, p in enumerate(parts):
        for a in p.actions:
            owners.setdefault(repository(a), set()).add(i)
    assert all(len(s) == 1 for s in owners.values()), owners
    assert all(p.actions for p in parts), "40 repositories left a shard empty"


def test_the_partition_depends_on_the_plan_alone() -> None:
    plan = many_repositories()
    reordered = plan_of(list(reversed(plan.actions)))
    assert partition(plan, 4) == partition(reordered, 4)


def test_a_dependency_into_another_repository_keeps_both_together() -> None:
    # a backup tag written into another repository, which the image's tag waits for
    actions = [action(0, "127.0.0.1:2/backups:app-old"), action(1, "127.0.0.1:2/app:v1")]
    actions[1] = Action(**{**actions[1].__dict__, "depends_on": ("a0",), "kind": "tag"})
    plan = plan_of(actions)
    for count in range(1, 9):
        owner = partition(plan, count)
        assert owner["a0"] == owner["a1"]
    for i in range(3):
        part = shard_plan(plan, Shard(i, 3))
        have = {a.id for a in part.actions}
        assert all(d in have for a in part.actions for d in a.depends_on)


def test_loads_add_up() -> None:
    plan = many_repositories()
    loads = shard_loads(plan, 3)
    assert sum(x.actions for x in loads) == len(plan.actions)
    assert sum(x.repositories for x in loads) == 40
    assert sum(x.bytes for x in loads) == sum(a.bytes for a in plan.actions)


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        ("1/4", {}, Shard(1, 4)),
        ("4", {"JOB_COMPLETION_INDEX": "3"}, Shard(3, 4)),
        ("4", {"REGPLAN_SHARD_INDEX": "2", "JOB_COMPLETION_INDEX": "3"}, Shard(2, 4)),
        ("env", {"REGPLAN_SHARD": "0/2"}, Shard(0, 2)),
        ("env", {"REGPLAN_SHARDS": "5", "JOB_COMPLETION_INDEX": "4"}, Shard(4, 5)),
        (None, {"JOB_COMPLETION_INDEX": "1"}, None),
    ],
)
def test_shard_from_option_and_environment(
    option: str | None, env: dict[str, str], expected: Shard | None
) -> None:
    assert shard_from(option, env) == expected


@pytest.mark.parametrize(
    ("option", "env", "message"),
    [
        ("4/4", {}, "not in 0 … 3"),
        ("0/0", {}, "must be 1 to"),
        ("x", {}, "expected I/N"),
        ("4", {}, "no shard index"),
        ("4", {"JOB_COMPLETION_INDEX": "-1"}, "is not a shard index"),
        ("env", {}, "set REGPLAN_SHARD"),
    ],
)
def test_bad_shards_are_usage_errors(option: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ShardError, match=message) as caught:
        shard_from(option, env)
    assert caught.value.exit_code == 2


def test_referrers_copied_to_another_repository_stay_with_their_subject() -> None:
    # referrerTarget: the subject's tag waits (softly) for referrers written elsewhere
    referrer = action(0, f"127.0.0.1:2/signatures@{DIGEST}", "referrer")
    tag = action(1, "127.0.0.1:2/app:v1", "tag", ("a0",))
    plan = plan_of([referrer, tag, action(2, "127.0.0.1:2/other:v1", "tag")])
    for count in range(2, 9):
        owner = partition(plan, count)
        assert owner["a0"] == owner["a1"]


def test_shared_limits_split_each_registrys_requests(tmp_path: Path) -> None:
    path = tmp_path / "regplan.yml"
    path.write_text(
        "creds:\n  - registry: a.example\n    reqPerSec: 8\n    reqConcurrent: 6\n"
        "  - registry: b.example\nsync:\n"
        "  - source: a.example/x:v1\n    target: b.example/x:v1\n    type: image\n"
    )
    shared = share_limits(load_config(str(path)), 4)
    hosts = {h.name: h for h in shared.creds}
    assert (hosts["a.example"].req_per_sec, hosts["a.example"].req_concurrent) == (2.0, 1)
    assert (hosts["b.example"].req_per_sec, hosts["b.example"].req_concurrent) == (0.0, 1)


def test_share_limits_without_a_shard_is_a_usage_error(tmp_path: Path) -> None:
    result = regplan("apply", "plan.json", "--share-limits", cwd=tmp_path)
    assert result.code == 2 and "--share-limits goes with --shard" in result.stderr, str(result)
