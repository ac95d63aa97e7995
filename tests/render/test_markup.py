"""Data in a plan is never markup: brackets, regexes and platforms print as they are, in the
text view and in Markdown (checked by rendering it as GitHub would, with markdown-it-py)."""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

from tests.regplan_cli import regplan, write_config

CONFIG = r"""
version: 1
sync:
  - source: ocidir://fixtures/example/source/app
    target: ocidir://demo-target/app
    type: repository
    tags:
      allow: ['[/a-z]+', '1\.[0-9]']
  - source: ocidir://fixtures/example/source/app
    target: ocidir://demo-target/app2
    type: repository
    tags:
      deny: ['.*-rc.*']
  - source: ocidir://fixtures/example/source/app:1.1
    target: ocidir://demo-target/arm:1.1
    type: image
    platform: linux/arm64
"""


def test_brackets_and_regexes_print_as_they_are(example: Path) -> None:
    write_config(example, CONFIG)
    plan = regplan("plan", "--explain", "-o", "plan.json", cwd=example)
    assert plan.code == 0, str(plan)
    assert "[linux/arm64]" in plan.stdout
    assert "[/a-z]+" in plan.stdout and r"1\.[0-9]" in plan.stdout
    assert 'denied by ".*-rc.*"' in plan.stdout, plan.stdout
    shown = regplan("show", "plan.json", cwd=example)
    assert shown.code == 0 and "internal error" not in shown.stderr, str(shown)
    assert "[linux/arm64]" in shown.stdout and "[/a-z]+" in shown.stdout


def _code_spans(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [
        child.content
        for token in tokens
        if token.children
        for child in token.children
        if child.type == "code_inline"
    ]


def test_markdown_explain_keeps_every_character(example: Path) -> None:
    write_config(example, CONFIG)
    result = regplan("plan", "--explain", "--format", "markdown", cwd=example)
    assert result.code == 0, str(result)
    spans = _code_spans(result.stdout)
    assert 'set 1: denied by ".*-rc.*"' in spans, spans
    assert 'set 1: not allowed by any of "[/a-z]+", "1\\.[0-9]"' in spans, spans
    assert any("[linux/arm64]" in s for s in spans), spans
    html = MarkdownIt("commonmark").enable("table").render(result.stdout)
    assert "<em>" not in html
