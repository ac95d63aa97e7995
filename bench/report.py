"""The Markdown report: ratios first, absolute numbers as context, then each target of issue #7
with the measured value and whether it is met."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.measure import MB, ProcessStats, Run, median
from bench.realworld import PHASES, R1Result, R1ShardsResult
from bench.scenarios import (
    CURL_FLOOR,
    FLOOR_LIBRARIES,
    PYTHON_FLOOR,
    PYTHON_FLOOR_LIBS,
    Options,
    Outcome,
    ScalePoint,
    Startup,
)
from bench.tools import REGPLAN, SKOPEO
from bench.walk import WalkPoint

NOISE_NOTE = (
    "The machine is shared (other engineers' test runs use the same cores), so absolute "
    "times are noisy; regplan and skopeo ran alternately in each round (the first tool swapping "
    "every round) on the same registries and content, which is why the ratios of medians are "
    "the headline."
)


@dataclass(frozen=True)
class Check:
    target: str
    measured: str
    met: bool | None  # None: reported, no pass/fail


@dataclass
class Results:
    options: Options
    started: float
    outcomes: dict[str, Outcome]
    scale: list[ScalePoint]
    startup: Startup | None
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    seconds: float
    r1: R1Result | None = None
    walk: list[WalkPoint] = field(default_factory=list)
    r1_shards: R1ShardsResult | None = None


# -- helpers ----------------------------------------------------------------------------------


def wall(r: Run) -> float:
    return r.stats.wall


def cpu(r: Run) -> float:
    return r.stats.cpu


def rss(r: Run) -> float:
    return r.stats.peak_rss / MB


def registry_cpu(r: Run) -> float:
    return r.registry_cpu


def total_requests(r: Run) -> float:
    return r.requests.total


def moved(r: Run) -> float:
    return r.bytes_moved / MB


def representative(runs: list[Run]) -> Run:
    """The run with the median wall time (request breakdowns are shown for it)."""
    ordered = sorted(runs, key=wall)
    return ordered[(len(ordered) - 1) // 2]


def ratio(outcome: Outcome, metric: Callable[[Run], float]) -> float:
    skopeo = outcome.med(SKOPEO, metric)
    return outcome.med(REGPLAN, metric) / skopeo if skopeo else float("nan")


def fmt_range(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def mark(met: bool | None) -> str:
    return {True: "✅ met", False: "❌ missed", None: "—"}[met]


def tool_versions() -> str:
    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            return "?"
        return (
            (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr else "?"
        )

    return "; ".join(
        [
            first_line(["skopeo", "--version"]),
            first_line(["docker-registry", "--version"]),
            f"Python {platform.python_version()}",
        ]
    )


# -- targets ----------------------------------------------------------------------------------


def noop_request_checks(o: Outcome) -> list[Check]:
    run = representative(o.runs[REGPLAN])
    tags, repos = int(o.facts["tags"]), int(o.facts["repos"])
    attachments = int(o.facts.get("attachments", 0))
    kinds = run.requests.by_kind()
    manifest = run.requests.manifest_requests()
    by_digest = sum(
        1
        for _, e in run.requests.entries
        if e.kind == "manifest" and e.method == "GET" and e.reference.startswith("sha256:")
    )
    tag_lists = kinds.get("GET tags", 0)
    budget = 2 * tags + repos + 2 * attachments
    other = {k: v for k, v in kinds.items() if not k.endswith((" manifest", " tags"))}
    checks = [
        Check(
            f"{o.key}: ≤ 2 manifest requests per tag"
            + (" + ≤ 2 per referrer index or digest tag" if attachments else ""),
            f"{manifest} manifest requests for {tags} tags"
            + (f" + {attachments} attachments" if attachments else "")
            + f" = {manifest / tags:.2f} per tag (budget {2 * tags + 2 * attachments})"
            + (f"; {by_digest} of them GET a manifest by digest" if by_digest else ""),
            manifest <= 2 * tags + 2 * attachments,
        ),
        Check(
            f"{o.key}: one tag list per repository",
            f"{tag_lists} tag lists for {repos} repos",
            tag_lists <= repos,
        ),
        Check(
            f"{o.key}: nothing else (total ≤ {budget})",
            f"{run.requests.total} requests"
            + (
                f"; other: {', '.join(f'{k} ×{v}' for k, v in sorted(other.items()))}"
                if other
                else ""
            ),
            run.requests.total <= budget,
        ),
    ]
    return checks


def wall_ratio_check(o: Outcome, limit: float) -> Check:
    r = ratio(o, wall)
    measured = f"{r:.2f}× ({o.med(REGPLAN, wall):.2f} s vs {o.med(SKOPEO, wall):.2f} s)"
    skopeo = o.med(SKOPEO, wall)

    def floor(key: str) -> float | None:
        runs = [s for s in o.extra.get(key, []) if isinstance(s, ProcessStats)]
        if not runs or any(s.returncode for s in runs):
            return None
        return median(s.wall for s in runs)

    curl = floor(CURL_FLOOR)
    if curl is not None:
        measured += (
            f"; floor: the same HEADs by curl (6 at once) take {curl:.2f} s = "
            f"{curl / skopeo:.2f}× skopeo's"
        )
    bare, with_libraries = floor(PYTHON_FLOOR), floor(PYTHON_FLOOR_LIBS)
    if bare is not None and with_libraries is not None:
        measured += (
            f"; the same requests by a bare Python script on regplan's threads "
            f"(bench/python_floor.py) take {bare:.2f} s = {bare / skopeo:.2f}×, "
            f"{with_libraries:.2f} s = {with_libraries / skopeo:.2f}× once it imports "
            f"{', '.join(FLOOR_LIBRARIES)}"
        )
    return Check(f"{o.key}: wall time ≤ {limit}× skopeo sync's", measured, r <= limit)


def s1_checks(o: Outcome) -> list[Check]:
    run = representative(o.runs[REGPLAN])
    req = run.requests
    blobs, images = int(o.facts["blobs"]), int(o.facts["images"])
    head = req.count("dst", "HEAD", "blob")
    post = req.count("dst", "POST", "upload")
    put = req.count("dst", "PUT", "upload")
    patch = req.count("dst", "PATCH", "upload")
    pings = req.count(None, "GET", "ping")
    twice = {d: n for d, n in req.blob_gets_per_digest("src").items() if n > 1}
    return [
        wall_ratio_check(o, 0.5),
        Check(
            "S1: per blob on the target ≤ 1 HEAD + 1 POST + 1 PUT, no PATCH",
            f"{blobs} blobs: HEAD {head / blobs:.2f}, POST {post / blobs:.2f}, "
            f"PUT {put / blobs:.2f}, PATCH {patch} per blob",
            head <= blobs and post <= blobs and put <= blobs and patch == 0,
        ),
        Check(
            "S1: no /v2/ ping per image",
            f"{pings} pings for {images} images (both registries)",
            pings < images and pings <= 2,
        ),
        Check(
            "S1: no blob requested from the source twice",
            f"{len(twice)} blobs fetched more than once"
            + (f" (max {max(twice.values())}×)" if twice else ""),
            not twice,
        ),
    ]


def s5_checks(o: Outcome) -> list[Check]:
    run = representative(o.runs[REGPLAN])
    req = run.requests
    mounted, refused = req.mounts()
    uploads = req.count("dst", "PUT", "upload") + req.count("dst", "PATCH", "upload")
    gets = req.count("src", "GET", "blob")
    blobs = int(o.facts["blobs"])
    return [
        Check(
            "S5: no blob bytes sent (mounts only)",
            f"{mounted} mounted, {refused} mounts refused, {uploads} blob uploads, "
            f"{gets} blob GETs ({blobs} blobs)",
            uploads == 0 and gets == 0,
        ),
        Check(
            "S5: wall time (context)",
            f"{ratio(o, wall):.2f}× skopeo sync's",
            None,
        ),
    ]


def s4_checks(o: Outcome) -> list[Check]:
    big_rss = o.med(REGPLAN, rss)
    small = [r for r in o.extra.get("regplan 1 MiB", []) if isinstance(r, Run)]
    small_rss = median(rss(r) for r in small)
    layer_mb = float(o.facts["layer bytes"]) / MB
    curl = [s for s in o.extra.get("curl PUT", []) if isinstance(s, ProcessStats)]
    curl_mbps = median(layer_mb / s.wall for s in curl)
    regplan_mbps = median(layer_mb / r.stats.wall for r in o.runs[REGPLAN])
    layer = {k: median(layer_mb / t for t in v if t) for k, v in o.layer_seconds.items()}
    checks = [
        Check("S4: peak RSS ≤ 64 MB", f"{big_rss:.1f} MB", big_rss <= 64),
        Check(
            "S4: ≤ 8 MB above the same copy with a 1 MiB layer",
            f"{big_rss - small_rss:+.1f} MB ({big_rss:.1f} vs {small_rss:.1f} MB)",
            big_rss - small_rss <= 8,
        ),
        Check(
            "S4: throughput ≥ 90 % of a curl PUT into the same registry",
            f"{regplan_mbps:.0f} MB/s = {100 * regplan_mbps / curl_mbps:.0f} % of "
            f"{curl_mbps:.0f} MB/s (whole `regplan once`, start-up and planning included)",
            regplan_mbps >= 0.9 * curl_mbps,
        ),
    ]
    if REGPLAN in layer and "curl PUT" in layer:
        checks.append(
            Check(
                "S4: the layer request alone (target registry's log), same comparison",
                f"{layer[REGPLAN]:.0f} MB/s = {100 * layer[REGPLAN] / layer['curl PUT']:.0f} % "
                f"of curl PUT's {layer['curl PUT']:.0f} MB/s; curl GET|PUT (source → target): "
                f"{layer.get('curl GET|PUT', float('nan')):.0f} MB/s",
                layer[REGPLAN] >= 0.9 * layer["curl PUT"],
            )
        )
    return checks


def scale_checks(points: list[ScalePoint]) -> list[Check]:
    by_tags = {p.tags_per_repo: p for p in points}
    checks = []

    def growth(a: ScalePoint, b: ScalePoint, label: str) -> Check:
        wa, wb = median(wall(r) for r in a.runs), median(wall(r) for r in b.runs)
        ra, rb = (
            median(total_requests(r) for r in a.runs),
            median(total_requests(r) for r in b.runs),
        )
        k = b.tags / a.tags
        return Check(
            label,
            f"{a.tags} → {b.tags} tags (×{k:.1f}): wall ×{wb / wa:.2f} "
            f"({wa:.2f} → {wb:.2f} s), requests ×{rb / ra:.2f}",
            wb / wa <= k * 1.15 and rb / ra <= k * 1.01,
        )

    if 100 in by_tags and 400 in by_tags:
        checks.append(
            growth(by_tags[100], by_tags[400], "No O(n²): 100 → 400 tags per repo is linear")
        )
    if 50 in by_tags and 250 in by_tags:
        checks.append(growth(by_tags[50], by_tags[250], "Planning cost 1k → 5k tags is linear"))
    if len(points) >= 2 and not checks:
        checks.append(growth(points[0], points[-1], "Planning cost grows linearly"))
    return checks


def all_checks(results: Results) -> list[Check]:
    o = results.outcomes
    checks: list[Check] = []
    if "S1" in o:
        checks += s1_checks(o["S1"])
    for key, limit in (("S2", 0.3), ("S3", 0.12), ("S2r", 0.12)):
        if key in o:
            checks += noop_request_checks(o[key])
            checks.append(wall_ratio_check(o[key], limit))
    if "S4" in o:
        checks += s4_checks(o["S4"])
    if "S5" in o:
        checks += s5_checks(o["S5"])
    if results.scale:
        checks += scale_checks(results.scale)
    if results.startup:
        s = results.startup
        checks.append(
            Check(
                "Start-up: `regplan --help` imports only what it needs",
                f"{s.help_wall * 1000:.0f} ms wall ({s.python_wall * 1000:.0f} ms is Python's own "
                f"start), {s.help_import_ms:.0f} ms of imports",
                None,
            )
        )
        checks.append(
            Check(
                "Start-up: no-op `regplan check` of one image",
                f"{s.check.wall * 1000:.0f} ms wall, {s.check_import_ms:.0f} ms of imports, "
                f"{s.check_requests.total} requests",
                None,
            )
        )
    return checks


# -- rendering --------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def headline(results: Results) -> list[str]:
    rows = []
    for key, o in results.outcomes.items():
        if not o.runs[REGPLAN] or not o.runs[SKOPEO]:
            continue
        # each round's pair ran back to back, under the same load: their ratios show the noise
        pairs = zip(o.runs[REGPLAN], o.runs[SKOPEO], strict=False)
        per_round = ", ".join(f"{wall(a) / wall(b):.2f}" for a, b in pairs)
        rows.append(
            [
                f"{key} {o.title}",
                f"**{ratio(o, wall):.2f}×**"
                + (f" ({per_round})" if len(o.runs[REGPLAN]) > 1 else ""),
                f"{o.med(REGPLAN, wall):.2f} / {o.med(SKOPEO, wall):.2f}",
                f"{ratio(o, cpu):.2f}×",
                f"{ratio(o, registry_cpu):.2f}×",
                f"{o.med(REGPLAN, rss):.0f} / {o.med(SKOPEO, rss):.0f}",
                f"{o.med(REGPLAN, total_requests):.0f} / {o.med(SKOPEO, total_requests):.0f}",
                f"{o.med(REGPLAN, moved):.1f} / {o.med(SKOPEO, moved):.1f}",
            ]
        )
    return table(
        [
            "Scenario",
            "wall regplan / skopeo (per round)",
            "wall s (regplan / skopeo)",
            "CPU ratio",
            "registries' CPU ratio",
            "peak RSS MB",
            "HTTP requests",
            "MB moved",
        ],
        rows,
    )


def details(results: Results) -> list[str]:
    rows = []
    for key, o in results.outcomes.items():
        for tool, runs in o.runs.items():
            if not runs:
                continue
            rep = representative(runs)
            src = len(rep.requests.on("src"))
            dst = len(rep.requests.on("dst"))
            notes = sorted({n for r in runs for n in r.notes})
            copied = float(o.facts.get("copied bytes", 0)) / MB
            rows.append(
                [
                    key,
                    tool,
                    fmt_range([wall(r) for r in runs]),
                    f"{median(copied / wall(r) for r in runs):.0f}" if copied else "",
                    fmt_range([cpu(r) for r in runs]),
                    fmt_range([rss(r) for r in runs], 0),
                    f"{median(registry_cpu(r) for r in runs):.2f}",
                    f"{median(moved(r) for r in runs):.1f}",
                    f"{rep.requests.total} ({src} / {dst})",
                    "; ".join(notes) or "",
                ]
            )
    return table(
        [
            "Scenario",
            "tool",
            "wall s, median (min–max)",
            "copy MB/s",
            "CPU s",
            "peak RSS MB",
            "registries' CPU s",
            "MB moved",
            "requests (source / target)",
            "problems",
        ],
        rows,
    )


def breakdown(results: Results) -> list[str]:
    rows = []
    for key, o in results.outcomes.items():
        for tool, runs in o.runs.items():
            if not runs:
                continue
            rep = representative(runs)
            for role in ("src", "dst"):
                kinds = rep.requests.by_kind(role)
                if not kinds:
                    continue
                text = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
                rows.append([key, tool, "source" if role == "src" else "target", text])
    return table(["Scenario", "tool", "registry", "requests (median run)"], rows)


def per_unit(results: Results) -> list[str]:
    rows = []
    for key, o in results.outcomes.items():
        tags = int(o.facts.get("tags", 0)) or 1
        blobs = int(o.facts.get("blobs", 0)) or 1
        for tool, runs in o.runs.items():
            if not runs:
                continue
            req = representative(runs).requests
            rows.append(
                [
                    key,
                    tool,
                    f"{req.total / tags:.2f}",
                    f"{req.manifest_requests() / tags:.2f}",
                    f"{req.count(None, 'GET', 'ping')}",
                    f"{(req.count('dst', 'HEAD', 'blob')) / blobs:.2f}",
                    f"{req.count('dst', 'POST', 'upload') / blobs:.2f}",
                    f"{req.count('dst', 'PATCH', 'upload') / blobs:.2f}",
                    f"{req.count('dst', 'PUT', 'upload') / blobs:.2f}",
                ]
            )
    return table(
        [
            "Scenario",
            "tool",
            "requests / tag",
            "manifest req. / tag",
            "pings",
            "target HEAD blob / blob",
            "POST / blob",
            "PATCH / blob",
            "PUT / blob",
        ],
        rows,
    )


def s4_section(o: Outcome) -> list[str]:
    layer_mb = float(o.facts["layer bytes"]) / MB

    def layer_rate(key: str) -> str:
        seconds = [t for t in o.layer_seconds.get(key, []) if t]
        return fmt_range([layer_mb / t for t in seconds], 0) if seconds else "—"

    rows = []
    for tool in (REGPLAN, SKOPEO):
        runs = o.runs[tool]
        rows.append(
            [
                f"`{tool} {'once' if tool == REGPLAN else 'sync'}`",
                fmt_range([layer_mb / r.stats.wall for r in runs], 0),
                layer_rate(tool),
                fmt_range([rss(r) for r in runs], 1),
            ]
        )
    for label, values in o.extra.items():
        stats = [v.stats if isinstance(v, Run) else v for v in values]
        control = "1 MiB" in label  # the memory control: its MB/s means nothing
        rows.append(
            [
                label
                + (" (file → target)" if label == "curl PUT" else "")
                + (" (source → target)" if label == "curl GET|PUT" else "")
                + (" (memory control)" if control else ""),
                "—" if control else fmt_range([layer_mb / s.wall for s in stats], 0),
                "—" if control else layer_rate(label),
                fmt_range([s.peak_rss / MB for s in stats], 1),
            ]
        )
    return [
        *table(["S4 copy", "MB/s, whole run", "MB/s, layer request", "peak RSS MB"], rows),
        "",
        "*Layer request*: the layer's bytes over the duration of the upload request that "
        "carried them (PUT, or skopeo's PATCH), from the target registry's log: transfer "
        "speed without start-up and planning.",
    ]


def scale_section(points: list[ScalePoint]) -> list[str]:
    rows = []
    for p in points:
        w = median(wall(r) for r in p.runs)
        c = median(cpu(r) for r in p.runs)
        req = median(total_requests(r) for r in p.runs)
        rows.append(
            [
                f"{p.repos} × {p.tags_per_repo}",
                f"{p.tags}",
                fmt_range([wall(r) for r in p.runs]),
                f"{c:.2f}",
                f"{median(rss(r) for r in p.runs):.0f}",
                f"{req:.0f}",
                f"{req / p.tags:.2f}",
                f"{1000 * w / p.tags:.2f}",
            ]
        )
    return table(
        [
            "repos × tags",
            "tags",
            "wall s",
            "CPU s",
            "peak RSS MB",
            "requests",
            "requests / tag",
            "wall ms / tag",
        ],
        rows,
    )


def startup_section(s: Startup) -> list[str]:
    def heaviest(items: list[tuple[str, float]]) -> str:
        return ", ".join(f"{name} {ms:.0f} ms" for name, ms in items)

    return table(
        ["command", "wall ms (median)", "imports ms", "heaviest packages (importtime ms)"],
        [
            ["`python -c pass`", f"{s.python_wall * 1000:.0f}", "", ""],
            [
                "`regplan --help`",
                f"{s.help_wall * 1000:.0f}",
                f"{s.help_import_ms:.0f}",
                heaviest(s.help_heaviest),
            ],
            [
                "`regplan check` (1 image, up to date)",
                f"{s.check.wall * 1000:.0f}",
                f"{s.check_import_ms:.0f}",
                heaviest(s.check_heaviest),
            ],
            ["`skopeo --help`", f"{s.skopeo_help_wall * 1000:.0f}", "", ""],
        ],
    )


# regsync v0.11.5 and regplan 0.1 on the full shape (7,526 steps), as reported with the
# scenario; context for R1, which measures regplan against skopeo in the same run.
R1_REGSYNC = {
    "config validate": "5.1 s",
    "cold once": "567 s, 203,479 requests, RSS 287 MB",
    "no-op once": "19.8 s, 15,052 requests",
}
R1_REGPLAN_BEFORE = {
    "config validate": "12.0 s",
    "cold once": "2,212 s, 114,737 requests, CPU 1,928 s, RSS 380 MB",
    "no-op once": "31.0 s, 9,916 requests, CPU 22.7 s",
}


# The scenario's targets against regsync's figures above (full scale) or per step (any scale).
R1_COLD_WALL_TARGET = 0.7 * 567.0
R1_NOOP_WALL_TARGET = 19.8
R1_CONFIG_TARGET = 3.0
R1_REGSYNC_REQUESTS_PER_IMAGE = 203_479 / 7_526


def _mark(ok: bool) -> str:
    return "✅ met" if ok else "❌ missed"


def r1_targets(r1: R1Result) -> list[list[str]]:
    """One row per target of the scenario: what it asks, what this run measured, met or not.
    Wall-time targets compare with regsync's full-scale run, so they are judged at scale 1."""
    full = r1.scale >= 1.0
    runs = r1.regplan
    rows: list[list[str]] = []
    validate, cold = runs.get("config validate"), runs.get("cold once")
    if validate is not None:
        wall = validate.stats.wall
        rows.append(
            [
                f"config load ≤ {R1_CONFIG_TARGET:g} s (regsync 5.1 s)",
                f"{wall:.1f} s wall, {validate.stats.cpu:.1f} s CPU",
                _mark(wall <= R1_CONFIG_TARGET) if full else "full scale only",
            ]
        )
    if cold is not None:
        per_image = cold.requests.total / r1.steps
        rows += [
            [
                "cold once: regplan's CPU below the registries'",
                f"{cold.stats.cpu:.1f} s vs {cold.registry_cpu:.1f} s",
                _mark(cold.stats.cpu < cold.registry_cpu),
            ],
            [
                f"cold once: fewer requests per image than regsync "
                f"({R1_REGSYNC_REQUESTS_PER_IMAGE:.0f})",
                f"{per_image:.1f}",
                _mark(per_image < R1_REGSYNC_REQUESTS_PER_IMAGE),
            ],
            [
                f"cold once wall ≤ 0.7 × regsync's 567 s = {R1_COLD_WALL_TARGET:.0f} s",
                f"{cold.stats.wall:.0f} s",
                _mark(cold.stats.wall <= R1_COLD_WALL_TARGET) if full else "full scale only",
            ],
            [
                "cold once peak RSS ≤ 300 MB (regsync 287 MB)",
                f"{cold.stats.peak_rss / MB:.0f} MB",
                _mark(cold.stats.peak_rss <= 300 * MB) if full else "full scale only",
            ],
        ]
    for phase in ("no-op once", "no-op plan", "no-op once --missing"):
        run = runs.get(phase)
        if run is None:
            continue
        per_step = run.requests.total / r1.steps
        rows.append([f"{phase}: ≤ 2 requests per step", f"{per_step:.2f}", _mark(per_step <= 2)])
        if phase == "no-op once":
            rows.append(
                [
                    f"no-op once wall ≤ regsync's {R1_NOOP_WALL_TARGET:g} s",
                    f"{run.stats.wall:.1f} s",
                    _mark(run.stats.wall <= R1_NOOP_WALL_TARGET) if full else "full scale only",
                ]
            )
    plan = runs.get("no-op plan")
    if plan is not None and validate is not None:
        # start-up and config load are what `config validate` costs; the rest is planning
        planning = max(0.0, plan.stats.cpu - validate.stats.cpu) * 1000 / r1.steps
        rows.append(
            [
                "no-op plan: planning CPU ≤ 1 ms per step",
                f"{planning:.2f} ms (the plan's CPU less `config validate`'s), "
                f"{plan.stats.cpu * 1000 / r1.steps:.2f} ms with start-up and config load",
                _mark(planning <= 1.0),
            ]
        )
    return rows


