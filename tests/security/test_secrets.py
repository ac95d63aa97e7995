"""No secret reaches stdout, stderr, plan files, renders or reports — at `-v trace`.

Four kinds of secret are in play at once:
- a password, read by a `file` template (`pass: '{{ file "..." }}'`), for an htpasswd source;
- a docker config.json `auth` entry (base64 user:password) for a token-auth target;
- the bearer tokens (JWTs) the target's token server issues;
- the Basic `Authorization` values built from both passwords.
Every command runs: config validate/show, plan (three formats, -o), show (three formats),
check, apply with --report, once with --report, and watch (initial pass, --plan-dir).
The test also checks that the secrets were really used (tokens issued, Basic auth accepted,
trace lines with redacted Authorization headers printed), so it cannot pass vacuously.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.regplan_cli import Result, regplan
from tests.reliability.images import make_images, push_images
from tests.servers.distribution import RegistryServer
from tests.servers.tokenserver import TokenServer

pytestmark = pytest.mark.integration

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config_text(src: RegistryServer, tgt: RegistryServer, pass_file: Path, repo: str,
                extra: str = "") -> str:  # fmt: skip
    return f"""\
version: 1
creds:
  - registry: {src.host}
    tls: disabled
    user: {src.user}
    pass: '{{{{ file "{pass_file}" }}}}'
  - registry: {tgt.host}
    tls: disabled
defaults:
  parallel: 2
sync:
  - source: {src.host}/{repo}
    target: {tgt.host}/{repo}
    type: repository
{extra}"""


def run_watch(config: Path, work: Path, env: dict[str, str], plan_dir: Path) -> Result:
    """`watch --listen ''` until its initial pass has applied, then SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "regplan.cli", "watch", "-c", str(config), "-v", "trace",
         "--listen", "", "--plan-dir", str(plan_dir), "--grace-period", "5s"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            reports = list(plan_dir.glob("*report*"))
            if reports and all(p.stat().st_size > 0 for p in reports):
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(0.3)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return Result(proc.returncode, out, err)


def test_no_secret_in_any_output(
    auth_registry: RegistryServer,
    token_registry: RegistryServer,
    token_server: TokenServer,
    tmp_path: Path,
) -> None:
    src, tgt = auth_registry, token_registry
    for repo, seed in (("once", 1), ("plan", 2), ("watch", 3)):
        images = make_images(tmp_path / f"layout-{repo}", seed=seed, images=2, layers=1)
        push_images(images, src, repo)
    work = tmp_path / "work"
    work.mkdir()
    pass_file = work / "source-login.txt"
    pass_file.write_text(src.password + "\n")
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(
        json.dumps({"auths": {tgt.host: {"auth": b64(f"{tgt.user}:{tgt.password}")}}})
    )
    secrets = {
        "source password": src.password,
        "source basic": b64(f"{src.user}:{src.password}"),
        "target password": tgt.password,
        "target basic": b64(f"{tgt.user}:{tgt.password}"),
    }
    env = {"DOCKER_CONFIG": str(docker_dir), "HOME": str(work)}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    full_env.update(env)

    configs = {repo: work / f"{repo}.yml" for repo in ("once", "plan", "watch")}
    for repo, path in configs.items():
        extra = "    interval: 1h\n" if repo == "watch" else ""
        path.write_text(config_text(src, tgt, pass_file, repo, extra))
    plan = work / "plan.json"
    runs: dict[str, Result] = {}

    def run(name: str, *args: str) -> Result:
        result = regplan(*args, "-v", "trace", cwd=work, env=env)
        runs[name] = result
        assert "Traceback" not in result.stderr, f"{name}\n{result}"
        return result

    cfg = str(configs["plan"])
    assert run("config validate", "config", "validate", "-c", cfg).code == 0
    assert run("config show", "config", "show", "-c", cfg).code == 0
    assert run("plan -o", "plan", "-c", cfg, "-o", str(plan)).code == 0
    assert run("plan json", "plan", "-c", cfg, "--format", "json").code == 0
    assert run("plan markdown", "plan", "-c", cfg, "--format", "markdown").code == 0
    for fmt in ("text", "json", "markdown"):
        assert run(f"show {fmt}", "show", str(plan), "--format", fmt).code == 0
    assert run("check", "check", "-c", cfg).code == 0
    applied = run("apply", "apply", str(plan), "--report", str(work / "apply-report.json"))
    assert applied.code == 0, str(applied)
    once = run("once", "once", "-c", str(configs["once"]), "--report", str(work / "once.json"))
    assert once.code == 0, str(once)
    plan_dir = work / "watch-plans"
    runs["watch"] = run_watch(configs["watch"], work, full_env, plan_dir)
    assert "Traceback" not in runs["watch"].stderr, str(runs["watch"])

    # the secrets were used: the copies happened with both kinds of auth
    for repo in ("once", "plan"):
        assert any(e.method == "PUT" and e.repo == repo for e in tgt.requests()), repo
    # the source refuses anonymous reads: blobs answered 200 mean the file-template password
    assert any(e.kind == "blob" and e.status == 200 for e in src.requests()), "no Basic auth"
    assert token_server.requests(), "no bearer token was issued"
    assert any(p.suffix == ".json" for p in plan_dir.iterdir()), "watch wrote no plan or report"

    outputs = {f"{name} {stream}": getattr(r, stream) for name, r in runs.items()
               for stream in ("stdout", "stderr")}  # fmt: skip
    for path in [plan, work / "apply-report.json", work / "once.json", *plan_dir.rglob("*")]:
        if path.is_file():
            outputs[str(path)] = path.read_text(errors="replace")
    leaks = [
        f"{what} in {where}"
        for where, text in outputs.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    leaks += [f"a JWT in {where}" for where, text in outputs.items() if JWT.search(text)]
    assert leaks == []
    trace = runs["apply"].stderr
    assert "reg http request" in trace and re.search(r"[Aa]uthorization=?\W*\[redacted\]", trace)
