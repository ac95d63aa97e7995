"""The bad-input corpus: hostile or broken configs, plan files, manifests, OCI Layouts and
references, each run through the real command line.

Every case must: exit 1; print one line that names where the problem is (file:line, or the
step/reference/plan file) with no Python traceback; and write nothing to any registry (the
real target's access log shows no write, the hostile source refuses and records writes, and
no OCI Layout target appears). Config cases here complement tests/config/test_cli.py (which
owns the 28 malformed configs run through `config validate`): they go through `plan`/`once`
and cover what that corpus does not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from regplan.plan.planfile import integrity_of
from tests.badinput.hostile import HostileRegistry, Repo, Served, beside_real_registries
from tests.regplan_cli import Result, plain_creds, regplan, sync_step
from tests.reliability.images import make_images
from tests.servers.distribution import RegistryServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("badinput")]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MAX_MANIFEST = 4 * 1024 * 1024
WRITES = ("PUT", "POST", "PATCH", "DELETE")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class World:
    source: RegistryServer  # real, holds good:v1 and good:v2
    target: RegistryServer  # real, must never be written
    hostile: HostileRegistry
    base: Path  # module work dir: the good plan lives here
    good_digest: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("badinput")
    servers = beside_real_registries(base, "source", seed=3, images=2)
    with servers as (source, target, hostile, made):
        yield World(source, target, hostile, base, made.tags["v1"])


def step(w: World, source: str, target: str = "", kind: str = "image", extra: str = "") -> str:
    target = target or f"{w.target.host}/out:v1"
    return (
        plain_creds(w.source, w.target, w.hostile)
        + "defaults:\n  skipDockerConfig: true\nsync:\n"
        + sync_step(source, target, kind)
        + extra
    )


# A case builds its inputs in `d` and returns (argv, substrings the error line must contain).
Case = Callable[[World, Path], tuple[list[str], list[str]]]


def config_case(text: Callable[[World], str], *expected: str, command: str = "plan") -> Case:
    """A config run through `plan` (or `once`); `{cfg}` in `expected` is the config path."""

    def build(w: World, d: Path) -> tuple[list[str], list[str]]:
        cfg = d / "regplan.yml"
        cfg.write_text(text(w))
        return [command, "-c", str(cfg)], [e.replace("{cfg}", str(cfg)) for e in expected]

    return build


# Loopback only: a config that unexpectedly loads must not reach out to docker.io.
GOOD_STEP = (
    "sync:\n  - source: 127.0.0.1:1/alpine\n    target: 127.0.0.1:1/mirror\n    type: image\n"
)
REPO_STEP = GOOD_STEP.replace("type: image", "type: repository")

CONFIG_CASES: dict[str, Case] = {
    "yaml tab indentation": config_case(
        lambda w: "sync:\n\t- source: alpine\n", "{cfg}:2", "tab"),
    "yaml unclosed quote": config_case(
        lambda w: "sync:\n  - source: 'alpine\n    target: x\n", "{cfg}:"),
    "yaml top level is a list": config_case(lambda w: "- sync\n- creds\n", "{cfg}:1"),
    "yaml not a document": config_case(lambda w: "{{{{\n", "{cfg}:2"),
    "yaml binary garbage": config_case(lambda w: "\x00\x01\x02sync", "{cfg}"),
    "sync is a mapping": config_case(lambda w: "sync:\n  source: alpine\n", "{cfg}:2", "sync"),
    "parallel not a number": config_case(
        lambda w: "defaults:\n  parallel: many\n" + GOOD_STEP, "{cfg}:2", "parallel"),
    "creds is a string": config_case(lambda w: "creds: nope\n" + GOOD_STEP, "{cfg}:1", "creds"),
    "allow is a mapping": config_case(
        lambda w: REPO_STEP + "    tags:\n      allow: {a: b}\n", "{cfg}:6", "allow"),
    "unknown defaults key": config_case(
        lambda w: "defaults:\n  paralel: 2\n" + GOOD_STEP, "{cfg}:2", "paralel", "parallel"),
    "unknown tags key": config_case(
        lambda w: REPO_STEP + "    tags:\n      alow: [a]\n", "{cfg}:6", "alow", "allow"),
    "unknown ratelimit key": config_case(
        lambda w: GOOD_STEP + "    ratelimit:\n      minimum: 5\n", "{cfg}:6", "minimum"),
    "bad regex in repos": config_case(
        lambda w: "sync:\n  - source: r.example.org\n    target: 127.0.0.1:1\n"
        "    type: registry\n    repos:\n      allow: ['[a-']\n", "{cfg}:6", "[a-"),
    "regex nested repetition": config_case(
        lambda w: REPO_STEP + "    tags:\n      deny: ['a**']\n", "{cfg}:6", "a**"),
    "regex lookahead (not RE2)": config_case(
        lambda w: REPO_STEP + "    tags:\n      allow: ['v(?=1)']\n", "{cfg}:6", "v(?=1)"),
    "regex backreference (not RE2)": config_case(
        lambda w: REPO_STEP + "    tags:\n      allow: ['(a)\\1']\n", "{cfg}:6"),
    "regex too large (finishes fast)": config_case(
        lambda w: REPO_STEP + "    tags:\n      allow: ['((((a{100}){100}){100}){100})']\n",
        "{cfg}:6"),
    "semver range garbage": config_case(
        lambda w: REPO_STEP + "    tags:\n      semverRange: ['>=1.0 <<2']\n", "{cfg}:6",
        ">=1.0 <<2"),
    "semver range empty operator": config_case(
        lambda w: REPO_STEP + "    tags:\n      semverRange: ['>= ']\n", "{cfg}:6"),
    "cron minute out of range": config_case(
        lambda w: GOOD_STEP + "    schedule: '61 * * * *'\n", "{cfg}:5", "61 * * * *"),
    "cron three fields": config_case(
        lambda w: GOOD_STEP + "    schedule: '* * *'\n", "{cfg}:5", "* * *"),
    "cron @every bad duration": config_case(
        lambda w: GOOD_STEP + "    schedule: '@every 1x'\n", "{cfg}:5", "1x"),
    "cron unknown descriptor": config_case(
        lambda w: "defaults:\n  schedule: '@fortnightly'\n" + GOOD_STEP, "{cfg}:2",
        "@fortnightly"),
    "duration in words": config_case(
        lambda w: GOOD_STEP + "    ratelimit:\n      retry: 5 minutes\n", "{cfg}:6", "5 minutes"),
    "duration unknown unit": config_case(
        lambda w: "defaults:\n  cacheTime: 1y\n" + GOOD_STEP, "{cfg}:2", "1y"),
    "duration credExpire negative sign only": config_case(
        lambda w: "creds:\n  - registry: r.example.org\n    credExpire: '-'\n" + GOOD_STEP,
        "{cfg}:3"),
    "template unclosed action": config_case(
        lambda w: GOOD_STEP.replace("127.0.0.1:1/mirror", "'127.0.0.1:1/{{ .Sync.Source'"),
        "{cfg}:3", "template"),
    "template unknown function": config_case(
        lambda w: GOOD_STEP + "    backup: '{{ nope .Ref.Tag }}'\n", "{cfg}:5", "nope"),
    # `file` gives "" for an unreadable file (regsync's documented behaviour): the reference
    # it was meant to complete is then invalid, and that is reported where the template is
    "template reads a missing file": config_case(
        lambda w: GOOD_STEP.replace(
            "127.0.0.1:1/mirror", "'127.0.0.1:1/{{ file \"/nonexistent/regplan-repo\" }}'"),
        "{cfg}:3", "invalid reference"),
    "template env with two args": config_case(
        lambda w: "creds:\n  - registry: r.example.org\n    user: '{{ env \"A\" \"B\" }}'\n"
        + GOOD_STEP, "{cfg}:3"),
    "reference uppercase repository": config_case(
        lambda w: GOOD_STEP.replace("127.0.0.1:1/alpine\n", "127.0.0.1:1/Alpine/UPPER\n"),
        "{cfg}:2", "Alpine/UPPER"),
    "reference bad digest": config_case(
        lambda w: GOOD_STEP.replace("127.0.0.1:1/alpine\n", "127.0.0.1:1/alpine@sha256:xyz\n"),
        "{cfg}:2", "alpine@sha256:xyz"),
    "reference empty target": config_case(
        lambda w: GOOD_STEP.replace("127.0.0.1:1/mirror", "''"), "{cfg}:3"),
    "reference double slash": config_case(
        lambda w: GOOD_STEP.replace("127.0.0.1:1/mirror", "127.0.0.1:1//alpine"),
        "{cfg}:3", "127.0.0.1:1//alpine"),
    "reference tag too long": config_case(
        lambda w: GOOD_STEP.replace("127.0.0.1:1/mirror", "127.0.0.1:1/mirror:" + "t" * 129),
        "{cfg}:3"),
    "reference ocidir with a tag for a repository": config_case(
        lambda w: REPO_STEP.replace("127.0.0.1:1/mirror", "ocidir://out:v1"), "{cfg}:3"),
    "version not a number": config_case(
        lambda w: "version: one\n" + GOOD_STEP, "{cfg}:1", "version"),
    "version 2 through once": config_case(
        lambda w: "version: 2\n" + GOOD_STEP, "{cfg}:1", "version 2", command="once"),
    "sync list null through once": config_case(
        lambda w: "version: 1\nsync:\n# nothing\n", "{cfg}", "sync", command="once"),
}  # fmt: skip


# -- plan files --------------------------------------------------------------------------------


def good_plan(w: World, d: Path) -> tuple[Path, Path, dict]:
    """A copy of the module's plan of good:v1 -> target/out:v1 (made once), its config, and
    its parsed body. The plan names the module's config, which no case changes."""
    cfg, made = w.base / "regplan.yml", w.base / "plan.json"
    if not made.exists():
        cfg.write_text(step(w, f"{w.source.host}/good:v1"))
        result = regplan("plan", "-c", str(cfg), "-o", str(made), cwd=w.base)
        assert result.code == 0, str(result)
    plan = d / "plan.json"
    plan.write_bytes(made.read_bytes())
    return cfg, plan, orjson.loads(plan.read_bytes())