def r1_section(r1: R1Result) -> list[str]:
    rows = []
    for phase in PHASES:
        run = r1.regplan.get(phase)
        if run is None:
            continue
        other = r1.skopeo.get(phase)
        rows.append(
            [
                phase,
                f"{run.stats.wall:.1f} s",
                f"{run.stats.cpu:.1f} s",
                f"{run.registry_cpu:.1f} s",
                f"{run.requests.total:,} ({run.requests.total / r1.steps:.2f}/step)",
                f"{run.stats.peak_rss / MB:.0f} MB",
                f"{other.stats.wall:.1f} s, {other.requests.total:,} req" if other else "",
                f"{run.stats.wall / other.stats.wall:.2f}" if other else "",
                R1_REGSYNC.get(phase, ""),
            ]
        )
        if run.stats.returncode != 0 and phase != "no-op plan":
            rows[-1][0] += f" (exit {run.stats.returncode})"
    plan = r1.regplan.get("no-op plan")
    lines = [
        f"Scale {r1.scale:g}: {r1.steps:,} `type: image` steps ({r1.lines:,} lines), "
        f"{r1.sources:,} distinct sources in {r1.repos} repositories on 9 public registry names "
        "mapped by `creds[].hostname` onto 2 local registries; 3 targets, one of them a source "
        "registry; every image a 2-platform OCI index with a per-repository base layer and "
        "256-byte layers. "
        + (
            "skopeo syncs the same images (one `skopeo sync` per source registry and target). "
            if r1.skopeo
            else "skopeo was not run beside it (`--no-skopeo`). "
        )
        + "One round.",
        "",
        *table(
            [
                "phase",
                "regplan wall",
                "regplan CPU",
                "registries' CPU",
                "requests",
                "peak RSS",
                "skopeo sync",
                "wall ratio",
                "regsync, full scale",
            ],
            rows,
        ),
    ]
    if plan is not None:
        lines += [
            "",
            f"No-op plan: {plan.stats.cpu * 1000 / r1.steps:.2f} ms of regplan CPU per step "
            "(start-up included).",
        ]
    targets = r1_targets(r1)
    if targets:
        lines += ["", *table(["target", "measured", ""], targets)]
    lines += [
        "",
        "Before this work, regplan on the full shape: "
        + "; ".join(f"{k} {v}" for k, v in R1_REGPLAN_BEFORE.items())
        + ".",
    ]
    return lines


