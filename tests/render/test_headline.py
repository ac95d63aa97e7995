"""A plan that could not compare anything says so: a registry down, wrong credentials."""

from __future__ import annotations

from pathlib import Path

from tests.regplan_cli import regplan, write_config
from tests.servers.distribution import RegistryServer
from tests.servers.net import free_port


def test_failed_planning_is_not_headlined_no_changes(
    tmp_path: Path, auth_registry: RegistryServer, registry: RegistryServer
) -> None:
    down = f"127.0.0.1:{free_port()}"  # nothing listens here
    write_config(
        tmp_path,
        f"""
        version: 1
        creds:
          - registry: {auth_registry.host}
            tls: disabled
            user: {auth_registry.user}
            pass: wrong-password
          - registry: {down}
            tls: disabled
          - registry: {registry.host}
            tls: disabled
        sync:
          - source: {auth_registry.host}/app:1.0
            target: {registry.host}/app:1.0
            type: image
          - source: {down}/app
            target: {registry.host}/other
            type: repository
        """,
    )
    text = regplan("plan", cwd=tmp_path)
    assert text.code == 1 and text.stdout, str(text)
    last = text.stdout.splitlines()[-1]
    assert last == "Planning failed for 2 of 2 step(s) (2 error(s)): nothing could be compared."
    assert "No changes" not in text.stdout and "0 to sync" not in text.stdout
    assert text.stdout.count("planning failed: nothing could be compared") == 2
    assert "manifest head: unauthorized [http 401]" in text.stdout  # the answer, intact
    markdown = regplan("plan", "--format", "markdown", cwd=tmp_path)
    assert markdown.stdout.startswith(
        "### regplan plan: Planning failed for 2 of 2 step(s) (2 error(s)): nothing could be compared."
    ), markdown.stdout
    assert "No changes" not in markdown.stdout and "[!CAUTION]" in markdown.stdout
    missing = regplan("plan", "--missing", cwd=tmp_path)
    assert missing.stdout.splitlines()[-1] == last and "No changes" not in missing.stdout