def rewrite(plan: Path, body: dict, *, reseal: bool) -> None:
    """Write a modified plan; `reseal` recomputes its integrity (a crafted, not a corrupt, file)."""
    body = dict(body)
    if reseal:
        body.pop("integrity", None)
        body["integrity"] = integrity_of(body)
    plan.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))


def plan_case(edit: Callable[[Path, Path, dict], None], *expected: str,
              command: str = "apply") -> Case:  # fmt: skip
    """`edit(config, plan, body)` damages the copied plan; a config it writes into the case's
    directory is passed with -c."""

    def build(w: World, d: Path) -> tuple[list[str], list[str]]:
        cfg, plan, body = good_plan(w, d)
        edit(cfg, plan, body)
        other = d / "regplan.yml"
        args = [command, str(plan)] + (["-c", str(other)] if other.exists() else [])
        return args, [e.replace("{plan}", str(plan)) for e in expected]

    return build


def _truncate(cfg: Path, plan: Path, body: dict) -> None:
    data = plan.read_bytes()
    plan.write_bytes(data[: len(data) // 2])


def _tamper_digest(cfg: Path, plan: Path, body: dict) -> None:
    action = body["actions"][-1]
    action["digest"] = "sha256:" + "1" * 64
    rewrite(plan, body, reseal=False)


def _tamper_manifest(cfg: Path, plan: Path, body: dict) -> None:
    action = next(a for a in body["actions"] if a.get("manifest"))
    raw = base64.b64decode(action["manifest"])
    action["manifest"] = base64.b64encode(raw.replace(b"layers", b"Layers")).decode()
    rewrite(plan, body, reseal=False)


def _crafted_manifest(cfg: Path, plan: Path, body: dict) -> None:
    """Integrity recomputed, but a pinned manifest no longer matches its digest."""
    action = next(a for a in body["actions"] if a["kind"] == "tag")
    raw = base64.b64decode(action["manifest"])
    action["manifest"] = base64.b64encode(raw + b" ").decode()
    rewrite(plan, body, reseal=True)


def _version(major: str) -> Callable[[Path, Path, dict], None]:
    def edit(cfg: Path, plan: Path, body: dict) -> None:
        body["format_version"] = major
        rewrite(plan, body, reseal=True)

    return edit


def _drop(key: str) -> Callable[[Path, Path, dict], None]:
    def edit(cfg: Path, plan: Path, body: dict) -> None:
        body.pop(key)
        rewrite(plan, body, reseal=key != "integrity")

    return edit


def _other_config(cfg: Path, plan: Path, body: dict) -> None:
    changed = cfg.read_text().replace("type: image", "type: image\n    fastCopy: true")
    (plan.parent / "regplan.yml").write_text(changed)


def _unknown_dependency(cfg: Path, plan: Path, body: dict) -> None:
    body["actions"][-1]["depends_on"] = ["a999"]
    rewrite(plan, body, reseal=True)


def _unknown_kind(cfg: Path, plan: Path, body: dict) -> None:
    body["actions"][-1]["kind"] = "teleport"
    rewrite(plan, body, reseal=True)


def _actions_not_a_list(cfg: Path, plan: Path, body: dict) -> None:
    body["actions"] = {"a1": 1}
    rewrite(plan, body, reseal=True)


def _write(content: bytes) -> Callable[[Path, Path, dict], None]:
    def edit(cfg: Path, plan: Path, body: dict) -> None:
        plan.write_bytes(content)

    return edit


def _missing(cfg: Path, plan: Path, body: dict) -> None:
    plan.unlink()


PLAN_CASES: dict[str, Case] = {
    "plan truncated": plan_case(_truncate, "{plan}", "invalid JSON"),
    "plan truncated (show)": plan_case(_truncate, "{plan}", "invalid JSON", command="show"),
    "plan empty file": plan_case(_write(b""), "{plan}"),
    "plan binary garbage": plan_case(_write(bytes(range(256))), "{plan}"),
    "plan is a JSON list": plan_case(_write(b"[1, 2]"), "{plan}", "not a plan file"),
    "plan missing file": plan_case(_missing, "{plan}"),
    "plan tampered digest": plan_case(_tamper_digest, "{plan}", "integrity"),
    "plan tampered manifest bytes": plan_case(_tamper_manifest, "{plan}", "integrity"),
    "plan integrity removed": plan_case(_drop("integrity"), "{plan}", "integrity"),
    "plan unknown major version": plan_case(_version("3.0"), "{plan}", "3.0"),
    "plan version not a number": plan_case(_version("one"), "{plan}", "format_version"),
    "plan without format_version": plan_case(_drop("format_version"), "{plan}"),
    "plan without actions key": plan_case(_drop("actions"), "{plan}", "actions"),
    "plan actions not a list": plan_case(_actions_not_a_list, "{plan}"),
    "plan for a different config": plan_case(_other_config, "{plan}", "different config"),
    "plan crafted manifest not matching digest": plan_case(_crafted_manifest, "out:v1", "digest"),
    "plan action with unknown dependency": plan_case(_unknown_dependency, "a999"),
    "plan action of unknown kind": plan_case(_unknown_kind, "teleport"),
}


# -- manifests from a hostile source ------------------------------------------------------------


def manifest_case(served: Callable[[], dict[str, Served]], *expected: str) -> Case:
    """Serve `served` as the hostile repository `<case>`, run `once` from its `v1`."""

    def build(w: World, d: Path) -> tuple[list[str], list[str]]:
        name = f"case{len(w.hostile.repos)}"
        w.hostile.repos[name] = Repo(manifests=served())
        cfg = d / "regplan.yml"
        cfg.write_text(step(w, f"{w.hostile.host}/{name}:v1", f"{w.target.host}/{name}:v1"))
        return ["once", "-c", str(cfg)], [f"{name}", *expected]

    return build


def _layer_manifest(extra: dict | None = None) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(b"{}"), "size": 2},
        "layers": [],
    }  # fmt: skip
    body.update(extra or {})
    return json.dumps(body).encode()