def r1_shards_section(r: R1ShardsResult) -> list[str]:
    rows = []
    for s in r.runs:
        rows.append(
            [
                str(s.workers),
                f"{s.run.stats.wall:.1f} s",
                f"{s.run.stats.cpu:.1f} s",
                f"{s.run.registry_cpu:.1f} s",
                f"{s.run.requests.total:,}",
                f"{s.actions:,}",
                " / ".join(f"{n:,}" for n in s.per_shard),
                "yes" if s.complete else "**no**",
            ]
        )
    return [
        f"Scale {r.scale:g} ({r.steps:,} steps): one plan, applied cold by N concurrent "
        "`regplan apply --shard i/N` processes into fresh targets. CPU is all N workers "
        "together; on 2 cores the registries' CPU limits the gain, so the table is about the "
        "partition's balance and that nothing is lost (every action applied exactly once, "
        "from the workers' reports).",
        "",
        *table(
            [
                "workers",
                "wall",
                "regplan CPU",
                "registries' CPU",
                "requests",
                "actions",
                "actions per shard",
                "all applied once",
            ],
            rows,
        ),
    ]


# the walk is O(n log n): 8,000 actions within 3 s, 100,000 within 30 s (scaled in between)
WALK_LIMITS = ((8_000, 3.0), (100_000, 30.0))


