"""The apply walk at scale: `regplan apply` of a saved plan of N actions whose content the
target already has (it arrived after planning), so nearly all the time is the walk itself:
blob HEADs that find the blob, manifest pushes, tag writes. OCI Layouts (one per repository of
10 images) keep the I/O cheap and the registries out of it."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.measure import ProcessStats, run_process
from bench.tools import regplan_binary

IMAGES_PER_REPO = 10
ACTIONS_PER_IMAGE = 3  # config blob, layer blob, tag (with its manifest)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_APPLIED = re.compile(r"^Apply complete: .* in ([\d.]+)s", re.MULTILINE)


@dataclass(frozen=True)
class WalkPoint:
    actions: int
    apply: ProcessStats
    seconds: float  # the applier's own time, as `apply` reports it


def put_blob(root: Path, data: bytes) -> str:
    """Write `data` into the layout at `root` as a blob; its digest."""
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return "sha256:" + digest


def _layout(root: Path, entries: list[dict[str, object]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
    (root / "index.json").write_text(json.dumps({**index, "manifests": entries}))


def make_layouts(base: Path, repos: int) -> Path:
    """`repos` source layouts of tiny images and empty targets; returns the config."""
    lines = ["version: 1", "defaults:", "  parallel: 4", "sync:"]
    for r in range(repos):
        src, dst = base / "src" / f"repo{r}", base / "dst" / f"repo{r}"
        entries: list[dict[str, object]] = []
        for i in range(IMAGES_PER_REPO):
            layer = f"layer {r} {i}".encode() * 8
            diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
            config = json.dumps(
                {"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": [diff_id]}}
            ).encode()
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": put_blob(src, config),
                        "size": len(config),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": put_blob(src, layer),
                            "size": len(layer),
                        }
                    ],
                }
            ).encode()
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": put_blob(src, manifest),
                    "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": f"t{i}"},
                }
            )
        _layout(src, entries)
        _layout(dst, [])
        lines += [
            f"  - source: ocidir://{src}",
            f"    target: ocidir://{dst}",
            "    type: repository",
        ]
    config_file = base / "walk.yml"
    config_file.write_text("\n".join(lines) + "\n")
    return config_file


def prepare_walk(base: Path, actions: int, logs: Path, env: dict[str, str]) -> Path:
    """The plan of about `actions` actions, and targets that already hold its content."""
    repos = max(1, actions // (IMAGES_PER_REPO * ACTIONS_PER_IMAGE))
    shutil.rmtree(base, ignore_errors=True)
    config = make_layouts(base, repos)
    plan = base / "walk.plan"
    run_process([regplan_binary(), "plan", "-c", str(config), "-o", str(plan)], log=logs, env=env)
    for src in (base / "src").iterdir():  # the content reaches the target after planning
        shutil.copytree(src / "blobs", base / "dst" / src.name / "blobs", dirs_exist_ok=True)
    return plan


def apply_walk(plan: Path, logs: Path, env: dict[str, str]) -> WalkPoint:
    planned = len(json.loads(plan.read_bytes())["actions"])
    stats = run_process([regplan_binary(), "apply", str(plan)], log=logs, env=env)
    found = _APPLIED.findall(logs.read_text())
    seconds = float(found[-1]) if found else float("nan")
    return WalkPoint(planned, stats, seconds)


def measure_walk(base: Path, actions: int, logs: Path, env: dict[str, str]) -> WalkPoint:
    point = apply_walk(prepare_walk(base, actions, logs, env), logs, env)
    shutil.rmtree(base, ignore_errors=True)
    return point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("actions", nargs="*", type=int, default=[8_000, 100_000])
    parser.add_argument("--workdir", type=Path, default=Path("/dev/shm/regplan-walk"))
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the layouts and the plan (applied once) for profiling `regplan apply`",
    )
    args = parser.parse_args()
    for actions in args.actions:
        base = args.workdir / str(actions)
        logs = args.workdir / f"walk-{actions}.log"
        base.mkdir(parents=True, exist_ok=True)
        point = apply_walk(
            prepare_walk(base, actions, logs, dict(os.environ)), logs, dict(os.environ)
        )
        print(
            f"{point.actions} actions: apply {point.seconds:.1f} s, wall {point.apply.wall:.1f} s, "
            f"CPU {point.apply.cpu:.1f} s, peak RSS {point.apply.peak_rss / 1e6:.0f} MB, "
            f"exit {point.apply.returncode}",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
