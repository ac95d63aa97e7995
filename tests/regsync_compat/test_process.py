"""regsync's own TestProcess, ported (docs/regsync-behaviour.md, 7. regsync's own test suite).

The 27 cases run in regsync's order and share state, exactly like the original: one real
distribution registry seeded with regclient's `testrepo` and `external` layouts, a read-only
registry for the abort case, and OCI Layout copies for the `ocidir://` cases. Each case writes a
config with `defaults.parallel: 1` and one step, runs the real `regplan` command line, and checks
the outcome with skopeo (an independent client).

Where regplan deliberately differs from regsync the case says so:
- invalid references and types are refused when the config loads (`config validate` catches
  them), not when the step runs; the error text is the same (`invalid reference`, `invalid input`
  is worded as "type ... must be one of: registry, repository, image").
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.regplan_cli import Result, regplan, sync_config, sync_step
from tests.servers import skopeo
from tests.servers.distribution import RegistryServer

# The cases share state and run in order: `--dist loadfile` keeps this module on one worker.
pytestmark = pytest.mark.integration


def _layout_tags(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
    }


def _children(layout: Path, digest: str) -> list[str]:
    body = json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_text())
    return [m["digest"] for m in body.get("manifests", [])]


@dataclass
class World:
    """The shared state of the ordered cases."""

    host: str
    readonly_host: str
    ocidir: Path
    workdir: Path
    tags: dict[str, str]
    external: dict[str, str]
    results: dict[str, Result] = field(default_factory=dict)

    def digest(self, ref: str) -> str:
        return skopeo.inspect_digest(self.docker(ref), server=_plain)

    def docker(self, ref: str) -> str:
        return f"docker://{self.host}/{ref}"

    def exists(self, ref: str) -> bool:
        return skopeo.exists(self.docker(ref), server=_plain)

    def run(
        self,
        name: str,
        step: str,
        *,
        command: str = "once",
        extra: tuple[str, ...] = (),
        creds_host: str = "",
    ) -> Result:
        hosts = {self.host, self.readonly_host} | ({creds_host} if creds_host else set())
        config = sync_config(
            self.workdir,
            sorted(hosts),
            step,
            defaults={"parallel": 1, "skipDockerConfig": True},
            name=f"{name}.yml",
        )
        result = regplan(command, "-c", str(config), *extra, cwd=self.workdir)
        self.results[name] = result
        assert "Traceback" not in result.stderr, str(result)
        return result

    def ok(
        self, name: str, step: str, *, command: str = "once", extra: tuple[str, ...] = ()
    ) -> Result:
        """`run` a case that must succeed."""
        result = self.run(name, step, command=command, extra=extra)
        assert result.code == 0, str(result)
        return result

    def has(self, repo: str, *digests: str) -> None:
        for digest in digests:
            assert self.exists(f"{repo}@{digest}"), f"{repo}@{digest} missing"

    def matches(self, repo: str, *tags: str) -> None:
        """Each tag of `repo` is testrepo's tag of that name."""
        for tag in tags:
            assert self.digest(f"{repo}:{tag}") == self.tags[tag], tag

    def untagged(self, repo: str, *tags: str) -> None:
        for tag in tags:
            assert not self.exists(f"{repo}:{tag}"), tag

    def testrepo_to(self, repo: str, **options: object) -> str:
        """A repository step from testrepo to `repo` on the same registry."""
        return sync_step(f"{self.host}/testrepo", f"{self.host}/{repo}", "repository", **options)

    def image(self, tag: str, target: str, **options: object) -> str:
        """An image step from testrepo:`tag` to `target` on the same registry."""
        return sync_step(f"{self.host}/testrepo:{tag}", f"{self.host}/{target}", "image", **options)

    def lacks(self, repo: str, *digests: str) -> None:
        for digest in digests:
            assert not self.exists(f"{repo}@{digest}"), f"{repo}@{digest} copied"


class _Plain:
    """skopeo arguments for the plain-HTTP test registries."""

    def skopeo_args(self, prefix: str = "") -> list[str]:
        return [f"--{prefix}tls-verify=false"]


