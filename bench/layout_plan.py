"""Planning from a 1,000-tag OCI Layout (cold: empty target; no-op: target up to date).

    python -m bench.layout_plan [--tags N] [--rounds R]

Not part of `just bench`'s report: a standalone measurement of the layout backend (no
registry, no skopeo). It prints wall time, regplan's CPU and peak RSS per run; on a loaded
machine read the CPU column.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench.measure import run_process
from bench.tools import regplan_argv
from tests.concurrency import layouts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.layout_plan")
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="regplan-layout-bench-"))
    try:
        source, target = work / "source", work / "target"
        layouts.make_source(source, [f"t{i}" for i in range(args.tags)], layer_size=1024)
        shutil.copytree(source, target)  # the up-to-date target for the no-op case
        for name, dst in (("cold", work / "empty"), ("no-op", target)):
            config = work / f"{name}.yml"
            config.write_text(
                "version: 1\nsync:\n"
                f"  - source: ocidir://{source}\n    target: ocidir://{dst}\n"
                "    type: repository\n"
            )
            for i in range(args.rounds):
                stats = run_process(regplan_argv("plan", config), log=work / f"{name}-{i}.log")
                print(
                    f"{name:6} {args.tags} tags: wall {stats.wall:.2f} s, "
                    f"CPU {stats.cpu:.2f} s, RSS {stats.peak_rss / 1e6:.0f} MB, "
                    f"exit {stats.returncode}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
