"""Split one reviewed plan between N workers (a Kubernetes Indexed Job, a CI matrix).

Every worker computes the same partition from the plan alone, so no coordination is needed:
actions are grouped by target repository (all of one repository's blobs, manifests, tags,
referrers and backups together), groups joined by a dependency edge are merged (a backup or a
referrer written into another repository stays with the image that needs it), and each merged
group goes to the shard a stable hash of its first repository names. No action's dependency
can then live in another shard, so a worker never tags an image whose content another worker
has not copied yet.

`once --shard` has no shared plan file: each worker plans only the images whose target
repository is in its shard (`shard_of` of the image's target repository), with everything
those images need, wherever it is written.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from regplan.config.model import Config
from regplan.errors import RegplanError
from regplan.plan.model import Action, Plan
from regplan.refs import ImageRef

# Kubernetes sets JOB_COMPLETION_INDEX on the pods of an Indexed Job; the completion count
# is the manifest's own `completions`, passed once as REGPLAN_SHARDS in the pod template.
INDEX_VARIABLES = ("REGPLAN_SHARD_INDEX", "JOB_COMPLETION_INDEX")
COUNT_VARIABLE = "REGPLAN_SHARDS"
SHARD_VARIABLE = "REGPLAN_SHARD"  # "I/N" in one variable (a CI matrix)
MAX_SHARDS = 10_000

_SPEC = re.compile(r"(\d+)/(\d+)")


class ShardError(RegplanError):
    """A shard that cannot be worked out: a usage error."""

    exit_code = 2


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based, as JOB_COMPLETION_INDEX
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str, *, what: str = "--shard") -> Shard:
        match = _SPEC.fullmatch(text.strip())
        if match is None:
            raise ShardError(f"{what} {text!r}: expected I/N, e.g. 0/4 (I counts from 0)")
        return cls.of(int(match.group(1)), int(match.group(2)), what=what)

    @classmethod
    def of(cls, index: int, count: int, *, what: str = "--shard") -> Shard:
        if not 1 <= count <= MAX_SHARDS:
            raise ShardError(f"{what}: the shard count must be 1 to {MAX_SHARDS}, not {count}")
        if not 0 <= index < count:
            raise ShardError(f"{what}: shard index {index} is not in 0 … {count - 1}")
        return cls(index, count)


def shard_from(option: str | None, environ: Mapping[str, str] | None = None) -> Shard | None:
    """The shard asked for: `--shard I/N`, `--shard N` with the index from the environment
    (JOB_COMPLETION_INDEX or REGPLAN_SHARD_INDEX), `--shard env`, or nothing."""
    env = os.environ if environ is None else environ
    if option is None:
        return None
    option = option.strip()
    if option == "env":
        if env.get(SHARD_VARIABLE):
            return Shard.parse(env[SHARD_VARIABLE], what=SHARD_VARIABLE)
        if not env.get(COUNT_VARIABLE):
            raise ShardError(
                f"--shard env: set {SHARD_VARIABLE}=I/N, or {COUNT_VARIABLE}=N with "
                f"{' or '.join(INDEX_VARIABLES)}"
            )
        option = env[COUNT_VARIABLE]
    if "/" in option:
        return Shard.parse(option)
    if not option.isdigit():
        raise ShardError(f"--shard {option!r}: expected I/N, N or env")
    for name in INDEX_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            if not value.isdigit():
                raise ShardError(f"{name}={value!r} is not a shard index")
            return Shard.of(int(value), int(option), what=f"--shard {option} ({name})")
    raise ShardError(
        f"--shard {option}: no shard index; set {' or '.join(INDEX_VARIABLES)}, or pass I/{option}"
    )


def repository(action: Action) -> str:
    """The repository (or OCI Layout) an action writes into."""
    return str(ImageRef.parse(action.target).repo())


def shard_of(repo: str, count: int) -> int:
    """The shard of a repository: a stable hash, the same in every process and on every run."""
    return int.from_bytes(hashlib.sha256(repo.encode()).digest()[:8], "big") % count


def partition(plan: Plan, count: int) -> dict[str, int]:
    """Action id → shard, for `count` shards. Pure: the same plan always splits the same way."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression keeps this near-linear
            parent[x], x = root, parent[x]
        return root

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the smallest repository name leads

    repo_of = {a.id: repository(a) for a in plan.actions}
    for repo in repo_of.values():
        parent.setdefault(repo, repo)
    for action in plan.actions:
        for dep in action.depends_on:
            if dep in repo_of:
                union(repo_of[action.id], repo_of[dep])
    return {aid: shard_of(find(repo), count) for aid, repo in repo_of.items()}


def shard_plan(plan: Plan, shard: Shard) -> Plan:
    """The part of `plan` that `shard` applies: whole repositories, with their dependencies."""
    owner = partition(plan, shard.count)
    actions = tuple(a for a in plan.actions if owner[a.id] == shard.index)
    return replace(plan, actions=actions)


@dataclass(frozen=True)
class ShardLoad:
    index: int
    repositories: int
    actions: int
    bytes: int


def shard_loads(plan: Plan, count: int) -> list[ShardLoad]:
    """What each of `count` shards would do: for choosing N before applying."""
    owner = partition(plan, count)
    repos: list[set[str]] = [set() for _ in range(count)]
    actions = [0] * count
    moved = [0] * count
    for action in plan.actions:
        i = owner[action.id]
        repos[i].add(repository(action))
        actions[i] += 1
        moved[i] += action.bytes
    return [ShardLoad(i, len(repos[i]), actions[i], moved[i]) for i in range(count)]


def share_limits(config: Config, count: int) -> Config:
    """Each of `count` workers gets 1/count of every listed registry's `reqPerSec` and
    `reqConcurrent` (at least one request at a time), so together they stay within the
    limits a single process would keep. A step's `ratelimit` needs no share: the remaining
    pulls it compares with are the registry's own count, which every worker reads."""
    creds = tuple(
        replace(
            host,
            req_per_sec=host.req_per_sec / count,
            req_concurrent=max(1, host.concurrency // count),
        )
        for host in config.creds
    )
    return replace(config, creds=creds)
