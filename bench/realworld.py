"""R1's shape: a generated mirror config with the statistics of a real one.

A platform vendor's public mirroring config (generated from a higher-level list) has ~7,500
`type: image` steps: ~2,400 distinct source images in ~200 repositories on 9 public source
registries, each image copied to 3 target registries, one of which is also a source registry.
`shape(scale)` keeps those proportions at any size; `regplan_config` writes the config with the
public names mapped onto local registries by `creds[].hostname`.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.content import Dataset, DatasetSpec, Pusher, _Builder
from bench.measure import Run, run_process
from bench.tools import REGPLAN, SKOPEO, regplan_binary

if TYPE_CHECKING:
    from bench.scenarios import Bench
    from tests.servers.distribution import RegistryServer

SOURCE_REGISTRIES = (
    "docker.io",
    "quay.io",
    "ghcr.io",
    "registry.k8s.io",
    "gcr.io",
    "public.ecr.aws",
    "mcr.microsoft.com",
    "registry.gitlab.com",
    "nvcr.io",
)
# the third target is a source registry too: copies into it mount from the source repository
TARGET_REGISTRIES = ("mirror.example.com", "registry.example.org", "ghcr.io")
TARGET_PREFIX = "mirror"
FULL_SOURCES = 2_500  # x3 targets = 7,500 image steps
FULL_REPOS = 200


@dataclass(frozen=True)
class Source:
    registry: str  # public name
    repo: str  # repository path on it
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.registry}/{self.repo}:{self.tag}"

    def target(self, registry: str) -> str:
        return f"{registry}/{TARGET_PREFIX}/{self.registry}/{self.repo}:{self.tag}"


@dataclass(frozen=True)
class Shape:
    repos: tuple[tuple[str, str, int], ...]  # (registry, repo, tags)

    @property
    def sources(self) -> list[Source]:
        return [
            Source(registry, repo, tag_name(i))
            for registry, repo, tags in self.repos
            for i in range(tags)
        ]

    @property
    def steps(self) -> int:
        return len(self.sources) * len(TARGET_REGISTRIES)


def tag_name(i: int) -> str:
    return f"v1.0.{i}"  # what bench.content's builder tags image `i` of a repository


def shape(scale: float) -> Shape:
    """The full shape at `scale` 1.0; smaller scales keep ~12.5 images per repository."""
    sources = max(1, round(FULL_SOURCES * scale))
    repos = max(1, min(sources, round(FULL_REPOS * scale)))
    out = []
    for r in range(repos):
        registry = SOURCE_REGISTRIES[r % len(SOURCE_REGISTRIES)]
        tags = sources // repos + (1 if r < sources % repos else 0)
        out.append((registry, f"org{r % 17}/app{r}", tags))
    return Shape(tuple(out))


def regplan_config(shape: Shape, hosts: Mapping[str, str], *, parallel: int = 4) -> str:
    """regsync's format, three lines per step as generated configs write them. `hosts` maps
    every public registry name to the local `host:port` serving it."""
    lines = ["version: 1", "creds:"]
    for name in (*SOURCE_REGISTRIES, *TARGET_REGISTRIES):
        if name in hosts and f"  - registry: {name}" not in lines:
            lines += [f"  - registry: {name}", f"    hostname: {hosts[name]}", "    tls: disabled"]
    lines += ["defaults:", f"  parallel: {parallel}", "sync:"]
    for source in shape.sources:
        for registry in TARGET_REGISTRIES:
            lines += [
                f"  - source: {source.ref}",
                f"    target: {source.target(registry)}",
                "    type: image",
            ]
    return "\n".join(lines) + "\n"


# -- the run (`just bench --only R1 --scale 0.1`) ----------------------------------------------
# Public names onto local registries: two source registries, two targets; ghcr.io (a source
# and a target) lives on the first source registry, so its copies mount from the source.
_SERVING = {name: "src-a" if i % 2 == 0 else "src-b" for i, name in enumerate(SOURCE_REGISTRIES)}
_SERVING.update({"mirror.example.com": "dst-1", "registry.example.org": "dst-2"})
PHASES = ("config validate", "cold once", "no-op once", "no-op plan", "no-op once --missing")
SKOPEO_PHASES = ("cold once", "no-op once")


@dataclass
class R1Result:
    scale: float
    steps: int
    sources: int
    repos: int
    lines: int
    regplan: dict[str, Run] = field(default_factory=dict)  # by phase
    skopeo: dict[str, Run] = field(default_factory=dict)


def skopeo_script(shape: Shape, servers: Mapping[str, RegistryServer]) -> str:
    """skopeo sync of the same images: one sync per (source registry, target), sequentially,
    each into `<target>/skopeo` (skopeo cannot map public names onto local registries)."""
    commands = []
    by_server: dict[str, list[Source]] = {}
    for source in shape.sources:
        by_server.setdefault(_SERVING[source.registry], []).append(source)
    for server_name, sources in sorted(by_server.items()):
        host = servers[server_name].host
        images: dict[str, list[str]] = {}
        for source in sources:
            images.setdefault(source.repo, []).append(source.tag)
        yaml_lines = [f"{host}:", "  tls-verify: false", "  images:"]
        yaml_lines += [f"    {repo}: [{', '.join(tags)}]" for repo, tags in images.items()]
        yaml_file = servers[server_name].workdir.parent / f"r1-{server_name}.skopeo.yml"
        yaml_file.write_text("\n".join(yaml_lines) + "\n")
        for target in TARGET_REGISTRIES:
            dest = servers[_SERVING[target]].host
            commands.append(
                "skopeo sync --src yaml --dest docker --dest-tls-verify=false --all "
                f"--preserve-digests {yaml_file} {dest}/skopeo"
            )
    return " && ".join(commands)


def push_sources(shape: Shape, servers: Mapping[str, RegistryServer]) -> dict[str, int]:
    """Every source image: a two-platform OCI index, a base layer per repository and
    platform, one tiny layer and a config per platform image. Returns digest → size."""
    spec = DatasetSpec("r1", repos=len(shape.repos), tags=1, layers=2, layer_size=256)
    spec = replace(spec, multi_every=1)
    sizes: dict[str, int] = {}
    for server_name in ("src-a", "src-b"):
        repos = [(r, n) for r, n, _ in shape.repos if _SERVING[r] == server_name]
        if not repos:
            continue
        pusher = Pusher(servers[server_name].url)
        data = Dataset(spec=spec, repos=[n for _, n in repos])
        builder = _Builder(spec, pusher, data)
        jobs = [
            (name, i)
            for registry, name, tags in shape.repos
            if _SERVING[registry] == server_name
            for i in range(tags)
        ]
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(builder.tag, [n for n, _ in jobs], [i for _, i in jobs]))
        finally:
            pusher.close()
        sizes.update(data.sizes())
    return sizes


def run_r1(bench: Bench, scale: float) -> R1Result:
    wanted = shape(scale)
    servers = {name: bench.registry(f"r1-{name}") for name in ("src-a", "src-b", "dst-1", "dst-2")}
    sizes = push_sources(wanted, servers)
    hosts = {name: servers[serving].host for name, serving in _SERVING.items()}
    text = regplan_config(wanted, hosts, parallel=bench.options.parallel)
    config = bench.configs / "r1.regplan.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    result = R1Result(
        scale=scale,
        steps=wanted.steps,
        sources=len(wanted.sources),
        repos=len(wanted.repos),
        lines=text.count("\n"),
    )
    print(f"  R1: {result.steps} steps, {result.sources} sources, {result.repos} repos", flush=True)
    regplan = regplan_binary()
    argvs = {
        "config validate": [regplan, "config", "validate", "-c", str(config)],
        "cold once": [regplan, "once", "-c", str(config)],
        "no-op once": [regplan, "once", "-c", str(config)],
        "no-op plan": [regplan, "plan", "-c", str(config), "-o", str(bench.workdir / "r1.plan")],
        "no-op once --missing": [regplan, "once", "--missing", "-c", str(config)],
    }
    skopeo = ["sh", "-c", skopeo_script(wanted, servers)]
    registries = dict(servers)
    from bench.scenarios import describe  # scenarios imports this module's config writer

    for phase in PHASES:
        result.regplan[phase] = bench.measure(
            f"r1-regplan-{phase.replace(' ', '-')}",
            argvs[phase],
            registries,
            sizes,
            {},
            tool=REGPLAN,
            round_=0,
        )
        print(f"  R1 regplan {phase}: {describe(result.regplan[phase])}", flush=True)
        if phase in SKOPEO_PHASES and bench.options.r1_skopeo:
            result.skopeo[phase] = bench.measure(
                f"r1-skopeo-{phase.replace(' ', '-')}",
                skopeo,
                registries,
                sizes,
                {},
                tool=SKOPEO,
                round_=0,
            )
            print(f"  R1 skopeo  {phase}: {describe(result.skopeo[phase])}", flush=True)
    return result


# -- R1 applied by N workers (`just bench --only R1-shards --scale 0.05`) --------------------
SHARD_COUNTS = (1, 2, 4)


@dataclass
class ShardRun:
    workers: int
    run: Run
    actions: int  # in the plan
    per_shard: tuple[int, ...]  # actions each worker applied (from its report)
    complete: bool  # every report ok, every action applied exactly once


@dataclass
class R1ShardsResult:
    scale: float
    steps: int
    runs: list[ShardRun] = field(default_factory=list)


def _sharded_apply_script(regplan: str, plan: Path, reports: Path, workers: int) -> str:
    """N `regplan apply --shard i/N` processes at once, as an Indexed Job's pods run them."""
    jobs = " ".join(
        f"{regplan} apply {plan} --shard {i}/{workers} --report {reports}/report-{i}.json &"
        for i in range(workers)
    )
    return f"{jobs} wait"


