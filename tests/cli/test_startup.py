"""Start-up: a command imports only what it uses (small no-op runs in CI loops are
start-up-bound). The modules are read from `python -X importtime`, not timed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import EXAMPLE
from tests.regplan_cli import REPO_ROOT
from tests.servers.distribution import RegistryServer

_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", re.MULTILINE)


def _imported(args: list[str], cwd: Path, *, modules: bool = False) -> set[str]:
    """Top-level packages a run of `regplan ARGS` imported (with `modules`, every module)."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "regplan.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert run.returncode in (0, 2), run.stderr[-2000:]
    names = _IMPORTED.findall(run.stderr)
    return set(names) if modules else {name.split(".")[0] for name in names}


def test_check_of_an_up_to_date_image_imports_no_pydantic_graph_or_terminal_ui(
    example: Path,
) -> None:
    apply = subprocess.run(
        [sys.executable, "-m", "regplan.cli", "once", "-c", EXAMPLE],
        cwd=example,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert apply.returncode == 0, apply.stderr
    imported = _imported(["check", "-c", EXAMPLE], example)
    assert "regplan" in imported and "yaml" in imported  # it did load the config
    # typer's pydantic coercion, the plan graph, rich, signing, strictyaml's pure-Python parser
    # (libyaml composes an ordinary config): none is needed here
    assert imported.isdisjoint({"pydantic", "networkx", "rich", "cryptography", "strictyaml"}), (
        imported
    )


def test_a_no_op_once_against_a_registry_loads_no_applier_layout_or_pruning_code(
    seeded_registry: RegistryServer, tmp_path: Path
) -> None:
    # the scheduled run that finds every target up to date: what it does not need is not loaded
    # (the applier and its progress display, the OCI Layout backend, pruning, plan rendering,
    # the connection pools httpx builds only for proxies)
    host = seeded_registry.host
    config = tmp_path / "c.yml"
    config.write_text(
        f"version: 1\ncreds:\n  - registry: {host}\n    tls: disabled\nsync:\n"
        f"  - source: {host}/testrepo\n    target: {host}/mirror/testrepo\n"
        "    type: repository\n    tags:\n      allow: [v1, v2]\n"
    )
    first = subprocess.run(
        [sys.executable, "-m", "regplan.cli", "once", "-c", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0 and "Apply complete: 2 image(s)" in first.stdout, first.stderr
    imported = _imported(["once", "-c", str(config)], tmp_path, modules=True)
    assert "regplan.registry.http" in imported and "regplan.apply.result" in imported
    unwanted = {
        "regplan.apply.applier",
        "regplan.apply.progress",
        "regplan.registry.ocidir",
        "regplan.plan.pruning",
        "regplan.plan.prune",
        "regplan.plan.render",
        "httpcore",
    }
    assert imported.isdisjoint(unwanted), imported & unwanted


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "-c", EXAMPLE, "-o", "p.plan"],  # --markdown-limit: an int with a minimum
        ["plan", "-c", EXAMPLE, "--markdown-limit", "2000", "--format", "markdown"],
        ["show", "p.plan", "--shards", "2"],
    ],
)
def test_plan_and_show_with_number_options_import_no_pydantic(
    example: Path, args: list[str]
) -> None:
    if args[0] == "show":  # needs a saved plan
        subprocess.run(
            [sys.executable, "-m", "regplan.cli", "plan", "-c", EXAMPLE, "-o", "p.plan"],
            cwd=example,
            check=True,
            capture_output=True,
            timeout=120,
        )
    imported = _imported(args, example)
    assert "regplan" in imported and "pydantic" not in imported, imported


def test_a_number_option_out_of_range_still_gets_typers_wording(example: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "regplan.cli", "plan", "-c", EXAMPLE, "--markdown-limit", "5"],
        cwd=example,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "--markdown-limit" in run.stderr and "greater than or equal to 1000" in run.stderr


@pytest.mark.parametrize("args", [["--help"], ["plan", "--help"], ["version"]])
def test_help_imports_no_config_or_registry_code(tmp_path: Path, args: list[str]) -> None:
    imported = _imported(args, tmp_path)
    assert imported.isdisjoint({"pydantic", "strictyaml", "httpx", "networkx", "rich"}), imported


def _modules_after(code: str, cwd: Path) -> set[str]:
    """Top-level packages (and regplan's own modules) in sys.modules after running `code`."""
    script = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    names = run.stdout.split()
    return {n.split(".")[0] for n in names} | {n for n in names if n.startswith("regplan.")}


def test_the_registry_check_path_imports_no_cli_libraries_or_template_engine(
    tmp_path: Path,
) -> None:
    # what `regplan check` of a registry image imports: the command line, a config without
    # templates, the planner and the HTTP backend. httpx imports its own command-line client
    # (click, rich, pygments) unless regplan defers it; the Go template engine waits for a
    # template; the plan graph and strictyaml's parser are not needed.
    config = tmp_path / "c.yml"
    config.write_text(
        "version: 1\nsync:\n"
        "  - source: registry.example/a/b:1\n    target: mirror.example/a/b:1\n    type: image\n"
    )
    imported = _modules_after(
        "import regplan.cli, regplan.commands, regplan.plan.planner, regplan.registry.http\n"
        f"from regplan.config import load_config\nload_config({str(config)!r})\n"
        "import httpx\nassert httpx.Client",
        tmp_path,
    )
    assert "httpx" in imported and "yaml" in imported
    unwanted = {"click", "pygments", "rich", "networkx", "strictyaml", "regplan.gotemplate"}
    assert imported.isdisjoint(unwanted), imported & unwanted
