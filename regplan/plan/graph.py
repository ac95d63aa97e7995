"""The desired-state graph: what the targets must hold, and in which order it may be made so.

Nodes are desired target states — a blob or manifest present in a repository, a tag pointing
at a digest, a referrer listed for its subject, a backup taken. Edges mean "must exist
before". A node the target already satisfies is kept (it is part of the desired state) but
marked; `to_actions()` prunes them and what is left, in dependency order, becomes the plan.

Identical content wanted by several images or steps is one node: keys are
(kind, target repository, digest-or-tag).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import Any

from regplan.errors import PlanConflictError
from regplan.plan import model
from regplan.refs import ImageRef

NodeKey = tuple[str, tuple[str, str, str], str]  # (kind, repo_key, digest or tag)

# Deterministic order among independent actions: content first, tags last.
_KIND_ORDER = {kind: i for i, kind in enumerate(model.KINDS)}


@dataclass(slots=True)
class Node:
    """A desired target state: the change that makes it so (the action it becomes), where it
    lives, and whether the target holds it already."""

    change: model.Change
    key: NodeKey
    satisfied: bool = False
    steps: set[int] = field(default_factory=set)

    @classmethod
    def of(
        cls,
        *,
        target: ImageRef,
        source: ImageRef,
        mount_from: ImageRef | None = None,
        satisfied: bool = False,
        **change: Any,
    ) -> Node:
        """A node for `target` (repo plus tag for tag kinds, or digest), its content read from
        `source` (pinned by digest); the other keywords are the Change's fields."""
        made = model.Change(
            target=str(target),
            source=str(source),
            mount_from=mount_from.repo_name if mount_from is not None else "",
            **change,
        )
        return cls(made, _key_of(made, target), satisfied)

    @property
    def kind(self) -> model.Kind:
        return self.change.kind

    @property
    def digest(self) -> str:
        return self.change.digest

    def update(self, **fields: Any) -> None:
        """Change some of what the node wants (its key stays)."""
        self.change = replace(self.change, **fields)


def _key_of(change: model.Change, target: ImageRef) -> NodeKey:
    if change.kind in model.TAG_KINDS:
        # tags, digest tags and backups share one namespace: one tag per name in a repo
        return tag_key(target)
    if change.kind == model.REFERRER:
        return (model.REFERRER, target.repo_key, f"{change.digest}>{change.subject}")
    return (change.kind, target.repo_key, change.digest)


def manifest_key(repo: ImageRef, digest: str) -> NodeKey:
    return (model.MANIFEST, repo.repo_key, digest)


def blob_key(repo: ImageRef, digest: str) -> NodeKey:
    return (model.BLOB, repo.repo_key, digest)


def tag_key(ref: ImageRef) -> NodeKey:
    return (model.TAG, ref.repo_key, ref.tag)


