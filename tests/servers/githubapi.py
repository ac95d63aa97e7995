"""The few GitHub REST API endpoints the documented GitHub Actions helper uses, on 127.0.0.1.

One repository; tests fill in pull requests, workflow runs and artifacts. An artifact download
answers 302 to a storage path on the same server which, like GitHub's storage, refuses a
request that carries the API token (400). Requests to the API without the token get 401."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers.net import BackgroundHTTPServer


@dataclass
class GitHubRepository:
    name: str = "owner/mirror"
    token: str = "ghs_test"
    commit_pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    run_workflow: dict[int, int] = field(default_factory=dict)  # run id -> workflow id
    workflow_runs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # newest first
    run_artifacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    artifact_zips: dict[int, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


class GitHubAPI(BackgroundHTTPServer):
    def __init__(self, repository: GitHubRepository) -> None:
        self.repository = repository
        self.lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return self.url

    def start(self) -> GitHubAPI:
        if self._httpd is None:
            self._listen(_handler_for(self), name="github-api")
        return self

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, str | None]:
        """(status, body, Location) for a GET of `path` relative to the repository."""
        r = self.repository
        with self.lock:
            match path.strip("/").split("/"):
                case ["commits", sha, "pulls"]:
                    return _json(r.commit_pulls.get(sha, []))
                case ["actions", "runs", run_id]:
                    if int(run_id) in r.run_workflow:
                        return _json(
                            {"id": int(run_id), "workflow_id": r.run_workflow[int(run_id)]}
                        )
                case ["actions", "workflows", workflow_id, "runs"]:
                    runs = [
                        run
                        for run in r.workflow_runs.get(int(workflow_id), [])
                        if all(
                            str(run.get(key)) == query[param][0]
                            for param, key in (
                                ("event", "event"),
                                ("head_sha", "head_sha"),
                                ("status", "conclusion"),
                            )
                            if param in query
                        )
                    ]
                    return _json({"total_count": len(runs), "workflow_runs": runs})
                case ["actions", "runs", run_id, "artifacts"]:
                    artifacts = r.run_artifacts.get(int(run_id), [])
                    return _json({"total_count": len(artifacts), "artifacts": artifacts})
                case ["actions", "artifacts", artifact_id, "zip"]:
                    if int(artifact_id) in r.artifact_zips:
                        return 302, b"", f"{self.api_url}/storage/{artifact_id}.zip"
        return 404, b'{"message":"Not Found"}', None


def _json(value: Any) -> tuple[int, bytes, str | None]:
    return 200, json.dumps(value).encode(), None


def _handler_for(server: GitHubAPI) -> type[BaseHTTPRequestHandler]:
    prefix = f"/repos/{server.repository.name}/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            server.repository.requests.append(url.path)
            location: str | None = None
            authorization = self.headers.get("Authorization")
            if url.path.startswith("/storage/"):
                artifact_id = int(url.path.removeprefix("/storage/").removesuffix(".zip"))
                if authorization is not None:
                    status, body = 400, b"<Error>authorization header not allowed</Error>"
                else:
                    status, body = 200, server.repository.artifact_zips[artifact_id]
            elif authorization != f"Bearer {server.repository.token}":
                status, body = 401, b'{"message":"Bad credentials"}'
            elif not url.path.startswith(prefix):
                status, body = 404, b'{"message":"Not Found"}'
            else:
                status, body, location = server.answer(url.path[len(prefix) :], parse_qs(url.query))
            self.send_response(status)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
