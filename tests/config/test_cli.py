"""`regplan config validate` / `config show` as a user runs them: exit codes, file:line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
STEP = "sync:\n- source: alpine\n  target: localhost:5000/alpine\n  type: image\n"


def regplan(
    *args: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regplan.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        timeout=60,
    )


# (name, file content, expected "line:col: message" after the file name)
MALFORMED = [
    (
        "unknown key",
        STEP + "  fastcopy: true\n",
        '5:3: unknown key "fastcopy" in sync[0] (did you mean "fastCopy"?)',
    ),
    (
        "unknown top key",
        "snyc: []\n",
        '1:1: unknown key "snyc" in the top level (did you mean "sync"?)',
    ),
    (
        "unknown creds key",
        "creds:\n- registry: r.example.org\n  password: x\n" + STEP,
        '3:3: unknown key "password" in creds[0] (did you mean "pass"?)',
    ),
    (
        "invalid type",
        "sync:\n- source: a\n  target: localhost:5000/a\n  type: images\n",
        '4:9: sync[0]: invalid type "images" (use registry, repository or image)',
    ),
    (
        "missing source",
        "sync:\n- target: localhost:5000/a\n  type: image\n",
        '2:3: sync[0]: "source" is required',
    ),
    (
        "bad reference",
        "sync:\n- source: InvalidTestmissing:v1:garbage\n  target: localhost:5000/a\n  type: image\n",
        '2:11: sync[0].source: invalid reference "InvalidTestmissing:v1:garbage"',
    ),
    (
        "repository with tag",
        "sync:\n- source: alpine\n  target: localhost:5000/a:v1\n  type: repository\n",
        '3:11: sync[0].target: "localhost:5000/a:v1" must not include a tag or digest for type repository',
    ),
    (
        "registry source path",
        "sync:\n- source: registry.example.org/x\n  target: localhost:5000\n  type: registry\n",
        "2:11: sync[0].source: invalid reference",
    ),
    (
        "bad regex",
        STEP.replace("image", "repository").replace("alpine\n", "alpine\n", 1)
        + "  tags:\n    allow:\n    - latest\n    - 'v(1'\n",
        '8:7: sync[0].tags.allow[1]: invalid allow pattern "v(1": missing )',
    ),
    (
        "bad semver",
        STEP.replace("image", "repository") + "  tagSets:\n  - semverRange: ['>=x']\n",
        '6:19: sync[0].tagSets[0].semverRange[0]: invalid semver range ">=x"',
    ),
    (
        "six-field schedule",
        STEP + "  schedule: '0 15 3 * * *'\n",
        '5:13: sync[0].schedule: invalid schedule "0 15 3 * * *": 6 fields (with seconds) are not supported',
    ),
    (
        "duration without unit",
        STEP + "  interval: 60\n",
        '5:13: sync[0].interval: time: missing unit in duration "60" (did you mean "60s"?)',
    ),
    (
        "bad default duration",
        "defaults:\n  interval: 1d\n" + STEP,
        '2:13: defaults.interval: time: unknown unit "d" in duration "1d"',
    ),
    (
        "unknown tls",
        "creds:\n- registry: r.example.org\n  tls: maybe\n" + STEP,
        '3:8: creds[0].tls: unknown TLS value "maybe" (use enabled, insecure or disabled)',
    ),
    ("version 2", "version: 2\n" + STEP, "1:10: unsupported config version 2"),
    ("empty sync", "version: 1\nsync: []\n", "2:7: no sync steps"),
    (
        "template error",
        "sync:\n- source: alpine\n  target: 'localhost:5000/{{ .Sync.Nope }}'\n  type: image\n",
        "3:11: template: sync[0].target:1:19: executing at <.Sync.Nope>: can't evaluate field Nope in type regsync.ConfigSync",
    ),
    (
        "template syntax",
        STEP + "  backup: '{{ if }}'\n",
        "5:11: template: sync[0].backup:1:4: missing value for if",
    ),
    (
        "yaml tag",
        "sync:\n- source: !!python/object alpine\n  target: localhost:5000/a\n  type: image\n",
        "2:11: YAML tags such as !!str are not allowed",
    ),
    (
        "yaml str tag",
        "sync:\n- source: !!str alpine\n  target: localhost:5000/a\n  type: image\n",
        "2:11: YAML tags such as !!str are not allowed: every value is read as text already",
    ),
    (
        "bad indentation",
        "sync:\n  - source: alpine\n   target: localhost:5000/a\n    type: image\n",
        "3:4: bad indentation: this line does not line up with the entries of the block started at line 2",
    ),
    (
        "key outdented",
        "sync:\n  - source: alpine\n    target: localhost:5000/a\n  type: image\n",
        "4:3: bad indentation:",
    ),
    (
        "semver empty part",
        "sync:\n- source: r/a\n  target: r/b\n  type: repository\n  tags:\n    semverRange: ['>=1..2']\n",
        '6:19: sync[0].tags.semverRange[0]: invalid semver range ">=1..2": version "1..2": part 2 is empty',
    ),
    (
        "semver operator alone",
        "sync:\n- source: r/a\n  target: r/b\n  type: repository\n  tags:\n    semverRange: ['>=1.2 <']\n",
        '6:19: sync[0].tags.semverRange[0]: invalid semver range ">=1.2 <": "<" has no version after the operator',
    ),
    (
        "bad yaml",
        "sync:\n- source: [alpine\n  target: x\n",
        "3:9: while parsing a flow sequence expected ',' or ']', but got ':'",
    ),
    (
        "bad platform",
        STEP + "  platform: linux/amd64/v8/extra\n",
        '5:13: sync[0].platform: could not parse platform "linux/amd64/v8/extra"',
    ),
    ("duplicate key", STEP + "  type: repository\n", '5:3: duplicate key "type" (first at line 4)'),
    (
        "bad bool",
        STEP + "  referrers: maybe\n",
        '5:14: sync[0].referrers: expected true or false, found "maybe"',
    ),
    (
        "negative priority",
        "creds:\n- registry: r.example.org\n  priority: -1\n" + STEP,
        "3:13: creds[0].priority: must not be negative, found -1",
    ),
    ("undefined alias", "sync:\n- <<: *nope\n  source: a\n", "2:7: found undefined alias 'nope'"),
    (
        "fast alias conflict",
        STEP + "  fastCopy: true\n  fastCheck: false\n",
        "5:13: sync[0]: fastCopy and fastCheck disagree",
    ),
    (
        "list expected",
        STEP + "  mediaTypes: application/x\n",
        '5:15: sync[0].mediaTypes: expected a list of strings, found "application/x"',
    ),
    (
        "bad creds template",
        "creds:\n- registry: r.example.org\n  pass: '{{ file }}'\n" + STEP,
        "3:9: template: creds[0].pass:1:4: executing at <file>: wrong number of args for file: want 1 got 0",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "where_what"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_config(tmp_path: Path, name: str, content: str, where_what: str) -> None:
    cfg = tmp_path / "regsync.yml"
    cfg.write_text(content)
    result = regplan("config", "validate", "-c", str(cfg))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("regplan: error:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"regplan: error: {cfg}:{where_what}"), lines[0]


def test_at_least_fifteen_malformed_cases() -> None:
    assert len(MALFORMED) >= 15


def test_missing_file(tmp_path: Path) -> None:
    result = regplan("config", "validate", "-c", str(tmp_path / "nope.yml"))
    assert result.returncode == 1
    assert "config file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_ok() -> None:
    result = regplan("config", "validate", "-c", str(DATA / "config1.yml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{DATA / 'config1.yml'}: ok (3 sync steps)\n"


def test_validate_discovers_regsync_yml(tmp_path: Path) -> None:
    (tmp_path / "regsync.yml").write_text(STEP)
    result = regplan("config", "validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout == "regsync.yml: ok (1 sync step, 1 warning)\n"
    )  # no schedule: watch skips it


def test_validate_stdin() -> None:
    result = regplan("config", "validate", "-c", "-", stdin=STEP)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "<stdin>: ok (1 sync step, 1 warning)\n"


def test_show_redacts_secrets(tmp_path: Path) -> None:
    secret_file = tmp_path / "hub_token"
    secret_file.write_text("file-secret-content\n")
    cfg = tmp_path / "regsync.yml"
    cfg.write_text(
        "creds:\n"
        "- registry: registry.example.org\n"
        "  user: syncuser\n"
        "  pass: 'Pa$$w0rd'\n"
        "  token: very-secret-token\n"
        "  clientCert: cert\n"
        f"  clientKey: '{{{{ file \"{secret_file}\" }}}}'\n"
        "- registry: docker.io\n"
        "  user: hubuser\n"
        f"  pass: '{{{{ file \"{secret_file}\" }}}}'\n" + STEP
    )
    result = regplan("config", "show", "-c", str(cfg))
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for secret in ("Pa$$w0rd", "very-secret-token", "file-secret-content"):
        assert secret not in out
    assert out.count("<redacted>") == 4
    assert "user: syncuser" in result.stdout


def test_show_resolves() -> None:
    result = regplan("config", "show", "-c", str(DATA / "config1.yml"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "target: registry:5000/gcr/example/repo" in out
    assert "interval: 1h0m0s" in out
    assert "retry: 15m0s" in out
    assert 'backup: "bkup-{{.Ref.Tag}}"' in out
    assert '- "3.9"' in out