def _oversized() -> dict[str, Served]:
    pad = "x" * (MAX_MANIFEST + 10)
    return {"v1": Served(_layer_manifest({"annotations": {"pad": pad}}), OCI_MANIFEST)}


def _oversized_chunked() -> dict[str, Served]:
    served = _oversized()["v1"]
    served.length = -1
    return {"v1": served}


def _self_index() -> dict[str, Served]:
    """An index listing itself: impossible with honest digests, so the server lies — it serves
    the same index under the digest it claims for itself, and under the tag."""
    claimed = "sha256:" + "ab" * 32
    body = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": claimed, "size": 200}],
    }).encode()  # fmt: skip
    lie = Served(body, OCI_INDEX, digest=claimed)
    return {"v1": lie, claimed: lie}


def _index_cycle_two() -> dict[str, Served]:
    """Two indexes each listing the other (both lying about their digests)."""
    da, db = "sha256:" + "a1" * 32, "sha256:" + "b2" * 32

    def index(child: str) -> bytes:
        return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_INDEX, "digest": child, "size": 150}]}).encode()  # fmt: skip

    a, b = Served(index(db), OCI_INDEX, digest=da), Served(index(da), OCI_INDEX, digest=db)
    return {"v1": a, da: a, db: b}


MANIFEST_CASES: dict[str, Case] = {
    "manifest invalid JSON": manifest_case(
        lambda: {"v1": Served(b'{"schemaVersion": 2, "mediaType": ', OCI_MANIFEST)},
        "invalid JSON"),
    "manifest is a JSON array": manifest_case(
        lambda: {"v1": Served(b"[1, 2, 3]", OCI_MANIFEST)}, "JSON object"),
    "manifest over 4 MiB": manifest_case(_oversized, "limit"),
    "manifest over 4 MiB, chunked": manifest_case(_oversized_chunked, "limit"),
    "manifest of unknown media type": manifest_case(
        lambda: {"v1": Served(_layer_manifest({"mediaType": "application/x-evil"}),
                              "application/x-evil")}, "application/x-evil"),
    "manifest bytes not matching the digest": manifest_case(
        lambda: {"v1": Served(_layer_manifest(), OCI_MANIFEST, digest="sha256:" + "0" * 64)},
        "digest"),
    "manifest with a path-like layer digest": manifest_case(
        lambda: {"v1": Served(_layer_manifest({"layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar",
             "digest": "sha256:../../../etc/passwd", "size": 1}]}), OCI_MANIFEST)},
        "sha256:../../../etc/passwd"),
    "manifest with a negative layer size": manifest_case(
        lambda: {"v1": Served(_layer_manifest({"layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar",
             "digest": sha(b"x"), "size": -5}]}), OCI_MANIFEST)}, "size"),
    "manifest config without digest": manifest_case(
        lambda: {"v1": Served(_layer_manifest({"config": {"mediaType": "a/b", "size": 2}}),
                              OCI_MANIFEST)}, "digest"),
    "index listing itself": manifest_case(_self_index, "digest"),
    "index cycle of two": manifest_case(_index_cycle_two, "digest"),
}  # fmt: skip