def run_r1_shards(bench: Bench, scale: float) -> R1ShardsResult:
    """R1's cold apply by 1, 2 and 4 concurrent workers, each into fresh targets: the same
    plan shape each time, planned first, then applied by N processes side by side."""
    import orjson

    wanted = shape(scale)
    regplan = regplan_binary()
    result = R1ShardsResult(scale=scale, steps=wanted.steps)
    for workers in SHARD_COUNTS:
        # fresh registries each time: one target (ghcr.io) lives on a source registry
        servers = {
            name: bench.registry(f"r1s-{name}-{workers}")
            for name in ("src-a", "src-b", "dst-1", "dst-2")
        }
        sizes = push_sources(wanted, servers)
        hosts = {name: servers[serving].host for name, serving in _SERVING.items()}
        config = bench.configs / f"r1-shards-{workers}.regplan.yml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(regplan_config(wanted, hosts, parallel=bench.options.parallel))
        plan = bench.workdir / f"r1-shards-{workers}.plan.json"
        planned = run_process(
            [regplan, "plan", "-c", str(config), "-o", str(plan)],
            log=bench.logs / f"r1-shards-{workers}-plan.log",
            env=bench.env,
        )
        reports = bench.workdir / f"r1-shards-{workers}-reports"
        reports.mkdir(exist_ok=True)
        run = bench.measure(
            f"r1-shards-{workers}",
            ["sh", "-c", _sharded_apply_script(regplan, plan, reports, workers)],
            servers,
            sizes,
            {},
            tool=REGPLAN,
            round_=0,
        )
        body = orjson.loads(plan.read_bytes()) if planned.returncode == 0 else {"actions": []}
        ids = [a["id"] for a in body["actions"]]
        applied: list[str] = []
        per_shard = []
        ok = True
        for i in range(workers):
            report_file = reports / f"report-{i}.json"
            if not report_file.is_file():
                ok, per_shard = False, [*per_shard, 0]
                continue
            report = orjson.loads(report_file.read_bytes())
            ok = ok and bool(report["ok"])
            done = [a["id"] for a in report["actions"]]
            applied += done
            per_shard.append(len(done))
        complete = ok and sorted(applied) == sorted(ids)
        result.runs.append(ShardRun(workers, run, len(ids), tuple(per_shard), complete))
        print(
            f"  R1 x{workers}: {run.stats.wall:.1f} s wall, {len(ids):,} actions, "
            f"shards {per_shard}, complete {complete}",
            flush=True,
        )
        for server in servers.values():
            bench.drop(server)
    return result
