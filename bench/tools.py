"""The two tools given the same job: regplan's config (regsync's format) and skopeo sync's YAML
source. Both copy every tag of `repos` into `<target>/<prefix>/<basename>` in one process."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.servers.distribution import RegistryServer

REGPLAN = "regplan"
SKOPEO = "skopeo"
TOOLS = (REGPLAN, SKOPEO)


@dataclass(frozen=True)
class SyncJob:
    source: RegistryServer
    repos: tuple[str, ...]  # repository paths in the source registry
    target: RegistryServer
    prefix: str  # target repositories are prefix/<basename of the source repository>
    referrers: bool = False  # regplan: `referrers` and `digestTags` on
    tag_allow: str = ""  # regplan: tags.allow regex (skopeo copies every tag)

    def target_repo(self, repo: str) -> str:
        return f"{self.prefix}/{repo.rsplit('/', 1)[-1]}"

    def repo_map(self) -> dict[str, str]:
        return {repo: self.target_repo(repo) for repo in self.repos}


def regplan_binary() -> str:
    """The console script of the interpreter running the benchmark (the repo's venv)."""
    beside = Path(sys.executable).parent / "regplan"
    return str(beside) if beside.exists() else (shutil.which("regplan") or "regplan")


def regplan_config(job: SyncJob, *, parallel: int) -> str:
    hosts = dict.fromkeys([job.source.host, job.target.host])
    lines = ["version: 1", "creds:"]
    for host in hosts:
        lines += [f"  - registry: {host}", "    tls: disabled"]
    lines += ["defaults:", f"  parallel: {parallel}", "sync:"]
    for repo in job.repos:
        lines += [
            f"  - source: {job.source.host}/{repo}",
            f"    target: {job.target.host}/{job.target_repo(repo)}",
            "    type: repository",
        ]
        if job.referrers:
            lines += ["    referrers: true", "    digestTags: true"]
        if job.tag_allow:
            lines += ["    tags:", "      allow:", f"        - '{job.tag_allow}'"]
    return "\n".join(lines) + "\n"


def skopeo_source_yaml(job: SyncJob) -> str:
    """skopeo sync's YAML source: every tag (an empty list) of each repository."""
    lines = [f"{job.source.host}:", "  tls-verify: false", "  images:"]
    lines += [f"    {repo}: []" for repo in job.repos]
    return "\n".join(lines) + "\n"


def regplan_argv(command: str, config: Path) -> list[str]:
    return [regplan_binary(), command, "-c", str(config)]


def skopeo_argv(job: SyncJob, source_yaml: Path, *, preserve_digests: bool = True) -> list[str]:
    """Without --scoped skopeo writes `<dest>/<basename of the repository>:<tag>`, the same
    repositories regplan writes. --preserve-digests makes it fail rather than rewrite."""
    argv = ["skopeo", "sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false"]
    argv += ["--all"]
    if preserve_digests:
        argv.append("--preserve-digests")
    return [*argv, str(source_yaml), f"{job.target.host}/{job.prefix}"]


def write_job_files(
    job: SyncJob, directory: Path, name: str, *, parallel: int
) -> tuple[Path, Path]:
    """(regplan config, skopeo source YAML) for `job`, written under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / f"{name}.regplan.yml"
    config.write_text(regplan_config(job, parallel=parallel))
    source = directory / f"{name}.skopeo.yml"
    source.write_text(skopeo_source_yaml(job))
    return config, source