# -- OCI Layouts --------------------------------------------------------------------------------


# Layouts whose damage only shows when a blob is copied: blobs that were fine may already have
# landed in the target layout (content only), but no tag may be written.
COPY_TIME = {"layout layer blob missing", "layout layer bytes not matching"}


def layout_case(damage: Callable[[Path, World], None], *expected: str) -> Case:
    """A good one-image layout as `ocidir://src`, damaged, mirrored to an OCI Layout target."""

    def build(w: World, d: Path) -> tuple[list[str], list[str]]:
        src = d / "src"
        make_images(src, seed=5, images=1, layers=1, index_every=0)
        damage(src, w)
        cfg = d / "regplan.yml"
        cfg.write_text(
            "defaults:\n  skipDockerConfig: true\nsync:\n"
            f"  - source: ocidir://{src}:v1\n    target: ocidir://{d / 'out'}:v1\n    type: image\n"
        )
        return ["once", "-c", str(cfg)], ["src", *expected]

    return build


def _index(src: Path) -> dict:
    return json.loads((src / "index.json").read_text())


def _set_index(src: Path, index: dict) -> None:
    (src / "index.json").write_text(json.dumps(index))


def _point_outside(src: Path, w: World) -> None:
    index = _index(src)
    index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    _set_index(src, index)


