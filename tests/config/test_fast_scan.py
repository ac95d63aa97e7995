"""The config reader composes YAML faster than strictyaml's own loader: libyaml for ordinary
text, else strictyaml's parser scanning without comment gathering, one regex per one-line plain
scalar. Either must compose the nodes strictyaml composes — values, tags, styles and every
position — and still refuse what strictyaml refuses."""

from __future__ import annotations

from typing import Any

import pytest
from strictyaml.parser import StrictYAMLLoader

from bench.realworld import regplan_config, shape
from regplan.config.loader import load_bytes
from regplan.config.yamlsource import _compose_strictyaml, compose
from regplan.errors import ConfigError


def reference(text: str) -> Any:
    loader = StrictYAMLLoader(text)
    loader.allow_flow_style = True
    loader.label = "t.yml"
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def tree(node: Any) -> Any:
    value = node.value
    if isinstance(value, list):
        value = [
            tuple(tree(x) for x in item) if isinstance(item, tuple) else tree(item)
            for item in value
        ]
    marks: tuple[int, ...] = (
        node.start_mark.line,
        node.start_mark.column,
        node.end_mark.line,
        node.end_mark.column,
    )
    if value == "" and not getattr(node, "style", None):
        # an empty value (`key:`): libyaml places it where its key's line ends, strictyaml at
        # the start of the next line; either names the key's entry
        marks = ()
    # a plain scalar's style: None from strictyaml, "" from libyaml
    return (type(node).__name__, node.tag, getattr(node, "style", None) or None, marks, value)


SAMPLES = [
    "a: b\n",
    "a: b\n  continued\n",  # a plain scalar over two lines
    "a: b\n\n  after a blank line\n",
    "a: b # comment\nc: d\n",
    "a: b#not-a-comment\n",
    "a: b\n# comment\nd: e\n",
    "k: v\n  # indented comment\n  more\n",
    "a: b:c\nd: 'quoted: yes'\ne: \"x\"\n",
    "a: two words\nb: trailing space \n",
    "a: b\r\nc: d\r\n",
    "- a\n- b\n  c\n- d: e\n  f: g\n",
    "a:\n  - x: y\n    z: w\n  - [p, q]\n",
    "a: |\n  block\n  text\nb: >\n  folded\n",
    "a: ~\nb:\nc: null\nd: 'null'\n",
    "sync:\n  - source: docker.io/library/alpine:3.19\n    target: r.example/x:3.19\n",
    "a: 3.10\nb: 010\nc: yes\n",
    "a: b\n---\n",
    "a: b\tc\n",
    "a: ::x\nb: x::\n",
    "a: b\n\x85c: d\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_nodes_are_the_ones_strictyaml_composes(text: str) -> None:
    try:
        expected = tree(reference(text))
    except Exception:  # strictyaml refuses it: so must we
        with pytest.raises(ConfigError):
            compose(text, "t.yml")
        return
    assert tree(compose(text, "t.yml")) == expected


def test_a_generated_mirror_config_composes_as_strictyaml_does() -> None:
    text = regplan_config(shape(0.02), {"docker.io": "127.0.0.1:5000"})
    assert tree(compose(text, "t.yml")) == tree(reference(text))


def _count_strictyaml_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from strictyaml.ruamel.scanner import Scanner

    calls = [0]
    fetch = Scanner.fetch_more_tokens

    def counted(self: Any) -> Any:
        calls[0] += 1
        return fetch(self)

    monkeypatch.setattr(Scanner, "fetch_more_tokens", counted)
    return calls


def test_an_ordinary_config_is_composed_without_strictyamls_scanner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # libyaml composes it: strictyaml's pure-Python scanner was 80 % of a big config's load
    calls = _count_strictyaml_scans(monkeypatch)
    text = regplan_config(shape(0.02), {"docker.io": "127.0.0.1:5000"})
    config = load_bytes(text.encode(), path="r.yml", label="r.yml")
    assert len(config.sync) == 150
    assert calls == [0]


@pytest.mark.parametrize(
    "text",
    [
        "a: !!str b\n",  # a tag: refused, by strictyaml's parser and in its words
        "%YAML 1.2\n---\na: b\n",
        "a: b\tc\n",
        "a: [b\n",  # libyaml refuses it: strictyaml's parser says why
        "a: &x b\nc: &x d\n",  # an anchor defined twice: libyaml refuses, strictyaml reads it
    ],
)
def test_what_libyaml_may_read_otherwise_goes_through_strictyaml(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_strictyaml_scans(monkeypatch)
    try:
        got = tree(compose(text, "t.yml"))
    except ConfigError as e:
        assert calls[0] > 0
        with pytest.raises(ConfigError) as again:
            _compose_strictyaml(text, "t.yml")
        assert str(again.value) == str(e)
    else:
        assert calls[0] > 0
        assert got == tree(_compose_strictyaml(text, "t.yml"))


def test_tags_are_still_refused() -> None:
    with pytest.raises(ConfigError, match=r"t\.yml:2.*YAML tags such as !!str are not allowed"):
        compose("a: b\nc: !!python/object x\n", "t.yml")


def test_a_big_generated_config_loads_every_step_with_its_line() -> None:
    text = regplan_config(shape(0.2), {"docker.io": "127.0.0.1:5000"})  # 1,500 steps
    config = load_bytes(text.encode(), path="r1.yml", label="r1.yml")
    assert len(config.sync) == 1_500
    last = config.sync[-1]
    assert text.splitlines()[last.line - 1].strip() == f"- source: {last.source}"
    assert last.target == "ghcr.io/mirror/" + last.source


def test_each_reference_text_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # each step's source and target are checked, then compared; a generated config copies one
    # source to three targets: parsing was a fifth of a big config's load
    from regplan.refs import ImageRef

    parsed: list[str] = []
    parse = ImageRef.parse.__func__  # type: ignore[attr-defined]

    def counted(cls: type[ImageRef], text: str) -> ImageRef:
        parsed.append(text)
        return parse(cls, text)  # type: ignore[no-any-return]

    monkeypatch.setattr(ImageRef, "parse", classmethod(counted))
    text = regplan_config(shape(0.02), {"docker.io": "127.0.0.1:5000"})
    config = load_bytes(text.encode(), path="r.yml", label="r.yml")
    distinct = {s.source for s in config.sync} | {s.target for s in config.sync}
    assert sorted(parsed) == sorted(distinct)
