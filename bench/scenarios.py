"""The scenarios. Each one sets up registries and content, then runs regplan and skopeo sync
alternately (the first tool swaps every round) and keeps every run's measurements."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import content
from bench.content import MIB, BigImage, Dataset, DatasetSpec
from bench.measure import (
    MB,
    ProcessStats,
    Requests,
    Run,
    median,
    process_cpu,
    registry_pid,
    run_process,
    upload_request_seconds,
)
from bench.storage import copy_repository, mirror_repositories
from bench.tools import (
    REGPLAN,
    TOOLS,
    SyncJob,
    regplan_argv,
    regplan_binary,
    skopeo_argv,
    write_job_files,
)
from bench.walk import WalkPoint, measure_walk
from tests.servers.distribution import RegistryServer

ACCEPT = ", ".join([content.OCI_MANIFEST, content.OCI_INDEX])
CURL_FLOOR = "curl HEADs"  # Outcome.extra key: the no-op floor (see Bench.curl_heads)
# Outcome.extra keys: the same no-op by bare Python, without and with importing the libraries
# regplan is built on (see Bench.python_floor)
PYTHON_FLOOR = "python floor"
PYTHON_FLOOR_LIBS = "python floor + imports"
FLOOR_LIBRARIES = ("typer", "httpx", "yaml")


@dataclass(frozen=True)
class Options:
    rounds: int = 3
    parallel: int = 4  # regplan's defaults.parallel (regsync's reference run used 4)
    s3_repos: int = 20
    s3_tags: int = 100
    scale_tags: tuple[int, ...] = (50, 100, 250, 400)  # planning cost: tags per repository
    big_mib: int = 512
    startup_repeats: int = 5
    r1_scale: float = 0.1  # R1's size: 1.0 is the full 7,500-step config
    walk_actions: tuple[int, ...] = (8_000, 100_000)  # plan sizes of the apply-walk points
    r1_skopeo: bool = True  # skopeo sync beside R1 (over an hour at full scale)


@dataclass
class Outcome:
    """One scenario's runs, the facts needed to read them, and extra measurements."""

    key: str
    title: str
    runs: dict[str, list[Run]] = field(default_factory=lambda: {t: [] for t in TOOLS})
    facts: dict[str, float | int | str] = field(default_factory=dict)
    extra: dict[str, list[Run | ProcessStats]] = field(default_factory=dict)
    # S4: seconds of the request that carried the layer, from the target registry's log,
    # keyed like `runs` and `extra`
    layer_seconds: dict[str, list[float]] = field(default_factory=dict)

    def med(self, tool: str, metric: Callable[[Run], float]) -> float:
        return median(metric(r) for r in self.runs[tool])


@dataclass
class ScalePoint:
    repos: int
    tags_per_repo: int
    runs: list[Run]

    @property
    def tags(self) -> int:
        return self.repos * self.tags_per_repo


@dataclass
class Startup:
    help_wall: float
    python_wall: float  # `python -c pass`: the interpreter's own start
    skopeo_help_wall: float
    help_import_ms: float
    help_heaviest: list[tuple[str, float]]
    check: ProcessStats
    check_import_ms: float
    check_heaviest: list[tuple[str, float]]
    check_requests: Requests