def _blob_symlink(src: Path, w: World) -> None:
    """The manifest blob replaced by a symlink to a copy outside the layout (same bytes)."""
    digest = _index(src)["manifests"][0]["digest"]
    blob = src / "blobs" / "sha256" / digest[7:]
    outside = src.parent / "outside-blob"
    outside.write_bytes(blob.read_bytes())
    blob.unlink()
    blob.symlink_to(outside)


def _index_symlink(src: Path, w: World) -> None:
    outside = src.parent / "outside-index.json"
    outside.write_bytes((src / "index.json").read_bytes())
    (src / "index.json").unlink()
    (src / "index.json").symlink_to(outside)


def _missing_blob(src: Path, w: World) -> None:
    digest = _index(src)["manifests"][0]["digest"]
    (src / "blobs" / "sha256" / digest[7:]).unlink()


def _missing_layer(src: Path, w: World) -> None:
    digest = _index(src)["manifests"][0]["digest"]
    manifest = json.loads((src / "blobs" / "sha256" / digest[7:]).read_bytes())
    layer = manifest["layers"][0]["digest"]
    (src / "blobs" / "sha256" / layer[7:]).unlink()


def _blob_wrong_bytes(src: Path, w: World) -> None:
    digest = _index(src)["manifests"][0]["digest"]
    manifest = json.loads((src / "blobs" / "sha256" / digest[7:]).read_bytes())
    layer = src / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    data = bytearray(layer.read_bytes())
    data[0] ^= 0xFF
    layer.write_bytes(bytes(data))


