"""The desired-state graph: dependency order, soft cycles broken, hard cycles refused, and
ordering that stays linear (no networkx, no copies) for a plan without cycles."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from regplan.errors import PlanConflictError
from regplan.plan import model
from regplan.plan.graph import DesiredGraph, Fragment, Node, NodeKey
from regplan.refs import ImageRef

REPO = ImageRef.parse("ocidir:///layouts/target")
SRC = ImageRef.parse("ocidir:///layouts/source")


def digest(i: int) -> str:
    return f"sha256:{i:064x}"


def blob(i: int, group: str = "g", *, satisfied: bool = False) -> Node:
    d = digest(i)
    return Node.of(
        kind=model.BLOB,
        target=REPO.with_digest(d),
        source=SRC.with_digest(d),
        reason=model.Reason.CONTENT_LACKING,
        digest=d,
        media_type="application/octet-stream",
        size=i,
        group=group,
        satisfied=satisfied,
    )


def tag(name: str, i: int, kind: model.Kind = model.TAG) -> Node:
    return Node.of(
        kind=kind,
        target=REPO.with_tag(name),
        source=SRC.with_digest(digest(i)),
        reason=model.CREATE,
        digest=digest(i),
        media_type="application/vnd.oci.image.index.v1+json",
        size=i,
        group=name,
    )


def reference_order(nodes: list[Node], edges: list[tuple[NodeKey, NodeKey]]) -> list[str]:
    """What a networkx lexicographical topological sort says (the order plans always had)."""
    import networkx as nx

    g = nx.DiGraph()
    for n in nodes:
        if not n.satisfied and n.key not in g:
            g.add_node(n.key, node=n)
    g.add_edges_from((b, a) for b, a in edges if b in g and a in g and b != a)

    def order(key: NodeKey) -> tuple[str, int, str]:
        change = g.nodes[key]["node"].change
        return (change.group, model.KINDS.index(change.kind), change.target)

    return [g.nodes[k]["node"].change.target for k in nx.lexicographical_topological_sort(g, order)]


@pytest.mark.parametrize("seed", range(20))
def test_order_and_dependencies_match_a_lexicographic_topological_sort(seed: int) -> None:
    rng = random.Random(seed)
    count = rng.randint(1, 60)
    nodes = [
        blob(i, group=f"g{rng.randint(0, 3)}", satisfied=rng.random() < 0.2) for i in range(count)
    ]
    edges = [
        (nodes[i].key, nodes[j].key)
        for i in range(count)
        for j in range(i + 1, count)
        if rng.random() < 0.1
    ]
    graph = DesiredGraph()
    graph.merge(Fragment(nodes=nodes, edges=[(b, a, True) for b, a in edges]), 0)
    actions = graph.to_actions()
    assert [a.target for a in actions] == reference_order(nodes, edges)
    ids = {a.target: a.id for a in actions}
    by_key = {n.key: n.change.target for n in nodes}
    for action in actions:
        want = {ids[by_key[b]] for b, a in edges if by_key[a] == action.target and by_key[b] in ids}
        assert set(action.depends_on) == want
        assert list(action.depends_on) == sorted(action.depends_on, key=lambda s: int(s[1:]))


def test_action_carries_every_field_of_its_change() -> None:
    node = blob(7)
    action = model.Action.of(node.change, id="a1", steps=(0, 2), depends_on=("a3",))
    expected = model.Action(
        **{name: getattr(node.change, name) for name in model.CHANGE_FIELDS},
        id="a1",
        steps=(0, 2),
        depends_on=("a3",),
    )
    assert action == expected and repr(action) == repr(expected)
    assert hash(action) == hash(expected)


def test_a_soft_cycle_loses_one_edge() -> None:
    t, d = tag("t", 1), tag("sha256-x", 2, model.DIGEST_TAG)
    graph = DesiredGraph()
    graph.merge(Fragment(nodes=[t, d], edges=[(d.key, t.key, False), (t.key, d.key, True)]), 0)
    actions = graph.to_actions()
    assert [a.target for a in actions] == [str(REPO.with_tag("t")), str(REPO.with_tag("sha256-x"))]
    assert actions[1].depends_on == ("a1",) and actions[0].depends_on == ()


def test_a_hard_cycle_is_refused() -> None:
    a, b = blob(1), blob(2)
    graph = DesiredGraph()
    graph.merge(Fragment(nodes=[a, b], edges=[(a.key, b.key, True), (b.key, a.key, True)]), 0)
    with pytest.raises(PlanConflictError, match="content dependency cycle"):
        graph.to_actions()


def test_an_acyclic_plan_is_ordered_without_networkx() -> None:
    """networkx is only for breaking cycles: its import and its copies of the graph were most
    of ordering a 7,000-action plan."""
    code = (
        "import sys\n"
        "from tests.plan.test_graph import blob\n"
        "from regplan.plan.graph import DesiredGraph, Fragment\n"
        "nodes = [blob(i) for i in range(50)]\n"
        "edges = [(nodes[i].key, nodes[i + 1].key, True) for i in range(49)]\n"
        "g = DesiredGraph()\n"
        "g.merge(Fragment(nodes=nodes, edges=edges), 0)\n"
        "assert len(g.to_actions()) == 50\n"
        "print('networkx' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
