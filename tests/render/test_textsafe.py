"""The escaping functions, table-driven; Markdown checked by rendering it (markdown-it-py)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from regplan import textsafe

MD = MarkdownIt("commonmark").enable("table")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain tag-1.0_x", "plain tag-1.0_x"),
        ("a\x1b[31mred", "a\\x1b[31mred"),
        ("line\r\nforged", "line\\r\\nforged"),
        ("tab\there", "tab\\there"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1\x9bcsi", "c1\\x9bcsi"),
        ("rtl\u202eoverride", "rtl\\u202eoverride"),
        ("sep\u2028line", "sep\\u2028line"),
        ("[linux/arm64] [/a-z]+ \\d", "[linux/arm64] [/a-z]+ \\d"),
        ("ünïcödé", "ünïcödé"),
    ],
)
def test_terminal_shows_controls_visibly(raw: str, shown: str) -> None:
    assert textsafe.terminal(raw) == shown


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("plain", "plain"),
        ("", '""'),
        ("two words", '"two words"'),
        ('a="b"', '"a=\\"b\\""'),
        ("x\nlevel=ERROR msg=forged", '"x\\\\nlevel=ERROR msg=forged"'),
    ],
)
def test_log_value(raw: str, field: str) -> None:
    assert textsafe.log_value(raw) == field


@pytest.mark.parametrize(
    "raw",
    [
        "plain",
        ".*-rc.*",
        "\\d+",
        "a`b",
        "``",
        "`start",
        "end`",
        " padded ",
        "<img src=x>",
        "<!-- hidden",
        "@team **bold** _it_",
        "a | b",
        "x\n### heading",
    ],
)
def test_markdown_code_reads_back_exactly(raw: str) -> None:
    span = textsafe.markdown_code(raw)
    tokens = MD.parseInline(span)[0].children or []
    assert [t.type for t in tokens] == ["code_inline"], span
    assert tokens[0].content == textsafe.terminal(raw)


@pytest.mark.parametrize("raw", ["a | b", "|", "x`|`y", "<!--|"])
def test_markdown_code_in_a_table_cell_stays_one_cell(raw: str) -> None:
    table = f"| a | b |\n|---|---|\n| {textsafe.markdown_code(raw, in_table=True)} | z |\n"
    html = MD.render(table)
    assert html.count("<td>") == 2 and "<td>z</td>" in html, html


@pytest.mark.parametrize(
    "raw", [".*-rc.*", "\\d", "# not a heading", "<b>x</b>", "[link](http://x)", "@team", "a|b"]
)
def test_markdown_text_is_literal(raw: str) -> None:
    html = MD.render(textsafe.markdown_text(raw))
    assert html.startswith("<p>") and html.count("<") == 2, html  # <p> and </p> only
