"""Data made safe for the medium it is printed in: a terminal, a log line, Markdown.

Tag names, annotations, artifact types, repository paths and registry error bodies come from
outside. Printed raw they can forge output: an ESC sequence or a CR rewrites what a terminal
shows, a newline forges a second log or error line, and Markdown or HTML in a PR comment adds
headings, images or an `<!--` that hides the rows after it. Every datum regplan prints goes
through one of these functions; regplan's own words and layout are the only markup.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; Unicode line/paragraph separators and the bidirectional
# overrides and isolates (they reorder what a reader sees, "Trojan Source").
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _show(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: str) -> str:
    """One line for a terminal or a plain-text file: control characters shown as `\\x1b`,
    `\\n`, ... so a datum can neither move the cursor nor start a line of its own."""
    return _INVISIBLE.sub(_show, text)


def log_value(text: str) -> str:
    """A value in a `key=value` log line: visible controls, quoted when it holds a space, `=`
    or a quote, so one field can never pass for another field or another line."""
    visible = terminal(text)
    if visible == "" or any(c in visible for c in ' ="'):
        return '"' + visible.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return visible


# ASCII punctuation: CommonMark lets a backslash escape each of these, and an escaped one is
# always literal text (never emphasis, a link, a heading, a table cell edge or HTML).
_MD_PUNCT = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def markdown_text(text: str) -> str:
    """A datum inside Markdown prose: every punctuation character escaped, so it reads exactly
    as it is (`.*-rc.*`, `\\d`) and nothing in it is markup. `@` is escaped too: no mentions."""
    return _MD_PUNCT.sub(r"\\\1", terminal(text))


def markdown_code(text: str, *, in_table: bool = False) -> str:
    """A datum as a Markdown code span: literal by construction (no emphasis, HTML, comment
    or mention inside a code span), with a backtick fence longer than any run of backticks
    in the datum. In a table cell `|` still ends the cell, so it is escaped there (GFM strips
    that backslash before the code span is read)."""
    value = terminal(text)
    if in_table:
        value = value.replace("|", "\\|")
    if not value:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    if value.startswith(("`", " ")) or value.endswith(("`", " ")):
        value = f" {value} "  # CommonMark strips one space each side; a backtick needs room
    return f"{fence}{value}{fence}"