def _index_not_json(src: Path, w: World) -> None:
    (src / "index.json").write_text("{not json")


def _layout_version(src: Path, w: World) -> None:
    (src / "oci-layout").write_text('{"imageLayoutVersion": "9.9.9"}')


LAYOUT_CASES: dict[str, Case] = {
    "layout index points outside (../)": layout_case(_point_outside, "../"),
    "layout blob is a symlink out": layout_case(_blob_symlink),
    "layout index.json is a symlink": layout_case(_index_symlink, "symlink"),
    "layout index points at a missing blob": layout_case(_missing_blob),
    "layout layer blob missing": layout_case(_missing_layer),
    "layout layer bytes not matching": layout_case(_blob_wrong_bytes, "digest"),
    "layout index.json not JSON": layout_case(_index_not_json, "index.json"),
    "layout unknown layout version": layout_case(_layout_version, "9.9.9"),
}

CASES: dict[str, Case] = {**CONFIG_CASES, **PLAN_CASES, **MANIFEST_CASES, **LAYOUT_CASES}


def error_lines(result: Result) -> list[str]:
    return [
        line
        for line in result.stderr.splitlines()
        if line.startswith("regplan: ") or "level=ERROR" in line
    ]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(world: World, tmp_path: Path, name: str) -> None:
    args, expected = CASES[name](world, tmp_path)
    world.target.clear_requests()
    writes_before = len(world.hostile.writes)
    result = regplan(*args, cwd=tmp_path, timeout=60)  # a hang fails by this timeout
    assert result.code == 1, str(result)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, str(result)
    assert "internal error" not in result.stderr, str(result)
    lines = error_lines(result)
    assert lines, str(result)
    first = lines[0]
    missing = [e for e in expected if e not in first]
    assert not missing, f"{missing} not in the first error line:\n{first}\n\n{result}"
    if first.startswith("regplan: error:"):
        assert sum(1 for line in lines if line.startswith("regplan: error:")) == 1, str(result)
    writes = [f"{e.method} {e.path}" for e in world.target.requests() if e.method in WRITES]
    assert writes == [], "the target registry was written"
    assert world.hostile.writes[writes_before:] == []
    out = tmp_path / "out"
    if name in COPY_TIME and (out / "index.json").exists():
        assert json.loads((out / "index.json").read_text())["manifests"] == [], "a tag was written"
    else:
        assert not out.exists(), "an OCI Layout target was created"


def test_corpus_size() -> None:
    assert len(CASES) >= 50


def test_catastrophic_regex_is_linear(world: World, tmp_path: Path) -> None:
    """`(a+)+$` against 40 a's and a `!` backtracks ~2^40 steps in Python's `re`; regplan's RE2
    must decide it at once. A hostile source lists such tags; planning still finishes fast."""
    evil = "a" * 40 + "!"
    world.hostile.repos["evil"] = Repo(manifests={}, tags=[evil, "a" * 4000 + "!"])
    cfg = tmp_path / "regplan.yml"
    cfg.write_text(
        plain_creds(world.hostile, world.target) + "defaults:\n  skipDockerConfig: true\nsync:\n"
        f"  - source: {world.hostile.host}/evil\n    target: {world.target.host}/evil\n"
        "    type: repository\n    tags:\n      allow: ['(a+)+$', '(a|aa)+$', '(.*a){30}']\n"
    )
    # a backtracking engine would run far past the subprocess timeout: no wall-time assertion
    result = regplan("plan", "-c", str(cfg), "--explain", cwd=tmp_path, timeout=60)
    assert result.code == 0, str(result)
    assert "Traceback" not in result.stderr
    assert re.search(r"no changes|0 image|nothing", result.stdout, re.I), result.stdout
