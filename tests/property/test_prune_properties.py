"""Whatever the filters, prune never deletes a tag the same step copies, never a protected tag,
and — where the registry deletes by digest — never a digest a kept tag points at."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from regplan.config.model import TagFilter
from regplan.filters import compile_pattern, filter_tags
from regplan.plan.prune import Decision, PruneRules, decide
from regplan.registry.api import DeleteMode

DIGESTS = [f"sha256:{c * 64}" for c in "0123"]
TAGS = st.sampled_from(
    ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc1", "v3", "latest", "build-9", "build-10", "edge"]
    + [f"sha256-{c * 64}" for c in "01"]
    + [f"sha256-{c * 64}.sig" for c in "23"]
)
PATTERNS = st.sampled_from(["1\\..*", "v.*", "build-.*", "latest", ".*", "e.*", "sha256-.*"])
filters = st.builds(
    TagFilter,
    allow=st.lists(PATTERNS, max_size=2).map(tuple),
    deny=st.lists(PATTERNS, max_size=1).map(tuple),
    semver_range=st.lists(st.sampled_from([">=1", "<2", "^1.2"]), max_size=1).map(tuple),
    latest=st.integers(0, 3),
)


@settings(max_examples=400, deadline=None)
@given(
    source=st.lists(TAGS, unique=True),
    target=st.dictionaries(TAGS, st.sampled_from([*DIGESTS, None])),
    sets=st.lists(filters, max_size=3).map(tuple),
    protect=st.lists(PATTERNS, max_size=2).map(tuple),
    mode=st.sampled_from([DeleteMode.TAG, DeleteMode.DIGEST]),
    planned=st.dictionaries(TAGS, st.sampled_from(DIGESTS), max_size=3),
)
def test_prune_never_deletes_what_the_step_copies(
    source: list[str],
    target: dict[str, str | None],
    sets: tuple[TagFilter, ...],
    protect: tuple[str, ...],
    mode: DeleteMode,
    planned: dict[str, str],
) -> None:
    copied = frozenset(filter_tags(source, sets))
    result = decide(target, copied, frozenset(), PruneRules(protect, 1000), mode, planned)
    deleted = {d.tag for d in result.deletes}
    assert not deleted & copied
    assert deleted <= set(target)
    assert all(target[t] is not None for t in deleted)
    assert not any(compile_pattern(p).search(t) for t in deleted for p in protect)
    assert {d.tag for d in result.decisions} == set(target)
    if mode is DeleteMode.DIGEST:
        kept = {d.digest for d in result.decisions if d.decision is Decision.KEEP}
        kept |= {planned[t] for t in planned if t in target or t in copied}
        assert not {d.digest for d in result.deletes} & (kept - {None})
