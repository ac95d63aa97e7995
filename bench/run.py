"""regplan against skopeo sync on the same local registries: `just bench [--quick] [--only ...]`.

Only a full run (every scenario, full size) writes docs/benchmarks.md; other runs print the report
(and write it where --out says), so a partial run never replaces the published numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and `tests.servers` importable
    sys.path.insert(0, str(ROOT))

from bench.realworld import run_r1, run_r1_shards  # noqa: E402
from bench.report import Results, render  # noqa: E402
from bench.scenarios import Bench, Options, Outcome  # noqa: E402

SCENARIOS = ("startup", "S1", "S2", "S2r", "S5", "S3", "plan", "S4", "R1", "R1-shards", "walk")
QUICK = Options(
    rounds=1,
    s3_repos=5,
    s3_tags=20,
    scale_tags=(20, 80),
    big_mib=64,
    startup_repeats=3,
    r1_scale=0.02,
    walk_actions=(2_000, 8_000),
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="just bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round, small S3 and S4")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated scenarios out of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per tool (default 3; --quick 1)")
    parser.add_argument("--parallel", type=int, default=4, help="regplan defaults.parallel")
    parser.add_argument("--big-mib", type=int, help="S4 layer size (default 512; --quick 64)")
    parser.add_argument(
        "--scale", type=float, help="R1's size, 1.0 = 7,500 steps (default 0.1; --quick 0.02)"
    )
    parser.add_argument(
        "--no-skopeo",
        action="store_true",
        help="R1 without the skopeo sync beside it (for full scale, where skopeo takes hours)",
    )
    parser.add_argument("--out", type=Path, help="write the report here too")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    wanted = {s.strip().lower() for s in args.only.split(",") if s.strip()}
    unknown = wanted - {s.lower() for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {','.join(SCENARIOS)}")
    args.selected = [s for s in SCENARIOS if not wanted or s.lower() in wanted]
    return args


def options_from(args: argparse.Namespace) -> Options:
    base = QUICK if args.quick else Options()
    return Options(
        rounds=args.rounds or base.rounds,
        parallel=args.parallel,
        s3_repos=base.s3_repos,
        s3_tags=base.s3_tags,
        scale_tags=base.scale_tags,
        big_mib=args.big_mib or base.big_mib,
        startup_repeats=base.startup_repeats,
        r1_scale=args.scale or base.r1_scale,
        walk_actions=base.walk_actions,
        r1_skopeo=not args.no_skopeo,
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for tool in ("docker-registry", "skopeo", "curl"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found (apt-get install docker-registry skopeo curl)")
            return 2
    options = options_from(args)
    workdir = Path(tempfile.mkdtemp(prefix="regplan-bench-"))
    print(f"bench: work directory {workdir}; scenarios {','.join(args.selected)}", flush=True)
    started = time.time()
    load_before = os.getloadavg()
    bench = Bench(workdir, options)
    # Cache regplan's bytecode first, as an installed package has it (see Bench.env).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "regplan")],
        env=bench.env,
        check=False,
    )
    outcomes: dict[str, Outcome] = {}
    scale, startup, r1, walk = [], None, None, []
    r1_shards = None
    steps = {
        "S1": bench.s1_cold,
        "S2": bench.s2_noop,
        "S2r": bench.s2_referrers,
        "S3": bench.s3_scale_noop,
        "S4": bench.s4_big_blob,
        "S5": bench.s5_same_registry,
    }
    try:
        for key in args.selected:
            print(f"bench: {key}", flush=True)
            if key == "startup":
                startup = bench.startup()
            elif key == "plan":
                scale = bench.planning_scale()
            elif key == "R1":
                r1 = run_r1(bench, options.r1_scale)
            elif key == "R1-shards":
                r1_shards = run_r1_shards(bench, options.r1_scale)
            elif key == "walk":
                walk = bench.walk_points()
            else:
                outcomes[key] = steps[key]()
    finally:
        bench.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results = Results(
        options=options,
        started=started,
        outcomes=outcomes,
        scale=scale,
        startup=startup,
        r1=r1,
        r1_shards=r1_shards,
        walk=walk,
        load_before=load_before,
        load_after=os.getloadavg(),
        seconds=time.time() - started,
    )
    report = render(results)
    print()
    print(report)
    full_run = (
        not args.quick
        and not args.no_skopeo
        and not args.only
        and args.big_mib is None
        and args.scale is None
    )
    targets = [args.out] if args.out else []
    if full_run:
        targets.append(ROOT / "docs" / "benchmarks.md")
    if args.keep:
        targets.append(workdir / "benchmarks.md")
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report)
        print(f"bench: wrote {path}")
    if args.keep:
        print(f"bench: kept {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