@dataclass
class Fragment:
    """What planning one image produced: nodes and edges, merged into the graph in job order."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[NodeKey, NodeKey, bool]] = field(
        default_factory=list
    )  # (before, after, hard)

    def add(self, node: Node) -> NodeKey:
        self.nodes.append(node)
        return node.key

    def edge(self, before: NodeKey, after: NodeKey, *, hard: bool = True) -> None:
        if before != after:
            self.edges.append((before, after, hard))


class DesiredGraph:
    """Nodes by key in the order they were first wanted, and "must exist before" edges.

    Plain dicts, not a networkx graph: merging and ordering are linear in nodes plus edges,
    and networkx (an import of its own) is only needed to break the rare cycle."""

    def __init__(self) -> None:
        self.nodes: dict[NodeKey, Node] = {}
        self.succ: dict[NodeKey, dict[NodeKey, bool]] = {}  # before -> {after: hard}

    def merge(self, fragment: Fragment, step: int) -> None:
        for node in fragment.nodes:
            key = node.key
            existing = self.nodes.get(key)
            if existing is None:
                node.steps.add(step)
                self.nodes[key] = node
                continue
            if node.kind in model.TAG_KINDS and existing.digest != node.digest:
                raise PlanConflictError(
                    f"steps {sorted(existing.steps)} and {step} both write {existing.change.target} "
                    f"but want different digests ({existing.digest[:19]} vs {node.digest[:19]})"
                )
            existing.steps.add(step)
            existing.steps.update(node.steps)
            if (
                node.kind in model.TAG_KINDS
                and existing.kind != node.kind
                and node.kind == model.TAG
            ):
                existing.update(
                    kind=model.TAG
                )  # a tag wanted by a step outranks the same digest tag
        for b, a, hard in fragment.edges:
            if b in self.nodes and a in self.nodes and b != a:
                after = self.succ.setdefault(b, {})
                after[a] = after.get(a, False) or hard

    def to_actions(self) -> list[model.Action]:
        # what the targets do not satisfy yet, and the edges between those nodes
        nodes = {k: n for k, n in self.nodes.items() if not n.satisfied}
        succ = {b: [a for a in after if a in nodes] for b, after in self.succ.items() if b in nodes}
        order = _ordered(nodes, succ)
        if order is None:  # a cycle: drop the soft edges that close it, then order again
            succ = _without_soft_cycles(nodes, succ, self.succ)
            order = _ordered(nodes, succ)
            assert order is not None  # every cycle left was broken or refused
        number = {key: i + 1 for i, key in enumerate(order)}
        preds: dict[NodeKey, list[int]] = {}
        for b, after in succ.items():
            for a in after:
                preds.setdefault(a, []).append(number[b])
        return [
            model.Action.of(
                nodes[key].change,
                id=f"a{number[key]}",
                steps=tuple(sorted(nodes[key].steps)),
                depends_on=tuple(f"a{i}" for i in sorted(preds.get(key, ()))),
            )
            for key in order
        ]


def _ordered(
    nodes: dict[NodeKey, Node], succ: dict[NodeKey, list[NodeKey]]
) -> list[NodeKey] | None:
    """Dependency order with ties broken deterministically (image, then kind, then target,
    then the order nodes were first wanted); None when the edges hold a cycle. One heap
    push and pop per node and one look at each edge (Kahn's algorithm)."""
    position = {key: i for i, key in enumerate(nodes)}

    def entry(key: NodeKey) -> tuple[str, int, str, int, NodeKey]:
        change = nodes[key].change
        return (change.group, _KIND_ORDER.get(change.kind, 0), change.target, position[key], key)

    unmet: dict[NodeKey, int] = {}
    for after in succ.values():
        for a in after:
            unmet[a] = unmet.get(a, 0) + 1
    ready = [entry(k) for k in nodes if k not in unmet]
    heapq.heapify(ready)
    out: list[NodeKey] = []
    while ready:
        key = heapq.heappop(ready)[-1]
        out.append(key)
        for a in succ.get(key, ()):
            unmet[a] -= 1
            if not unmet[a]:
                heapq.heappush(ready, entry(a))
    return out if len(out) == len(nodes) else None


def _without_soft_cycles(
    nodes: dict[NodeKey, Node],
    succ: dict[NodeKey, list[NodeKey]],
    hard: dict[NodeKey, dict[NodeKey, bool]],
) -> dict[NodeKey, list[NodeKey]]:
    """Ordering preferences (tag last) may loop through digest tags; content order may not.
    Each cycle found loses its first soft edge; a cycle of hard edges is refused."""
    import networkx as nx  # only here: most plans have no cycle, and the import is not free

    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((b, a, {"hard": hard[b][a]}) for b, after in succ.items() for a in after)
    while True:
        try:
            cycle = nx.find_cycle(g)
        except nx.NetworkXNoCycle:
            break
        soft = [(u, v) for u, v, *_ in cycle if not g.edges[u, v]["hard"]]
        if not soft:
            raise PlanConflictError(
                "content dependency cycle: " + " -> ".join(f"{k[0]} {k[2][:19]}" for k, *_ in cycle)
            )
        g.remove_edge(*soft[0])
    return {b: list(g.successors(b)) for b in succ}
