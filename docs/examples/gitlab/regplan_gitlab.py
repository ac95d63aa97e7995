"""regplan in GitLab CI: post the plan on the merge request, and on the default branch fetch the
plan that was reviewed on the merge request that was merged.

    python3 ci/regplan_gitlab.py note plan.md             # post plan.md as a merge request note
    python3 ci/regplan_gitlab.py note --failed plan.log   # post why planning failed instead
    python3 ci/regplan_gitlab.py fetch-plan plan.json     # after the merge: the reviewed plan

Reads GitLab's predefined CI variables and $GITLAB_TOKEN (a project access token with the `api`
scope). Standard library only; runs on the Python of the python:3.11-slim image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

FAILED_LOG_LINES = 40


class Failure(Exception):
    """What went wrong, in one line for the job log."""


def failure_body(log: str, lines: int = FAILED_LOG_LINES) -> str:
    """The note posted when `regplan plan` failed: the end of its output, as a code block."""
    tail = "\n".join(log.rstrip("\n").splitlines()[-lines:]).replace("```", "'''")
    return f"### regplan plan failed\n\n```\n{tail}\n```\n"


def merged_request(merge_requests: list[dict[str, Any]], sha: str) -> dict[str, Any]:
    merged = [mr for mr in merge_requests if mr.get("state") == "merged"]
    if not merged:
        raise Failure(f"commit {sha} is not the merge of a merge request: no reviewed plan")
    return merged[0]


def reviewed_pipeline(pipelines: list[dict[str, Any]], head_sha: str, iid: int) -> dict[str, Any]:
    """The newest successful pipeline of the merge request's last commit (GitLab lists newest
    first): the plan reviewed there is the one to apply, not the newest plan of any request."""
    for pipeline in pipelines:
        if pipeline.get("sha") == head_sha and pipeline.get("status") == "success":
            return pipeline
    raise Failure(f"no successful pipeline for merge request !{iid} at its last commit {head_sha}")


def plan_job(jobs: list[dict[str, Any]], name: str, pipeline_id: int) -> dict[str, Any]:
    for job in jobs:
        if job.get("name") == name and job.get("status") == "success":
            return job
    raise Failure(f"pipeline {pipeline_id} has no successful job named {name!r}")


class GitLab:
    def __init__(self, api_url: str, project: str, token: str) -> None:
        self.base = f"{api_url.rstrip('/')}/projects/{urllib.parse.quote(project, safe='')}"
        self.token = token

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        req.add_header("PRIVATE-TOKEN", self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                payload: bytes = response.read()
                return payload
        except urllib.error.HTTPError as err:
            raise Failure(f"{method} {path}: HTTP {err.code} {err.reason}") from err
        except urllib.error.URLError as err:
            raise Failure(f"{method} {path}: {err.reason}") from err

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return json.loads(self.request(method, path, body))


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise Failure(f"${name} is not set")
    return value


def note(gitlab: GitLab, path: str, failed: bool) -> str:
    iid = env("CI_MERGE_REQUEST_IID")
    with open(path, encoding="utf-8") as file:
        text = file.read()
    body = failure_body(text) if failed else text
    created = gitlab.json("POST", f"/merge_requests/{iid}/notes", {"body": body})
    return f"posted note {created['id']} on merge request !{iid}"


def fetch_plan(gitlab: GitLab, out: str, job_name: str) -> str:
    sha = env("CI_COMMIT_SHA")
    mr = merged_request(gitlab.json("GET", f"/repository/commits/{sha}/merge_requests"), sha)
    iid, head_sha = mr["iid"], mr["sha"]
    pipelines = gitlab.json("GET", f"/merge_requests/{iid}/pipelines?per_page=100")
    pipeline = reviewed_pipeline(pipelines, head_sha, iid)
    jobs = gitlab.json("GET", f"/pipelines/{pipeline['id']}/jobs?scope[]=success&per_page=100")
    job = plan_job(jobs, job_name, pipeline["id"])
    plan = gitlab.request("GET", f"/jobs/{job['id']}/artifacts/plan.json")
    with open(out, "wb") as file:
        file.write(plan)
    return (
        f"fetched {out} from job {job['id']} (pipeline {pipeline['id']}, "
        f"merge request !{iid} at {head_sha})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="regplan_gitlab.py",
        description="Post regplan plans on merge requests; fetch the reviewed plan.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    note_cmd = commands.add_parser("note", help="post a file as a merge request note")
    note_cmd.add_argument("file")
    note_cmd.add_argument("--failed", action="store_true", help="the file is plan's error output")
    fetch_cmd = commands.add_parser("fetch-plan", help="download the merged request's plan")
    fetch_cmd.add_argument("out")
    fetch_cmd.add_argument("--job", default="plan", help="the plan job's name (default: plan)")
    args = parser.parse_args(argv)
    try:
        gitlab = GitLab(env("CI_API_V4_URL"), env("CI_PROJECT_ID"), env("GITLAB_TOKEN"))
        if args.command == "note":
            print(note(gitlab, args.file, args.failed))
        else:
            print(fetch_plan(gitlab, args.out, args.job))
    except (Failure, OSError) as err:
        print(f"regplan_gitlab.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
