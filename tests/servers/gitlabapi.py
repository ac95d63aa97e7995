"""The few GitLab REST API endpoints the documented GitLab CI helper uses, on 127.0.0.1.

One project; tests fill in merge requests, pipelines, jobs and artifacts, and read back the
notes that were posted. Requests without the right PRIVATE-TOKEN get 401, as on GitLab."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.servers.net import BackgroundHTTPServer


@dataclass
class GitLabProject:
    project_id: str = "42"
    token: str = "glpat-test"
    # commit sha -> merge requests GitLab associates with it (as /repository/commits/:sha/merge_requests)
    commit_merge_requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    mr_pipelines: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # newest first
    pipeline_jobs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    artifacts: dict[tuple[int, str], bytes] = field(default_factory=dict)  # (job id, path)
    notes: dict[int, list[str]] = field(default_factory=dict)  # merge request iid -> bodies


class GitLabAPI(BackgroundHTTPServer):
    def __init__(self, project: GitLabProject) -> None:
        self.project = project
        self.lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v4"

    def start(self) -> GitLabAPI:
        if self._httpd is None:
            self._listen(_handler_for(self), name="gitlab-api")
        return self

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) for one request; `path` is relative to the project."""
        p = self.project
        parts = path.strip("/").split("/")
        with self.lock:
            match method, parts:
                case "GET", ["repository", "commits", sha, "merge_requests"]:
                    return _json(p.commit_merge_requests.get(sha, []))
                case "GET", ["merge_requests", iid, "pipelines"]:
                    return _json(p.mr_pipelines.get(int(iid), []))
                case "GET", ["pipelines", pid, "jobs"]:
                    return _json(p.pipeline_jobs.get(int(pid), []))
                case "GET", ["jobs", job_id, "artifacts", *artifact]:
                    data = p.artifacts.get((int(job_id), "/".join(artifact)))
                    return (200, data) if data is not None else (404, b'{"message":"404"}')
                case "POST", ["merge_requests", iid, "notes"]:
                    notes = p.notes.setdefault(int(iid), [])
                    notes.append(json.loads(body)["body"])
                    return _json({"id": 1000 + len(notes)}, status=201)
        return 404, b'{"message":"404 Not Found"}'


def _json(value: Any, status: int = 200) -> tuple[int, bytes]:
    return status, json.dumps(value).encode()


def _handler_for(server: GitLabAPI) -> type[BaseHTTPRequestHandler]:
    prefix = f"/api/v4/projects/{server.project.project_id}/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = unquote(urlsplit(self.path).path)
            if self.headers.get("PRIVATE-TOKEN") != server.project.token:
                status, reply = 401, b'{"message":"401 Unauthorized"}'
            elif not path.startswith(prefix):
                status, reply = 404, b'{"message":"404 Project Not Found"}'
            else:
                status, reply = server.answer(method, path[len(prefix) :], body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