_plain = _Plain()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, regclient_testdata: Path) -> Iterator[World]:
    from tests.servers.skopeo import seed_layout

    workdir = tmp_path_factory.mktemp("regsync-process")
    ocidir = workdir / "ocidir"
    for repo in ("testrepo", "external"):
        shutil.copytree(regclient_testdata / repo, ocidir / repo, copy_function=shutil.copyfile)
        for directory, _, _ in os.walk(ocidir / repo):
            os.chmod(directory, 0o755)
    with RegistryServer(workdir / "main") as main, RegistryServer(workdir / "ro") as ro_seed:
        for repo in ("testrepo", "external"):
            seed_layout(regclient_testdata / repo, main, repo)
        seed_layout(regclient_testdata / "testrepo", ro_seed, "testrepo")
        ro_seed.stop()
        with RegistryServer(workdir / "ro-serve", root=ro_seed.root, read_only=True) as readonly:
            yield World(
                host=main.host,
                readonly_host=readonly.host,
                ocidir=ocidir,
                workdir=workdir,
                tags=_layout_tags(regclient_testdata / "testrepo"),
                external=_layout_tags(regclient_testdata / "external"),
            )


# The cases, in regsync's order. Names follow regsync_test.go.


def test_01_action_missing(world: World, regclient_testdata: Path) -> None:
    world.ok("missing", world.image("v1", "test1:latest"), extra=("--missing",))
    assert world.digest("test1:latest") == world.tags["v1"]
    for child in _children(regclient_testdata / "testrepo", world.tags["v1"])[:2]:
        world.has("test1", child)
    # neither v2 nor v2's SBOM (a1) and signature (a2)
    world.lacks("test1", world.tags["v2"], world.tags["a1"], world.tags["a2"])


def test_02_repo_copy(world: World) -> None:
    world.ok("repo-copy", world.testrepo_to("test2"))
    world.matches("test2", "v1", "v2", "v3")


def test_03_readonly_error_abort(world: World) -> None:
    r = world.run(
        "readonly",
        sync_step(f"{world.host}/testrepo", f"{world.readonly_host}/testrepo-copy", "repository"),
        extra=("--abort-on-error",),
    )
    assert r.code == 1, str(r)
    assert "http" in r.stderr.lower() and (
        "405" in r.stderr or "unsupported" in r.stderr.lower()
    ), r.stderr


def test_04_overwrite(world: World) -> None:
    world.ok("overwrite", world.image("v2", "test1:latest"))
    assert world.digest("test1:latest") == world.tags["v2"]
    world.lacks("test1", world.tags["a1"], world.tags["a2"])


def test_05_fast_check(world: World) -> None:
    world.ok(
        "fast-check",
        world.image(
            "v2",
            "test1:latest",
            fastCheck=True,
            referrers=True,
            digestTags=True,
        ),
    )
    assert world.digest("test1:latest") == world.tags["v2"]
    world.lacks("test1", world.tags["a1"], world.tags["a2"])  # fastCheck short-circuits referrers


def test_06_action_check(world: World) -> None:
    r = world.ok("check", world.image("v1", "test1:latest"), command="check")
    assert "Image sync needed" in r.stderr
    assert world.digest("test1:latest") == world.tags["v2"]


def test_07_action_missing_exists(world: World) -> None:
    world.ok(
        "missing-exists",
        world.image("v1", "test1:latest", referrers=True, digestTags=True),
        extra=("--missing",),
    )
    assert world.digest("test1:latest") == world.tags["v2"]
    assert not world.exists(f"test1@{world.tags['a1']}")


def test_08_repo_tag_filter_allow(world: World) -> None:
    world.ok("allow", world.testrepo_to("test3", tags={"allow": ["v1", "v3", "latest"]}))
    world.matches("test3", "v1", "v3")
    world.untagged("test3", "v2")
    world.lacks("test3", world.tags["v2"])