def walk_limit(actions: int) -> float | None:
    return next((limit for size, limit in WALK_LIMITS if actions <= size * 1.01), None)


def walk_section(points: list[WalkPoint]) -> list[str]:
    rows = []
    for p in points:
        limit = walk_limit(p.actions)
        rows.append(
            [
                f"{p.actions:,}",
                f"{p.seconds:.1f} s",
                f"{p.apply.wall:.1f} s",
                f"{p.apply.cpu:.1f} s",
                f"{p.apply.peak_rss / MB:.0f} MB",
                f"≤ {limit:g} s {mark(p.seconds <= limit)}" if limit else "",
            ]
        )
    return [
        "`regplan apply` of a saved plan whose content reached the target after planning "
        "(OCI Layouts of 10 tiny images each, in /dev/shm): per image a config and a layer "
        "blob found on the target, and a tag written. The applier's own time is the "
        "`Apply complete … in N s` figure; wall and CPU are the whole process.",
        "",
        *table(["actions", "apply (applier)", "wall", "CPU", "peak RSS", "target"], rows),
    ]


def render(results: Results) -> str:
    o = results.outcomes
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results.started))
    opts = results.options
    lines = [
        "# Benchmarks",
        "",
        "Generated by `just bench` (bench/run.py); see bench/README.md for the method. "
        "Ratios are regplan / skopeo sync (below 1: regplan is faster); medians of "
        f"{opts.rounds} round(s) per tool.",
        "",
        f"- Date: {when}; {os.cpu_count()} CPUs ({platform.machine()}, "
        f"{platform.system()} {platform.release()}); benchmark took {results.seconds / 60:.1f} min",
        f"- Load average before / after: {results.load_before[0]:.2f} / "
        f"{results.load_after[0]:.2f}",
        f"- {tool_versions()}; regplan `defaults.parallel: {opts.parallel}`; skopeo sync "
        "`--all --preserve-digests` (S2r: `--all`)",
        f"- {NOISE_NOTE}",
        "",
        "## Headline",
        "",
        *headline(results),
        "",
        "## Targets",
        "",
        *table(
            ["target", "measured", ""],
            [[c.target, c.measured, mark(c.met)] for c in all_checks(results)],
        ),
        "",
        "## Per tool",
        "",
        *details(results),
        "",
        "## Requests per tag and per blob",
        "",
        "Both registries, from their access logs (the run with the median wall time).",
        "",
        *per_unit(results),
        "",
        *breakdown(results),
    ]
    if "S4" in o:
        lines += ["", "## S4: one big blob", "", *s4_section(o["S4"])]
    if results.scale:
        lines += [
            "",
            "## Planning cost (`regplan plan`, up-to-date mirror)",
            "",
            *scale_section(results.scale),
        ]
    if results.startup:
        lines += ["", "## Start-up", "", *startup_section(results.startup)]
    if results.walk:
        lines += ["", "## The apply walk", "", *walk_section(results.walk)]
    if results.r1:
        lines += ["", "## R1: a real-world-shaped mirror config", "", *r1_section(results.r1)]
    if results.r1_shards:
        lines += [
            "",
            "## R1 applied by N workers (sharded apply)",
            "",
            *r1_shards_section(results.r1_shards),
        ]
    lines += ["", "## Scenarios", ""]
    for key, outcome in o.items():
        facts = ", ".join(
            f"{k} {v / MB:.1f} MB" if "bytes" in k and isinstance(v, int) else f"{k} {v}"
            for k, v in outcome.facts.items()
        )
        lines.append(f"- **{key}** {outcome.title} ({facts})")
    return "\n".join(lines) + "\n"
