"""Image references: what parses prints back to itself, and nothing else is raised but
InvalidReferenceError."""

from __future__ import annotations

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from regplan.errors import InvalidReferenceError
from regplan.refs import DIGEST_RE, TAG_RE, ImageRef

_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.builds(lambda a, b: f"{a}.{b}", _label, _label),
    st.builds(lambda a, p: f"{a}.example:{p}", _label, st.integers(1, 65535)),
    st.just("localhost:5000"),
    st.builds(lambda p: f"127.0.0.1:{p}", st.integers(1, 65535)),
)
_component = st.from_regex(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+){0,2}", fullmatch=True)
repositories = st.lists(_component, min_size=1, max_size=4).map("/".join)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True)
digests = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@st.composite
def references(draw: st.DrawFn) -> str:
    text = f"{draw(hosts)}/{draw(repositories)}"
    if draw(st.booleans()):
        text += ":" + draw(tags)
    if draw(st.booleans()):
        text += "@" + draw(digests)
    return text


@settings(max_examples=400, deadline=None)
@given(references())
def test_parse_print_parse_is_identity(text: str) -> None:
    ref = ImageRef.parse(text)
    again = ImageRef.parse(str(ref))
    assert again == ref
    assert str(again) == str(ref)
    assert ref.registry == text.split("/", 1)[0]
    assert ref.repository and "/" + ref.repository in text


@settings(max_examples=300, deadline=None)
@given(references(), tags, digests)
def test_derived_references_round_trip(text: str, tag: str, digest: str) -> None:
    ref = ImageRef.parse(text)
    assert ImageRef.parse(str(ref.with_tag(tag))).tag == tag
    assert ImageRef.parse(str(ref.with_digest(digest))).digest == digest
    assert ref.repo() == ImageRef.parse(str(ref)).repo()
    assert ref.same_repository(ref.with_tag(tag))


@settings(max_examples=300, deadline=None)
@given(repositories, st.sampled_from(["", "docker.io/", "index.docker.io/"]))
def test_docker_hub_names_normalise_once(repo: str, prefix: str) -> None:
    first = repo.split("/", 1)[0]
    # a first component with a dot (or localhost) names a registry, as in docker
    assume("/" not in repo or ("." not in first and first != "localhost"))
    assume(first != "localhost")
    ref = ImageRef.parse(prefix + repo)
    assert ref.registry == "docker.io"
    assert ImageRef.parse(str(ref)) == ref
    if "/" not in repo:
        assert ref.repository == "library/" + repo


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["/tmp/layout", "rel/dir", "a b/c~d"]), st.one_of(st.none(), tags))
def test_ocidir_round_trip(path: str, tag: str | None) -> None:
    text = f"ocidir://{path}" + (f":{tag}" if tag else "")
    ref = ImageRef.parse(text)
    assert ref.is_ocidir and ref.path == path and ref.tag == (tag or "")
    assert ImageRef.parse(str(ref)) == ref


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=80))
@example("")
@example("@")
@example("a" * 300 + ":" + "b" * 300)
@example("ocidir://")
@example("ftp://host/repo")
@example("[::1]:5000/x")
@example("[zz::1]:5000/x")
@example("host/repo@sha256:" + "g" * 64)
def test_arbitrary_text_raises_only_reference_errors(text: str) -> None:
    try:
        ref = ImageRef.parse(text)
    except InvalidReferenceError as e:
        assert "\n" not in str(e).strip() or "\n" in text  # one line, unless the input had one
        return
    # what parses has valid parts
    assert not ref.tag or TAG_RE.fullmatch(ref.tag)
    assert not ref.digest or DIGEST_RE.fullmatch(ref.digest)
    assert ImageRef.parse(str(ref)) == ref
