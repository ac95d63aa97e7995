"""regplan in GitHub Actions: after a merge, download the plan that was reviewed on the pull
request that was merged — not the newest plan of any pull request.

    python3 .github/regplan_github.py fetch-plan plan.json

Follows merge commit -> its merged pull request -> the pull request's last commit -> this
workflow's successful pull_request run for that commit -> its `regplan-plan` artifact.
Reads the variables every Actions job has ($GITHUB_API_URL, $GITHUB_REPOSITORY, $GITHUB_SHA,
$GITHUB_RUN_ID) and $GITHUB_TOKEN (the job needs `actions: read` and `pull-requests: read`).
Standard library only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from typing import Any

ARTIFACT = "regplan-plan"
PLAN_FILE = "plan.json"


class Failure(Exception):
    """What went wrong, in one line for the job log."""


def merged_head(pulls: list[dict[str, Any]], sha: str) -> tuple[int, str]:
    """(number, head sha) of the pull request that `sha` merged."""
    for pull in pulls:
        if pull.get("merged_at"):
            return int(pull["number"]), str(pull["head"]["sha"])
    raise Failure(f"{sha} is not the merge of a pull request: no reviewed plan to apply")


def reviewed_run(runs: list[dict[str, Any]], number: int, head_sha: str) -> int:
    """The newest successful plan run of the pull request's last commit."""
    for run in runs:
        if run.get("head_sha") == head_sha and run.get("conclusion") == "success":
            return int(run["id"])
    raise Failure(
        f"no successful plan run for pull request #{number} at its last commit {head_sha}"
    )


def plan_artifact(artifacts: list[dict[str, Any]], run_id: int) -> int:
    for artifact in artifacts:
        if artifact.get("name") == ARTIFACT and not artifact.get("expired"):
            return int(artifact["id"])
    raise Failure(f"run {run_id} has no unexpired artifact {ARTIFACT!r}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


class GitHub:
    def __init__(self, api_url: str, repository: str, token: str) -> None:
        self.base = f"{api_url.rstrip('/')}/repos/{repository}"
        self.token = token
        self._no_redirect = urllib.request.build_opener(_NoRedirect)

    def _open(self, url: str, *, auth: bool, follow: bool = True) -> Any:
        req = urllib.request.Request(url)
        req.add_header("Accept", "application/vnd.github+json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        opener = urllib.request.build_opener() if follow else self._no_redirect
        try:
            return opener.open(req, timeout=60)
        except urllib.error.HTTPError as err:
            if not follow and err.code in (301, 302, 303, 307, 308):
                return err
            raise Failure(
                f"GET {urllib.parse.urlsplit(url).path}: HTTP {err.code} {err.reason}"
            ) from err
        except urllib.error.URLError as err:
            raise Failure(f"GET {urllib.parse.urlsplit(url).path}: {err.reason}") from err

    def json(self, path: str) -> Any:
        with self._open(f"{self.base}{path}", auth=True) as response:
            return json.loads(response.read())

    def artifact_zip(self, artifact_id: int) -> bytes:
        # The API answers with a redirect to storage, which must not get the token.
        response = self._open(
            f"{self.base}/actions/artifacts/{artifact_id}/zip", auth=True, follow=False
        )
        with response:
            location = response.headers.get("Location")
            if location is None:
                data: bytes = response.read()
                return data
        with self._open(location, auth=False) as stored:
            payload: bytes = stored.read()
            return payload


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise Failure(f"${name} is not set")
    return value


def fetch_plan(github: GitHub, out: str) -> str:
    sha = env("GITHUB_SHA")
    number, head_sha = merged_head(github.json(f"/commits/{sha}/pulls"), sha)
    workflow_id = github.json(f"/actions/runs/{env('GITHUB_RUN_ID')}")["workflow_id"]
    query = urllib.parse.urlencode(
        {"event": "pull_request", "status": "success", "head_sha": head_sha, "per_page": 100}
    )
    runs = github.json(f"/actions/workflows/{workflow_id}/runs?{query}")["workflow_runs"]
    run_id = reviewed_run(runs, number, head_sha)
    artifacts = github.json(f"/actions/runs/{run_id}/artifacts?per_page=100")["artifacts"]
    archive = github.artifact_zip(plan_artifact(artifacts, run_id))
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            plan = zipped.read(PLAN_FILE)
    except (zipfile.BadZipFile, KeyError) as err:
        raise Failure(f"artifact {ARTIFACT!r} of run {run_id} holds no {PLAN_FILE}") from err
    with open(out, "wb") as file:
        file.write(plan)
    return f"fetched {out} from run {run_id} (pull request #{number} at {head_sha})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="regplan_github.py", description="Fetch the plan reviewed on the merged pull request."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch-plan", help="download the merged pull request's plan")
    fetch_cmd.add_argument("out")
    args = parser.parse_args(argv)
    try:
        github = GitHub(
            os.environ.get("GITHUB_API_URL", "https://api.github.com"),
            env("GITHUB_REPOSITORY"),
            env("GITHUB_TOKEN"),
        )
        print(fetch_plan(github, args.out))
    except (Failure, OSError) as err:
        print(f"regplan_github.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