def test_09_repo_tag_filter_deny(world: World) -> None:
    world.ok("deny", world.testrepo_to("test4", tags={"deny": ["v2", "old"]}))
    world.matches("test4", "v1", "v3")
    world.untagged("test4", "v2")
    world.lacks("test4", world.tags["v2"])


def test_10_repo_semver(world: World) -> None:
    world.ok("semver", world.testrepo_to("test-semver", tags={"semverRange": [">=v2"]}))
    world.matches("test-semver", "v2", "v3")
    world.untagged("test-semver", "v1", "a1", "a2", "a3", "b1", "b2", "b3", "loop")


def test_11_repo_tag_set(world: World) -> None:
    world.ok("tagset", world.testrepo_to("test-tagset", tagSets=[{"allow": ["a.*", "loop"]}]))
    world.matches("test-tagset", "a1", "a2", "a3", "loop")
    world.untagged("test-tagset", "v1", "b1", "b2", "b3")


def test_12_missing_setup(world: World) -> None:
    for name, (source, target) in {
        "setup-v1": ("v2", "v1"),
        "setup-v1.1": ("v2", "v1.1"),
        "setup-v3": ("v3", "v3"),
    }.items():
        world.ok(name, world.image(source, f"test-missing:{target}"))
    assert world.digest("test-missing:v1") == world.tags["v2"]


def test_13_missing(world: World) -> None:
    h = world.host
    world.ok(
        "missing-repo",
        sync_step(
            f"{h}/testrepo",
            f"{h}/test-missing",
            "repository",
            tags={"allow": ["v1", "v2", "v3", "latest"]},
        ),
        extra=("--missing",),
    )
    assert world.digest("test-missing:v1") == world.tags["v2"]  # exists: not overwritten
    assert world.digest("test-missing:v1.1") == world.tags["v2"]  # not selected: untouched
    assert world.digest("test-missing:v2") == world.tags["v2"]  # missing: copied
    assert world.digest("test-missing:v3") == world.tags["v3"]
    assert not world.exists(f"test-missing@{world.tags['v1']}")


def test_14_image_digest_tags(world: World) -> None:
    src, dst = world.ocidir / "testrepo", world.workdir / "test5"
    world.ok(
        "digest-tags",
        sync_step(f"ocidir://{src}:v1", f"ocidir://{dst}:v1", "image", digestTags=True),
    )
    tags = _layout_tags(dst)
    v1hex, v3hex = world.tags["v1"].split(":")[1], world.tags["v3"].split(":")[1]
    assert tags["v1"] == world.tags["v1"]
    assert tags[f"sha256-{v1hex}.{v3hex[:16]}.meta"] == world.tags["v3"]


SBOM_ONLY = [{"artifactType": "application/example.sbom"}]


def _v2_with_referrers(world: World, target: str, **options: object) -> str:
    """The referrer cases' step: testrepo:v2 with its referrers, to `target`."""
    return world.image("v2", target, referrers=True, **options)


def test_15_image_referrers_fast(world: World, regclient_testdata: Path) -> None:
    world.ok(
        "referrers-fast",
        _v2_with_referrers(world, "test-referrer:v2", fastCheck=True, referrerFilters=[]),
    )
    assert world.digest("test-referrer:v2") == world.tags["v2"]
    amd64 = _children(regclient_testdata / "testrepo", world.tags["v2"])[0]
    world.has("test-referrer", amd64, world.tags["a1"], world.tags["a2"])  # SBOM, signature
    world.lacks("test-referrer", world.tags["v1"], world.tags["v3"])


def test_16_image_referrers(world: World) -> None:
    world.ok("referrers", _v2_with_referrers(world, "test-referrer2:v2", referrerFilters=SBOM_ONLY))
    world.has("test-referrer2", world.tags["a1"])
    world.lacks("test-referrer2", world.tags["a2"])