class Bench:
    """Owns every registry it starts (stopped in `close`) and a work directory."""

    def __init__(self, workdir: Path, options: Options) -> None:
        self.workdir = workdir
        self.options = options
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.configs = workdir / "configs"
        self._servers: list[RegistryServer] = []
        self._pids: dict[int, int | None] = {}
        # What users run: bytecode cached. This session's environment sets
        # PYTHONDONTWRITEBYTECODE, which would recompile regplan's modules on every start.
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self._s1: tuple[RegistryServer, Dataset] | None = None
        self._scale: tuple[RegistryServer, RegistryServer, dict[int, Dataset]] | None = None

    # -- registries -------------------------------------------------------------------------
    def registry(self, name: str) -> RegistryServer:
        server = RegistryServer(self.workdir / "registries" / name)
        self._servers.append(server)
        return server.start()

    def drop(self, server: RegistryServer) -> None:
        """Stop a throw-away registry and delete its storage (cold targets)."""
        server.stop()
        self._servers.remove(server)
        self._pids.pop(id(server), None)
        shutil.rmtree(server.workdir, ignore_errors=True)

    def pid(self, server: RegistryServer) -> int | None:
        if id(server) not in self._pids:
            self._pids[id(server)] = registry_pid(server)
        return self._pids[id(server)]

    def close(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers.clear()

    # -- running ----------------------------------------------------------------------------
    def measure(
        self,
        name: str,
        argv: list[str],
        registries: dict[str, RegistryServer],
        sizes: dict[str, int],
        tag_sizes: dict[str, int],
        *,
        tool: str,
        round_: int,
        target_prefix: str = "",
    ) -> Run:
        """Run `argv` once; its requests are what the registries logged meanwhile. With
        `target_prefix` (one registry is source and target) requests are told apart by path."""
        for server in registries.values():
            server.clear_requests()
        servers = {id(s): s for s in registries.values()}.values()
        cpu_before = sum(process_cpu(self.pid(s)) for s in servers)
        stats = run_process(argv, log=self.logs / f"{name}.log", env=self.env)
        requests = Requests.collect(registries)
        registry_cpu = sum(process_cpu(self.pid(s)) for s in servers) - cpu_before
        if target_prefix:
            requests.entries = [
                ("dst" if e.repo.startswith(target_prefix + "/") else "src", e)
                for _, e in requests.entries
            ]
        received, unknown = requests.bytes_received(sizes, tag_sizes)
        run = Run(
            tool=tool,
            round=round_,
            stats=stats,
            requests=requests,
            bytes_moved=requests.bytes_served("src") + received,
            registry_cpu=registry_cpu,
            unknown_sizes=unknown,
        )
        if stats.returncode != 0:
            run.notes.append(f"{name}: exit {stats.returncode} (see logs/{name}.log)")
        return run

    def alternate(self, one: Callable[[str, int], Run], outcome: Outcome) -> None:
        for round_ in range(self.options.rounds):
            order = TOOLS if round_ % 2 == 0 else tuple(reversed(TOOLS))
            for tool in order:
                run = one(tool, round_)
                outcome.runs[tool].append(run)
                print(f"  {outcome.key} {tool:8} round {round_ + 1}: {describe(run)}", flush=True)

    def sync_argv(self, job: SyncJob, name: str, tool: str, *, command: str = "once") -> list[str]:
        config, source = write_job_files(job, self.configs, name, parallel=self.options.parallel)
        if tool == REGPLAN:
            return regplan_argv(command, config)
        # skopeo 1.9 cannot keep the digest of an index whose descriptors carry artifactType
        # (every referrers fallback tag): with attachments it may rewrite them.
        return skopeo_argv(job, source, preserve_digests=not job.referrers)

    # -- content ----------------------------------------------------------------------------
    def s1_source(self) -> tuple[RegistryServer, Dataset]:
        """S1's content, shared by S1, S2 and S5: 5 repos × 20 tags × 3 layers of 1 MiB
        (one a per-repository base layer), every 5th tag a two-platform index."""
        if self._s1 is None:
            server = self.registry("s1-source")
            spec = DatasetSpec("s1", repos=5, tags=20, layers=3, layer_size=MIB)
            self._s1 = server, content.push_dataset(spec, server.url, "bench")
        return self._s1

    # -- S1 ---------------------------------------------------------------------------------
    def s1_cold(self) -> Outcome:
        src, data = self.s1_source()
        outcome = Outcome("S1", "cold: 5 repos × 20 tags × 3 layers of 1 MiB")
        describe_dataset(outcome, data)
        outcome.facts["copied bytes"] = outcome.facts["blob bytes"]

        def one(tool: str, round_: int) -> Run:
            name = f"s1-{tool}-{round_}"
            dst = self.registry(name)
            job = SyncJob(src, tuple(data.repos), dst, "mirror")
            argv = self.sync_argv(job, name, tool)
            run = self.measure(
                name,
                argv,
                {"src": src, "dst": dst},
                data.sizes(),
                data.tag_sizes,
                tool=tool,
                round_=round_,
            )
            run.notes += verify_copy(dst, job, data)
            self.drop(dst)
            return run

        self.alternate(one, outcome)
        return outcome

    # -- S2 ---------------------------------------------------------------------------------
    def s2_noop(self) -> Outcome:
        src, data = self.s1_source()
        outcome = Outcome("S2", "no-op: S1 again, target up to date")
        describe_dataset(outcome, data)
        dst = self.registry("s2-target")
        jobs = {t: SyncJob(src, tuple(data.repos), dst, f"mirror-{t}") for t in TOOLS}
        self._noop(outcome, src, dst, data, jobs, floor=True)
        self.drop(dst)
        return outcome

    def s2_referrers(self) -> Outcome:
        """S2 with `referrers` and `digestTags` on, over content that has them."""
        outcome = Outcome(
            "S2r", "no-op with referrers + digestTags: 5 repos × 20 tags, 50 attachments"
        )
        src = self.registry("s2r-source")
        spec = DatasetSpec(
            "s2r", repos=5, tags=20, layers=3, layer_size=64 * 1024, attachments=True
        )
        data = content.push_dataset(spec, src.url, "att")
        describe_dataset(outcome, data)
        dst = self.registry("s2r-target")
        jobs = {
            t: SyncJob(src, tuple(data.repos), dst, f"mirror-{t}", referrers=True, tag_allow="v.*")
            for t in TOOLS
        }
        # skopeo rewrites the fallback indexes (see sync_argv): each tool first makes the
        # target its own, unmeasured, so every measured run is that tool's no-op.
        self._noop(outcome, src, dst, data, jobs, warm_up=True)
        self.drop(src)
        self.drop(dst)
        return outcome

    def _noop(
        self,
        outcome: Outcome,
        src: RegistryServer,
        dst: RegistryServer,
        data: Dataset,
        jobs: dict[str, SyncJob],
        *,
        warm_up: bool = False,
        floor: bool = False,
    ) -> None:
        for job in jobs.values():
            mirror_repositories(src.root, dst.root, job.repo_map())
        key = outcome.key.lower()
        registries = {"src": src, "dst": dst}
        if warm_up:
            for tool, job in jobs.items():
                name = f"{key}-{tool}-warm-up"
                run_process(
                    self.sync_argv(job, name, tool), log=self.logs / f"{name}.log", env=self.env
                )

        if floor:
            for extra in (CURL_FLOOR, PYTHON_FLOOR, PYTHON_FLOOR_LIBS):
                outcome.extra[extra] = []

        def one(tool: str, round_: int) -> Run:
            name = f"{key}-{tool}-{round_}"
            argv = self.sync_argv(jobs[tool], name, tool)
            run = self.measure(
                name, argv, registries, data.sizes(), data.tag_sizes, tool=tool, round_=round_
            )
            if floor and tool == REGPLAN:  # same round: what the registries and Python allow
                job = jobs[tool]
                outcome.extra[CURL_FLOOR].append(self.curl_heads(job, data, f"{key}-curl-{round_}"))
                for extra, libraries in ((PYTHON_FLOOR, ()), (PYTHON_FLOOR_LIBS, FLOOR_LIBRARIES)):
                    name = f"{key}-python-{len(libraries)}-{round_}"
                    outcome.extra[extra].append(self.python_floor(job, data, name, libraries))
            return run

        self.alternate(one, outcome)

    def curl_heads(self, job: SyncJob, data: Dataset, name: str) -> ProcessStats:
        """The floor of a no-op: one HEAD per tag on each side (what regplan needs at least,
        less the tag lists), sent by curl with regplan's default concurrency: reqConcurrent 3
        per registry, so 6 at once."""
        config = self.configs / f"{name}.curl"
        lines = []
        for repo in data.repos:
            for tag in data.tags[repo]:
                for url in (
                    f"{job.source.url}/v2/{repo}/manifests/{tag}",
                    f"{job.target.url}/v2/{job.target_repo(repo)}/manifests/{tag}",
                ):
                    lines += [f'url = "{url}"', 'output = "/dev/null"']
        config.write_text("\n".join(lines) + "\n")
        argv = ["curl", "-sS", "--fail", "--head", "-H", f"Accept: {ACCEPT}"]
        argv += ["--parallel", "--parallel-max", "6", "--no-progress-meter", "-K", str(config)]
        return run_process(argv, log=self.logs / f"{name}.log")

    def python_floor(
        self, job: SyncJob, data: Dataset, name: str, libraries: tuple[str, ...]
    ) -> ProcessStats:
        """regplan's no-op requests (the tag lists, then both HEADs of each tag) sent by a bare
        Python script on regplan's number of threads, after importing `libraries`: what Python
        itself allows on this machine (bench/python_floor.py)."""
        config = self.configs / f"{name}.requests"
        lines = [f"GET {job.source.url}/v2/{repo}/tags/list" for repo in data.repos]
        for repo in data.repos:
            for tag in data.tags[repo]:
                lines.append(
                    f"HEAD {job.source.url}/v2/{repo}/manifests/{tag} "
                    f"{job.target.url}/v2/{job.target_repo(repo)}/manifests/{tag}"
                )
        config.write_text("\n".join(lines) + "\n")
        argv = [sys.executable, str(Path(__file__).with_name("python_floor.py")), str(config)]
        argv += ["--threads", str(self.options.parallel), "--import", ",".join(libraries)]
        return run_process(argv, log=self.logs / f"{name}.log", env=self.env)

    # -- S3 and the planning-cost points ----------------------------------------------------
    def scale_data(self) -> tuple[RegistryServer, RegistryServer, dict[int, Dataset]]:
        """One source registry holding `s3_repos` repositories at every tag count of
        `scale_tags` (and `s3_tags`), and a target holding an up-to-date copy of each.

        Images are small and share their layer and config per repository (their manifests
        differ by an annotation): this is about planning cost, not transfer. It also spares
        skopeo most of its per-blob work, which favours skopeo."""
        if self._scale is None:
            src = self.registry("scale-source")
            dst = self.registry("scale-target")
            counts = sorted({*self.options.scale_tags, self.options.s3_tags})
            largest = DatasetSpec(
                f"scale{counts[-1]}",
                repos=self.options.s3_repos,
                tags=counts[-1],
                layers=1,
                layer_size=1024,
                shared_config=True,
            )
            full = content.push_dataset(largest, src.url, f"s{counts[-1]}", threads=8)
            print(f"  pushed {full.tag_count} tags", flush=True)
            datasets: dict[int, Dataset] = {counts[-1]: full}
            for tags in counts[:-1]:  # the first N tags of each repository, copied on disk
                cut = full.first_tags(tags, f"s{tags}")
                drop = set(largest.tag_names()[tags:])
                for name, target in zip(full.repos, cut.repos, strict=True):
                    copy_repository(src.root, name, target, drop_tags=drop)
                datasets[tags] = cut
            self._scale = src, dst, datasets
        return self._scale

    def s3_scale_noop(self) -> Outcome:
        src, dst, datasets = self.scale_data()
        data = datasets[self.options.s3_tags]
        outcome = Outcome(
            "S3", f"scale no-op: {len(data.repos)} repos × {self.options.s3_tags} tags, up to date"
        )
        describe_dataset(outcome, data)
        jobs = {
            t: SyncJob(src, tuple(data.repos), dst, f"mirror-{t}-s{self.options.s3_tags}")
            for t in TOOLS
        }
        self._noop(outcome, src, dst, data, jobs, floor=True)
        return outcome

    def planning_scale(self) -> list[ScalePoint]:
        """`regplan plan` over up-to-date mirrors of growing size (regplan only)."""
        src, dst, datasets = self.scale_data()
        points = []
        for tags in self.options.scale_tags:
            data = datasets[tags]
            job = SyncJob(src, tuple(data.repos), dst, f"mirror-plan-s{tags}")
            mirror_repositories(src.root, dst.root, job.repo_map())
            runs = []
            for round_ in range(self.options.rounds):
                name = f"plan-{tags}-{round_}"
                run = self.measure(
                    name,
                    self.sync_argv(job, name, REGPLAN, command="plan"),
                    {"src": src, "dst": dst},
                    data.sizes(),
                    data.tag_sizes,
                    tool=REGPLAN,
                    round_=round_,
                )
                runs.append(run)
                print(f"  plan {data.tag_count:5} tags round {round_ + 1}: {describe(run)}")
            points.append(ScalePoint(len(data.repos), tags, runs))
        return points

    def walk_points(self) -> list[WalkPoint]:
        """`regplan apply` of plans whose content the target already has (regplan only).
        The layouts live in /dev/shm where it exists: the walk, not the disk, is measured."""
        shm = Path("/dev/shm")
        base = (shm if shm.is_dir() else self.workdir) / f"{self.workdir.name}-walk"
        points = []
        for actions in self.options.walk_actions:
            point = measure_walk(base, actions, self.logs / f"walk-{actions}.log", self.env)
            points.append(point)
            print(
                f"  walk {point.actions:6} actions: apply {point.seconds:.1f} s "
                f"({point.apply.wall:.1f} s wall, {point.apply.cpu:.1f} s CPU)",
                flush=True,
            )
        return points

    # -- S4 ---------------------------------------------------------------------------------
    def s4_big_blob(self) -> Outcome:
        size = self.options.big_mib * MIB
        outcome = Outcome(
            "S4", f"big blob: one image with a {self.options.big_mib} MiB layer, cold"
        )
        src = self.registry("s4-source")
        blobs = self.workdir / "blobs"
        blobs.mkdir(exist_ok=True)
        big = content.push_big_image(src.url, "big/layer", size, blobs, "s4/big")
        small = content.push_big_image(src.url, "small/layer", MIB, blobs, "s4/small")
        outcome.facts.update(
            {
                "layer bytes": big.layer.size,
                "copied bytes": big.layer.size + big.config.size,
                "images": 1,
                "tags": 1,
                "blobs": 2,
                "repos": 1,
            }
        )
        outcome.extra = {"curl PUT": [], "curl GET|PUT": [], "regplan 1 MiB": []}

        def copy(tool: str, round_: int, image: BigImage, label: str) -> Run:
            name = f"s4-{label}-{round_}"
            dst = self.registry(name)
            job = SyncJob(src, (image.repo,), dst, "mirror")
            run = self.measure(
                name,
                self.sync_argv(job, name, tool),
                {"src": src, "dst": dst},
                image.sizes(),
                image.tag_sizes,
                tool=tool,
                round_=round_,
            )
            run.notes += verify_image(dst, job.target_repo(image.repo), image)
            if image is big:
                layer = upload_request_seconds(dst.log_file)
                outcome.layer_seconds.setdefault(tool, []).append(layer)
            self.drop(dst)
            return run

        def one(tool: str, round_: int) -> Run:
            run = copy(tool, round_, big, tool)
            if tool == REGPLAN:  # same round: the limit of the target, and the 1 MiB control
                for label, baseline in (
                    ("curl PUT", self.curl_put),
                    ("curl GET|PUT", self.curl_pipe),
                ):
                    stats, layer = baseline(src, big, round_)
                    outcome.extra[label].append(stats)
                    outcome.layer_seconds.setdefault(label, []).append(layer)
                outcome.extra["regplan 1 MiB"].append(copy(REGPLAN, round_, small, "small"))
            return run

        self.alternate(one, outcome)
        self.drop(src)
        return outcome

    def curl_put(
        self, src: RegistryServer, image: BigImage, round_: int
    ) -> tuple[ProcessStats, float]:
        """A plain streaming PUT of the layer file into a fresh registry: what it ingests.
        Returns the run and the layer request's seconds in the registry's log."""
        del src  # from the file, not from the source registry
        dst = self.registry(f"s4-curl-{round_}")
        try:
            location = start_upload(dst, "curl/layer")
            stats = run_process(
                ["curl", "-sSf", "-o", "/dev/null", "-T", str(image.layer_file), "-X", "PUT",
                 with_digest(location, image.layer.digest)],
                log=self.logs / f"s4-curl-{round_}.log",
            )  # fmt: skip
            return stats, upload_request_seconds(dst.log_file)
        finally:
            self.drop(dst)

    def curl_pipe(
        self, src: RegistryServer, image: BigImage, round_: int
    ) -> tuple[ProcessStats, float]:
        """Registry to registry with two curls and a pipe: the limit of a streaming copy."""
        dst = self.registry(f"s4-pipe-{round_}")
        try:
            location = start_upload(dst, "curl/layer")
            get = f"curl -sSf {src.url}/v2/{image.repo}/blobs/{image.layer.digest}"
            put = (
                f"curl -sSf -o /dev/null -T - -X PUT -H 'Content-Length: {image.layer.size}' "
                f"'{with_digest(location, image.layer.digest)}'"
            )
            stats = run_process(
                ["bash", "-o", "pipefail", "-c", f"{get} | {put}"],
                log=self.logs / f"s4-pipe-{round_}.log",
            )
            return stats, upload_request_seconds(dst.log_file)
        finally:
            self.drop(dst)

    # -- S5 ---------------------------------------------------------------------------------
    def s5_same_registry(self) -> Outcome:
        src, data = self.s1_source()
        outcome = Outcome("S5", "same registry: S1 into another repository path (mounts)")
        describe_dataset(outcome, data)

        def one(tool: str, round_: int) -> Run:
            name = f"s5-{tool}-{round_}"
            job = SyncJob(src, tuple(data.repos), src, name)
            run = self.measure(
                name,
                self.sync_argv(job, name, tool),
                {"src": src},
                data.sizes(),
                data.tag_sizes,
                tool=tool,
                round_=round_,
                target_prefix=name,
            )
            run.notes += verify_copy(src, job, data)
            return run

        self.alternate(one, outcome)
        return outcome

    # -- start-up ---------------------------------------------------------------------------
    def startup(self) -> Startup:
        """`regplan --help`, and `regplan check` of one up-to-date image: wall time and what
        the imports cost (python -X importtime)."""
        src = self.registry("startup-source")
        dst = self.registry("startup-target")
        spec = DatasetSpec("startup", repos=1, tags=2, layers=1, layer_size=1024)
        data = content.push_dataset(spec, src.url, "one")
        repo = data.repos[0]
        mirror_repositories(src.root, dst.root, {repo: "mirror/app0"})
        config = self.configs / "startup-check.yml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "version: 1\ncreds:\n"
            f"  - registry: {src.host}\n    tls: disabled\n"
            f"  - registry: {dst.host}\n    tls: disabled\n"
            "sync:\n"
            f"  - source: {src.host}/{repo}:v1.0.1\n"
            f"    target: {dst.host}/mirror/app0:v1.0.1\n"
            "    type: image\n"
        )
        log = self.logs / "startup.log"
        n = self.options.startup_repeats
        regplan = regplan_binary()
        interpreter = _script_interpreter(regplan)
        help_wall = median(
            run_process([regplan, "--help"], log=log, env=self.env).wall for _ in range(n)
        )
        python_wall = median(
            run_process([interpreter, "-c", "pass"], log=log).wall for _ in range(n)
        )
        skopeo_wall = median(run_process(["skopeo", "--help"], log=log).wall for _ in range(n))
        checks = []
        for round_ in range(n):
            checks.append(
                self.measure(
                    f"startup-check-{round_}",
                    [regplan, "check", "-c", str(config)],
                    {"src": src, "dst": dst},
                    data.sizes(),
                    data.tag_sizes,
                    tool=REGPLAN,
                    round_=round_,
                )
            )
        checks.sort(key=lambda r: r.stats.wall)
        check = checks[len(checks) // 2]
        help_ms, help_top = import_time(
            [interpreter, "-X", "importtime", regplan, "--help"], env=self.env
        )
        check_ms, check_top = import_time(
            [interpreter, "-X", "importtime", regplan, "check", "-c", str(config)], env=self.env
        )
        self.drop(src)
        self.drop(dst)
        return Startup(
            help_wall=help_wall,
            python_wall=python_wall,
            skopeo_help_wall=skopeo_wall,
            help_import_ms=help_ms,
            help_heaviest=help_top,
            check=check.stats,
            check_import_ms=check_ms,
            check_heaviest=check_top,
            check_requests=check.requests,
        )


# -- helpers ----------------------------------------------------------------------------------


def describe(run: Run) -> str:
    s = run.stats
    text = (
        f"{s.wall:6.2f}s wall {s.cpu:6.2f}s cpu {s.peak_rss / MB:5.0f} MB rss "
        f"{run.requests.total:6} requests {run.bytes_moved / MB:7.1f} MB moved"
    )
    return text + (f"  !! {'; '.join(run.notes)}" if run.notes else "")


def describe_dataset(outcome: Outcome, data: Dataset) -> None:
    outcome.facts.update(
        {
            "repos": len(data.repos),
            "tags": data.tag_count,
            "images": data.image_manifests,
            "blobs": data.blob_count,
            "blob bytes": sum(data.blobs[d] for b in data.repo_blobs.values() for d in b),
            "attachments": data.attachments,
        }
    )


def _head_digest(client: httpx.Client, repo: str, reference: str) -> str:
    reply = client.head(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
    return reply.headers.get("docker-content-digest", f"HTTP {reply.status_code}")


def verify_copy(dst: RegistryServer, job: SyncJob, data: Dataset) -> list[str]:
    """Every tag present on the target with the source's digest (after the run's requests
    were collected, so these do not count)."""
    wrong = []
    with httpx.Client(base_url=dst.url, timeout=30) as client:
        for repo, tags in data.tags.items():
            for tag, desc in tags.items():
                found = _head_digest(client, job.target_repo(repo), tag)
                if found != desc.digest:
                    wrong.append(f"{tag}: {found}")
    return [f"{len(wrong)} tags wrong on the target, e.g. {wrong[0]}"] if wrong else []


def verify_image(dst: RegistryServer, repo: str, image: BigImage) -> list[str]:
    with httpx.Client(base_url=dst.url, timeout=30) as client:
        found = _head_digest(client, repo, image.tag)
    return [] if found == image.manifest.digest else [f"{repo}:{image.tag} is {found}"]


def start_upload(server: RegistryServer, repo: str) -> str:
    reply = httpx.post(f"{server.url}/v2/{repo}/blobs/uploads/")
    reply.raise_for_status()
    return str(reply.url.join(reply.headers["location"]))


def with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest.replace(':', '%3A')}"


def _script_interpreter(script: str) -> str:
    """The Python a console script runs with (its #! line)."""
    first = Path(script).read_text().splitlines()[0] if Path(script).exists() else ""
    return first[2:].strip() if first.startswith("#!") else "python3"


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_time(argv: list[str], *, env: dict[str, str]) -> tuple[float, list[tuple[str, float]]]:
    """Total import time in ms (the top-level imports' cumulative times) and the five heaviest
    third-party packages wherever they were first imported, from `python -X importtime`.
    (importtime's own bookkeeping inflates the numbers somewhat; compare them to each other.)"""
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120, env=env)
    total = 0.0
    packages: dict[str, float] = {}
    for line in result.stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        name, ms = m.group(4), int(m.group(2)) / 1000
        if len(m.group(3)) == 1:  # one space: imported at top level
            total += ms
        if "." not in name and name not in sys.stdlib_module_names and not name.startswith("_"):
            packages.setdefault(name, ms)  # a package's first import holds its cost
    packages.pop("regplan", None)  # the total; its own modules are what is left
    heaviest = sorted(((n, ms) for n, ms in packages.items() if ms >= 1), key=lambda x: -x[1])
    heaviest = heaviest[:5]
    return total, heaviest
