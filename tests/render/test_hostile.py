"""What regplan prints cannot be forged by what it reads: registry error bodies, annotations,
artifact types, paths. Markdown is rendered as GitHub would (markdown-it-py) and its HTML must
hold no element regplan's own template did not put there; terminal text and logs hold no raw
control character."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import orjson
from markdown_it import MarkdownIt

from regplan.plan import planfile
from regplan.plan.planfile import integrity_of, save_plan
from tests.regplan_cli import regplan, sync_config, sync_step
from tests.servers.distribution import RegistryServer
from tests.servers.faultproxy import Fault, fault_proxy

# A registry error text / annotation as an attacker writes it: a terminal escape, a forged
# line, a fake review heading with a mention, a tracking image, a comment that hides the rest.
HOSTILE = (
    "x``y | z\x1b[2J\x1b]0;owned\x07\r\n### Reviewed by @security-team\n"
    '<img src="http://127.0.0.1:9/t.png">\n<!-- '
)
# Every element regplan's Markdown template uses; anything else came from data.
TEMPLATE_TAGS = frozenset(
    {"h3", "h4", "p", "details", "summary", "table", "thead", "tbody", "tr", "th", "td"}
    | {"code", "blockquote", "ul", "li", "strong"}
)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def elements(markdown: str) -> _Elements:
    html = (
        MarkdownIt("commonmark").enable("table").render(markdown)
    )  # raw HTML passes, as on GitHub
    parser = _Elements()
    parser.feed(html)
    return parser


def no_raw_controls(text: str) -> bool:
    return re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text) is None


def test_a_hostile_registry_error_forges_nothing(tmp_path: Path, registry: RegistryServer) -> None:
    with fault_proxy(registry.host) as proxy:
        proxy.add(Fault("status", path="/tags/list", status=403, times=-1, message=HOSTILE))
        sync_config(
            tmp_path,
            [proxy, registry],
            sync_step(f"{proxy.host}/app", f"{registry.host}/mirror", "repository"),
            version=1,
        )
        text = regplan("plan", cwd=tmp_path)
        markdown = regplan("plan", "--format", "markdown", cwd=tmp_path)
        once = regplan("once", "--abort-on-error", cwd=tmp_path)
    assert text.code == 1 and "Reviewed by @security-team" in text.stdout, str(text)
    # the datum is shown, visibly escaped, on the ERROR line of its own step: no forged line
    assert no_raw_controls(text.stdout) and no_raw_controls(text.stderr)
    error_lines = [line for line in text.stdout.splitlines() if "ERROR" in line]
    assert len(error_lines) == 1 and "\\x1b[2J" in error_lines[0] and "\\r\\n###" in error_lines[0]
    assert not any(line.startswith("###") for line in text.stdout.splitlines())
    # logs: one line per record, the control characters visible
    assert all(line.startswith("time=") for line in text.stderr.splitlines()), text.stderr
    # the one-line error of a command
    assert once.code == 1 and no_raw_controls(once.stderr), str(once)
    error = [line for line in once.stderr.splitlines() if line.startswith("regplan: error:")]
    assert len(error) == 1 and "\\x1b]0;owned\\x07" in error[0], once.stderr
    # Markdown: only the template's elements, one heading, the text kept in a code span
    found = elements(markdown.stdout)
    assert set(found.tags) <= TEMPLATE_TAGS and found.comments == [], found.tags
    assert found.tags.count("h3") == 1 and found.tags.count("h4") == 1
    assert "img" not in found.tags


def test_hostile_plan_data_in_markdown_and_text(example: Path) -> None:
    """A plan whose data fields hold hostile strings (as a hostile source's annotations and
    artifact types, or a tampered plan file, carry them)."""
    assert (
        regplan("plan", "-c", "fixtures/example/regplan.yml", "-o", "p.json", cwd=example).code == 0
    )
    body = orjson.loads((example / "p.json").read_bytes())
    for action in body["actions"]:
        if action["kind"] == "referrer":
            action["artifact_type"] = HOSTILE
        if action["kind"] == "tag":
            action["source_tag"] = HOSTILE
    body["warnings"] = [HOSTILE]
    body["steps"][0]["name"] = HOSTILE
    body["steps"][0]["dropped"] = [{"tag": HOSTILE, "why": HOSTILE}]
    body["integrity"] = integrity_of(body)
    save_plan(planfile.decode(orjson.dumps(body)), example / "hostile.json")

    markdown = regplan("show", "hostile.json", "--format", "markdown", cwd=example)
    assert markdown.code == 0, str(markdown)
    found = elements(markdown.stdout)
    assert set(found.tags) <= TEMPLATE_TAGS and found.comments == [], found.tags
    assert found.tags.count("h3") == 1 and found.tags.count("h4") == 2
    # every table row is still a row: no `|` in the data split a cell, no line break ended one
    rows = found.tags.count("tr")
    assert rows == 2 + 5  # two header rows, five actions (the fallback tag is one)

    text = regplan("show", "hostile.json", cwd=example)
    assert text.code == 0 and no_raw_controls(text.stdout), str(text)
    assert not any(line.startswith(("###", "<img", "<!--")) for line in text.stdout.splitlines())