def test_17_image_referrers_ext_src(world: World) -> None:
    h = world.host
    world.ok(
        "referrers-ext-src",
        _v2_with_referrers(
            world,
            "test-referrer-ext:v2",
            referrerFilters=SBOM_ONLY,
            referrerSource=f"{h}/external",
        ),
    )
    world.has("test-referrer-ext", world.external["a3"], world.external["a4"])
    world.lacks("test-referrer-ext", world.tags["a1"], world.tags["a2"])


def test_18_image_referrers_ext_both(world: World) -> None:
    h = world.host
    world.ok(
        "referrers-ext-both",
        _v2_with_referrers(
            world,
            "test-referrer-ext2:v2",
            referrerFilters=SBOM_ONLY,
            referrerSource=f"{h}/external",
            referrerTarget=f"{h}/test-referrer-ext2-tgt",
        ),
    )
    world.has("test-referrer-ext2-tgt", world.external["a3"], world.external["a4"])
    world.lacks("test-referrer-ext2", world.external["a3"], world.external["a4"])


def test_19_backup(world: World) -> None:
    world.ok("backup", world.image("v3", "test1:latest", backup="old"))
    assert world.digest("test1:latest") == world.tags["v3"]
    assert world.digest("test1:old") == world.tags["v2"]


def test_20_backup_format(world: World) -> None:
    h = world.host
    world.ok(
        "backup-format",
        world.image("v1", "test1:latest", backup=f"{h}/backups:{{{{.Ref.Tag}}}}"),
    )
    assert world.digest("test1:latest") == world.tags["v1"]
    assert world.digest("backups:latest") == world.tags["v3"]


def test_21_image_self_digest_tag(world: World) -> None:
    h = world.host
    src = world.ocidir / "testrepo"
    world.ok(
        "self-digest-tag",
        sync_step(f"ocidir://{src}:mirror", f"{h}/test-mirror:mirror", "image", digestTags=True),
    )
    mirror = world.tags["mirror"]
    assert world.digest("test-mirror:mirror") == mirror
    assert world.digest(f"test-mirror:sha256-{mirror.split(':')[1]}") == mirror


def test_22_image_loop(world: World) -> None:
    world.ok("loop", world.image("loop", "test-loop:loop", referrers=True))
    assert world.digest("test-loop:loop") == world.tags["loop"]
    assert world.exists(f"test-loop@{world.tags['child']}")


def test_23_missing_image(world: World) -> None:
    h = world.host
    r = world.run(
        "missing-image", sync_step(f"{h}/testmissing:v1", f"{h}/test-missing-image:v1", "image")
    )
    assert r.code == 1, str(r)
    assert "not found" in r.stderr


def test_24_missing_repository(world: World) -> None:
    r = world.run(
        "missing-repository",
        sync_step(
            f"ocidir://{world.workdir / 'does-not-exist'}",
            f"ocidir://{world.workdir / 'out'}",
            "repository",
        ),
    )
    assert r.code == 1, str(r)
    assert "does not exist" in r.stderr or "not found" in r.stderr


@pytest.mark.parametrize(
    ("name", "source", "target", "type_"),
    [
        ("invalid-source-image", "InvalidTestmissing:v1:garbage", "{h}/test:v1", "image"),
        ("invalid-target-image", "{h}/testrepo:v1", "InvalidTestmissing:v1:garbage", "image"),
        ("invalid-source-repository", "InvalidTestmissing:garbage", "{h}/test", "repository"),
        ("invalid-target-repository", "{h}/testrepo", "InvalidTestmissing:garbage", "repository"),
    ],
)
def test_25_26_invalid_references(
    world: World, name: str, source: str, target: str, type_: str
) -> None:
    h = world.host
    r = world.run(name, sync_step(source.format(h=h), target.format(h=h), type_))
    assert r.code == 1, str(r)
    assert "invalid reference" in r.stderr
    assert r.stderr.count("\n") == 1, "one line"


def test_27_invalid_type(world: World) -> None:
    h = world.host
    r = world.run("invalid-type", sync_step(f"{h}/testrepo:v1", f"{h}/test:v1", "invalid"))
    assert r.code == 1, str(r)
    assert "registry, repository" in r.stderr and "image" in r.stderr
