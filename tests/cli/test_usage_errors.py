"""User mistakes on the command line: exit 2, one line naming the option, nothing done.

Output paths and option values are checked before any registry is asked, so a typo does not
surface only after a full plan (or after an apply, losing its report)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.cli.conftest import EXAMPLE
from tests.regplan_cli import regplan, write_config
from tests.servers.distribution import RegistryServer


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "internal error" not in lines[0] and "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("value", "hint"),
    [("1d", "24h for 1d"), ("24", "a number needs a unit, e.g. 24h"), ("soon", "like 2h")],
)
def test_max_age_typo_is_a_usage_error(example: Path, value: str, hint: str) -> None:
    assert regplan("plan", "-c", EXAMPLE, "-o", "plan.json", cwd=example).code == 0
    result = regplan("apply", "plan.json", "--max-age", value, cwd=example)
    assert result.code == 2, str(result)
    line = one_line(result.stderr)
    assert f"invalid --max-age '{value}'" in line and hint in line
    assert not (example / "demo-target").exists()


def test_plan_out_into_a_missing_directory_fails_before_any_request(
    tmp_path: Path, registry: RegistryServer
) -> None:
    config = write_config(
        tmp_path,
        f"""
        creds:
          - registry: {registry.host}
            tls: disabled
        sync:
          - source: {registry.host}/app
            target: {registry.host}/mirror
            type: repository
        """,
    )
    registry.clear_requests()
    result = regplan("plan", "-c", str(config), "-o", "no/such/dir/plan.json", cwd=tmp_path)
    assert result.code == 2, str(result)
    assert "-o no/such/dir/plan.json: directory" in one_line(result.stderr)
    assert "does not exist" in result.stderr
    assert registry.requests() == []  # refused before the registry was asked anything


def test_plan_out_onto_a_directory(example: Path) -> None:
    (example / "plans").mkdir()
    result = regplan("plan", "-c", EXAMPLE, "-o", "plans", cwd=example)
    assert result.code == 2 and "is a directory" in one_line(result.stderr)


@pytest.mark.parametrize("command", ["apply", "once"])
def test_report_to_a_bad_path_refuses_before_applying(example: Path, command: str) -> None:
    if command == "apply":
        assert regplan("plan", "-c", EXAMPLE, "-o", "plan.json", cwd=example).code == 0
        args = ["apply", "plan.json"]
    else:
        args = ["once", "-c", EXAMPLE]
    result = regplan(*args, "--report", "missing/report.json", cwd=example)
    assert result.code == 2, str(result)
    assert "--report missing/report.json: directory" in one_line(result.stderr)
    assert not (example / "demo-target").exists()  # nothing was applied


def test_report_is_written_when_its_path_is_good(example: Path) -> None:
    assert regplan("plan", "-c", EXAMPLE, "-o", "plan.json", cwd=example).code == 0
    result = regplan("apply", "plan.json", "--report", "report.json", cwd=example)
    assert result.code == 0, str(result)
    assert orjson.loads((example / "report.json").read_bytes())


def test_unknown_format_is_one_plain_line(example: Path) -> None:
    result = regplan("plan", "-c", EXAMPLE, "--format", "yaml", cwd=example)
    assert result.code == 2
    assert one_line(result.stderr) == (
        "regplan: error: invalid --format 'yaml': choose text, json or markdown"
    )
    shown = regplan("show", "plan.json", "--format", "yaml", cwd=example)
    assert shown.code == 2 and "choose text, json or markdown" in one_line(shown.stderr)
    check = regplan("check", "-c", EXAMPLE, "--format", "markdown", cwd=example)
    assert check.code == 2 and "choose text or json" in one_line(check.stderr)


def test_unknown_option_and_command_are_one_line() -> None:
    option = regplan("plan", "--frmat", "json")
    assert option.code == 2
    assert one_line(option.stderr).startswith("regplan plan: error: No such option: --frmat")
    assert "(see regplan plan --help)" in option.stderr
    command = regplan("bogus")
    assert command.code == 2 and "No such command 'bogus'" in one_line(command.stderr)


@pytest.mark.parametrize("args", [["show", "plan.json"], ["version"]])
def test_commands_that_read_no_config_refuse_c(example: Path, args: list[str]) -> None:
    after = regplan(*args, "-c", EXAMPLE, cwd=example)
    assert after.code == 2 and "No such option: -c" in one_line(after.stderr)
    before = regplan("-c", EXAMPLE, *args, cwd=example)
    assert before.code == 2
    assert one_line(before.stderr) == f"regplan: error: {args[0]} reads no config file: drop -c"


def test_logopt_json_makes_the_final_error_a_json_record(tmp_path: Path) -> None:
    result = regplan("--logopt", "json", "plan", "-c", str(tmp_path / "nope.yml"))
    assert result.code == 1
    records = [orjson.loads(line) for line in result.stderr.splitlines()]
    assert records[-1]["level"] == "ERROR"
    assert "config file not found" in records[-1]["msg"]


def test_bad_parallel_is_a_usage_error(example: Path) -> None:
    assert regplan("plan", "-c", EXAMPLE, "-o", "plan.json", cwd=example).code == 0
    result = regplan("apply", "plan.json", "--parallel", "0", cwd=example)
    assert result.code == 2 and "invalid --parallel 0" in one_line(result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["--logopt", "json", "plan", "--frmat", "x"],
        ["plan", "--logopt", "json", "--format", "x"],
        ["--logopt=json", "apply", "p.json", "--max-age", "1d"],
    ],
)
def test_logopt_json_makes_usage_errors_json_records(args: list[str]) -> None:
    result = regplan(*args)
    assert result.code == 2
    (line,) = result.stderr.splitlines()
    record = orjson.loads(line)
    assert record["level"] == "ERROR" and ("--frmat" in record["msg"] or "invalid" in record["msg"])


def test_a_report_that_cannot_be_written_after_apply_says_so(example: Path) -> None:
    # a dangling symlink passes the up-front check (its directory is writable) and fails
    # only when the report is written, as a disk that fills up during the apply would
    assert regplan("plan", "-c", EXAMPLE, "-o", "plan.json", cwd=example).code == 0
    (example / "report.json").symlink_to(example / "gone" / "report.json")
    result = regplan("apply", "plan.json", "--report", "report.json", cwd=example)
    assert result.code == 1, str(result)
    assert result.stderr.splitlines()[-1] == (
        "regplan: error: cannot write --report report.json: No such file or directory "
        "(the apply itself succeeded, see the line above)"
    )
    assert "Apply complete" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-v", "loud", "version"], "unable to parse verbosity loud (use trace, debug,"),
        (["version", "--logopt", "xml"], 'unknown --logopt "xml"'),
    ],
)
def test_bad_global_option_values_are_usage_errors(args: list[str], message: str) -> None:
    result = regplan(*args)
    assert result.code == 2 and message in one_line(result.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "9090"], 'invalid --listen "9090": expected HOST:PORT'),
        (["--grace-period", "30"], "invalid --grace-period '30': a number needs a unit"),
    ],
)
def test_watch_option_typos_are_usage_errors(example: Path, args: list[str], message: str) -> None:
    result = regplan("watch", "-c", EXAMPLE, *args, cwd=example, timeout=30)
    assert result.code == 2 and message in one_line(result.stderr)
