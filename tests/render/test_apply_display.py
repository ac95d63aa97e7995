"""What apply shows: on a terminal (a pty, read back through a terminal emulator) log lines sit
above the live bars, whole, and the total reaches 100 % when blobs are mounted; off a terminal
each image's result is a line on stdout as it lands."""

from __future__ import annotations

import re
from pathlib import Path

from tests.regplan_cli import regplan, write_config
from tests.render.terminal import run_on_terminal, screen_of
from tests.servers.distribution import RegistryServer


def test_logs_above_the_bars_and_the_total_reaches_100_percent(
    tmp_path: Path, registry: RegistryServer, example: Path
) -> None:
    # the same image into two repositories of one registry: the second one's blobs are mounted
    write_config(
        example,
        f"""
        version: 1
        creds:
          - registry: {registry.host}
            tls: disabled
        sync:
          - source: ocidir://fixtures/example/source/app:1.0
            target: {registry.host}/first:1.0
            type: image
          - source: ocidir://fixtures/example/source/app:1.0
            target: {registry.host}/second:1.0
            type: image
        """,
    )
    assert regplan("plan", "-o", "plan.json", cwd=example).code == 0
    code, output = run_on_terminal("apply", "plan.json", cwd=example)
    screen = screen_of(output)
    text = "\n".join(screen)
    assert code == 0, text
    logs = [i for i, line in enumerate(screen) if "msg=" in line]
    assert logs, text
    for i in logs:  # each log line whole, on a line of its own, no bar drawn into it
        assert re.match(r"^time=\S+ level=\w+ msg=", screen[i]) and "━" not in screen[i], screen[i]
    copies = [i for i in logs if 'msg="Copy layer"' in screen[i]]
    totals = [i for i, line in enumerate(screen) if line.startswith("total")]
    assert copies and len(totals) == 1 and max(copies) < totals[0], text
    assert "100%" in screen[totals[0]], screen[totals[0]]
    assert re.search(r"mounted=[1-9]", text), text  # the case that stopped at 50 %
    created = [line for line in screen if re.match(r"^\S+/(first|second):1\.0: created ", line)]
    assert len(created) == 2, text


def test_each_image_result_is_a_line_on_stdout_off_a_terminal(example: Path) -> None:
    assert (
        regplan("plan", "-c", "fixtures/example/regplan.yml", "-o", "p.json", cwd=example).code == 0
    )
    applied = regplan("apply", "p.json", cwd=example)
    assert applied.code == 0, str(applied)
    lines = applied.stdout.splitlines()
    # the referrers fallback tag is a planned digest tag: tags, digest tags and backups count
    assert lines[-1].startswith("Apply complete: 4 image(s)")
    results = sorted(lines[:-1])
    assert len(results) == 5, lines
    assert re.match(
        r"^ocidir://demo-target/app:1\.0: created \(sha256:[0-9a-f]{12}, \d+\.\ds\)$", results[0]
    )
    assert results[1].startswith("ocidir://demo-target/app:1.1: created (sha256:")
    assert results[2].startswith("ocidir://demo-target/tools: referrer pushed (sha256:")
    assert results[3].startswith("ocidir://demo-target/tools:latest: created (sha256:")
    assert results[4].startswith("ocidir://demo-target/tools:sha256-")
    assert ": digest tag pushed (sha256:" in results[4]
    again = regplan("apply", "p.json", cwd=example)
    assert (
        again.code == 0 and "ocidir://demo-target/app:1.0: already there (sha256:" in again.stdout
    )
