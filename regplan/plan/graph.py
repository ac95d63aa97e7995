"""The desired-state graph: what the targets must hold, and in which order it may be made so.

Nodes are desired target states — a blob or manifest present in a repository, a tag pointing
at a digest, a referrer listed for its subject, a backup taken. Edges mean "must exist
before". A node the target already satisfies is kept (it is part of the desired state) but
marked; `to_actions()` prunes them and what is left, in dependency order, becomes the plan.

Identical content wanted by several images or steps is one node: keys are
(kind, target repository, digest-or-tag).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from regplan.errors import PlanConflictError
from regplan.plan import model
from regplan.refs import ImageRef

if TYPE_CHECKING:
    import networkx as nx

NodeKey = tuple[str, tuple[str, str, str], str]  # (kind, repo_key, digest or tag)

# Deterministic order among independent actions: content first, tags last.
_KIND_ORDER = {kind: i for i, kind in enumerate(model.KINDS)}


@dataclass
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
    def __init__(self) -> None:
        import networkx as nx  # ~80 ms: only commands that build a plan pay for it (not `check`)

        self.g: nx.DiGraph = nx.DiGraph()

    def merge(self, fragment: Fragment, step: int) -> None:
        for node in fragment.nodes:
            key = node.key
            existing: Node | None = self.g.nodes[key]["node"] if key in self.g else None
            if existing is None:
                node.steps.add(step)
                self.g.add_node(key, node=node)
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
            if b in self.g and a in self.g and b != a:
                if self.g.has_edge(b, a):
                    self.g.edges[b, a]["hard"] = self.g.edges[b, a]["hard"] or hard
                else:
                    self.g.add_edge(b, a, hard=hard)

    def _break_soft_cycles(self, g: nx.DiGraph) -> None:
        """Ordering preferences (tag last) may loop through digest tags; content order may not."""
        import networkx as nx

        while True:
            try:
                cycle = nx.find_cycle(g)
            except nx.NetworkXNoCycle:
                return
            soft = [(u, v) for u, v, *_ in cycle if not g.edges[u, v]["hard"]]
            if not soft:
                raise PlanConflictError(
                    "content dependency cycle: "
                    + " -> ".join(f"{k[0]} {k[2][:19]}" for k, *_ in cycle)
                )
            g.remove_edge(*soft[0])

    def _pruned(self) -> nx.DiGraph:
        keep = [k for k, data in self.g.nodes(data=True) if not data["node"].satisfied]
        sub = self.g.subgraph(keep).copy()
        self._break_soft_cycles(sub)
        return sub

    @staticmethod
    def _ordered(sub: nx.DiGraph) -> list[Node]:
        """Dependency order with ties broken deterministically (image, then kind, then target)."""
        import networkx as nx

        def order(key: NodeKey) -> tuple[str, int, str]:
            node: Node = sub.nodes[key]["node"]
            return (node.change.group, _KIND_ORDER.get(node.kind, 0), node.change.target)

        return [sub.nodes[k]["node"] for k in nx.lexicographical_topological_sort(sub, key=order)]

    def to_actions(self) -> list[model.Action]:
        sub = self._pruned()
        nodes = self._ordered(sub)
        ids = {n.key: f"a{i + 1}" for i, n in enumerate(nodes)}
        actions = []
        for node in nodes:
            key = node.key
            deps = sorted((ids[p] for p in sub.predecessors(key)), key=lambda s: int(s[1:]))
            actions.append(
                model.Action.of(
                    node.change,
                    id=ids[key],
                    steps=tuple(sorted(node.steps)),
                    depends_on=tuple(deps),
                )
            )
        return actions
