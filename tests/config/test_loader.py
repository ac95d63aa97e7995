"""Loading regsync configs: regsync's TestConfigRead, the seed's examples, every field."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import pytest

from regplan.config import (
    DEFAULT_MEDIA_TYPES,
    RateLimit,
    ReferrerFilter,
    RepoFilter,
    TagFilter,
    expand_backup,
    load_config,
    resolve_backup,
)
from regplan.config.commands import resolved, to_yaml
from regplan.config.hosts import TLSMode
from regplan.config.loader import load_bytes
from regplan.errors import ConfigError, TemplateError
from regplan.refs import ImageRef

DATA = Path(__file__).parent / "data"


def load_text(text: str, name: str = "test.yml"):  # type: ignore[no-untyped-def]
    return load_bytes(text.encode(), path=name, label=name)


def test_config1_matches_regsync_test_config_read() -> None:
    c = load_config(str(DATA / "config1.yml"))
    assert c.version == 1
    assert [(h.name, h.tls) for h in c.creds] == [
        ("registry:5000", TLSMode.DISABLED),
        ("docker.io", TLSMode.ENABLED),
    ]
    assert c.defaults.parallel == 2
    assert c.defaults.cache_count == 500
    assert c.defaults.cache_time == 300.0
    s1, s2, s3 = c.sync
    assert (s1.source, s1.target, s1.type) == (
        "busybox:latest",
        "registry:5000/library/busybox:latest",
        "image",
    )
    assert (s1.schedule, s1.interval) == ("15 3 * * *", 0.0)
    assert (s2.source, s2.target, s2.type) == ("alpine", "registry:5000/hub/alpine", "repository")
    assert (s3.source, s3.target, s3.type) == (
        "gcr.io/example/repo",
        "registry:5000/gcr/example/repo",
        "repository",
    )
    for s in (s2, s3):
        assert (s.schedule, s.interval, s.interval_text) == ("", 3600.0, "60m")
        assert s.tags == TagFilter(allow=("3", "3.9", "latest"))
    for s in c.sync:
        assert s.backup == "bkup-{{.Ref.Tag}}"  # left unexpanded until a backup is planned
        assert s.ratelimit == RateLimit(min=100, retry=900.0)
        assert s.media_types == DEFAULT_MEDIA_TYPES
        assert not (s.digest_tags or s.referrers or s.referrer_slow or s.fast_copy)
        assert not (s.force_recursive or s.include_external)
        assert s.referrer_filters == ()


def test_config2_matches_regsync_test_config_read() -> None:
    c = load_config(str(DATA / "config2.yml"))
    assert [(h.name, h.tls) for h in c.creds] == [("registry:5000", TLSMode.DISABLED)]
    s1, s2 = c.sync
    # step 1 keeps its own interval and does not get the default schedule
    assert (s1.interval, s1.schedule) == (43200.0, "")
    assert s1.ratelimit == RateLimit(min=0, retry=300.0)  # default retry floored at 5m
    # step 2 gets the default schedule, and its 1m retry is raised to 5m
    assert (s2.interval, s2.schedule) == (0.0, "15 3 * * *")
    assert s2.ratelimit == RateLimit(min=0, retry=300.0)
    assert c.defaults.parallel == 1


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in DATA.glob("seed-*.yml")),
)
def test_seed_examples_load(name: str) -> None:
    c = load_config(str(DATA / name))
    assert c.sync
    assert c.digest.startswith("sha256:")


def test_seed_main_example() -> None:
    c = load_config(str(DATA / "seed-example.yml"))
    reg, hub = c.creds
    assert (reg.name, reg.user, reg.password) == ("registry.example.org", "syncuser", "Pa$$w0rd")
    assert (hub.name, hub.password) == ("docker.io", "")  # unreadable file → ""
    busybox, alpine, regctl = c.sync
    assert busybox.interval == 3600.0
    assert alpine.tag_sets == (
        TagFilter(allow=("latest", "edge")),
        TagFilter(allow=(r"v\d+\.\d+\.\d+",), semver_range=(">=3.5.1 <4.0",)),
    )
    assert regctl.tags.allow == ("latest", "edge", r"v[0-9\.]+")
    assert (regctl.referrers, regctl.digest_tags, regctl.fast_copy) == (True, True, True)


def test_seed_extensions_example() -> None:
    a, b, c = load_config(str(DATA / "seed-extensions.yml")).sync
    assert a.type == b.type == "repository"
    assert a.tags == b.tags == TagFilter(allow=("latest", "edge", r"v[0-9\.]+"))
    assert a.backup == ""
    assert b.backup == c.backup == "backup-{{.Ref.Tag}}"
    assert c.type == "image"


def test_seed_defaults_example() -> None:
    (s,) = load_config(str(DATA / "seed-defaults.yml")).sync
    assert s.ratelimit == RateLimit(min=20, retry=900.0)
    assert s.interval == 3600.0


def test_every_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGPLAN_TEST_REGISTRY", raising=False)
    c = load_config(str(DATA / "full.yml"))
    h = c.creds[0]
    assert h.name == "mirror.example.org"  # templated with nil data
    assert h.hostname == "backend.example.org"
    assert (h.user, h.password, h.token) == ("mirroruser", "hunter2", "tok-123")
    assert (h.cred_helper, h.cred_expire, h.cred_host) == (
        "docker-credential-ecr-login",
        1800.0,
        "https://mirror.example.org",
    )
    assert h.tls is TLSMode.INSECURE  # case-insensitive
    assert h.regcert.startswith("-----BEGIN CERTIFICATE-----\nMII")
    assert (h.client_cert, h.client_key) == ("cert-pem", "key-pem")
    assert h.path_prefix == "mirror"
    assert h.mirrors == ("mirror-a.example.org", "mirror-b.example.org")
    assert (h.priority, h.repo_auth) == (5, True)
    assert h.api_opts == (("disableHead", "true"),)
    assert (h.blob_chunk, h.blob_max, h.req_per_sec, h.req_concurrent) == (1048576, -1, 0.5, 4)
    d = c.defaults
    assert (d.parallel, d.cache_count, d.cache_time) == (4, 100, 600.0)
    assert (d.skip_docker_config, d.user_agent, d.blob_limit) == (True, "regplan-test", 2097152)

    repo, registry = c.sync
    assert repo.tags == TagFilter(deny=("v.*-rc.*",), semver_range=(">=1.2 <2",))
    assert repo.tag_sets == (TagFilter(allow=("latest",)),)
    assert repo.tag_filter_sets() == (TagFilter(allow=("latest",)), repo.tags)
    assert (repo.platform, repo.platforms) == ("linux/amd64", ("linux/amd64", "linux/arm64", ""))
    # own interval: the default schedule is not inherited
    assert (repo.interval, repo.schedule) == (7200.0, "")
    assert repo.referrer_source == "registry.example.org/sigs/base"
    assert repo.referrer_target == "mirror.example.org/base-sigs"
    assert repo.referrer_filters == ()  # explicit [] on the entry: every referrer
    assert (repo.digest_tags, repo.fast_copy) == (False, False)  # entry overrides defaults
    assert (repo.referrers, repo.referrer_slow, repo.force_recursive) == (True, True, True)
    assert repo.include_external
    assert repo.media_types == ("application/vnd.oci.image.manifest.v1+json",)
    assert repo.ratelimit == RateLimit(min=10, retry=300.0)
    assert repo.backup == "backup-{{ .Ref.Tag }}"

    assert registry.type == "registry"
    assert registry.repos == RepoFilter(allow=("library/.*",), deny=(".*-dev",))
    assert registry.schedule == "CRON_TZ=Europe/Paris 0 3 * * MON"
    assert registry.interval == 0.0
    assert registry.ratelimit == RateLimit(min=10, retry=1800.0)
    assert registry.referrer_filters == (
        ReferrerFilter(
            "application/example.sbom", (("org.example.any", ""), ("org.example.kind", "sbom"))
        ),
    )
    assert registry.fast_copy and registry.digest_tags


def test_unquoted_scalars_stay_text() -> None:
    c = load_text(
        "sync:\n- source: a\n  target: localhost:5000/a\n  type: repository\n"
        "  tags:\n    allow: [3, 3.9, 3.10, 1e3, 0x10, true, ~]\n"
    )
    assert c.sync[0].tags.allow == ("3", "3.9", "3.10", "1e3", "0x10", "true", "")


def test_digest_is_sha256_of_bytes() -> None:
    raw = (DATA / "config2.yml").read_bytes()
    assert load_config(str(DATA / "config2.yml")).digest == (
        "sha256:" + hashlib.sha256(raw).hexdigest()
    )


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = (DATA / "config2.yml").read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw)))
    c = load_config("-")
    assert c.path == "-"
    assert len(c.sync) == 2


@pytest.mark.parametrize("version", ["", "version: 0\n", "version: 1\n"])
def test_versions_accepted(version: str) -> None:
    assert load_text(version + "sync:\n- {source: a, target: localhost:5000/a, type: image}\n")


def test_version_2_refused() -> None:
    with pytest.raises(ConfigError, match=r"test\.yml:1:10: unsupported config version 2"):
        load_text("version: 2\nsync: []\n")


def test_fast_check_alias() -> None:
    base = "sync:\n- source: a\n  target: localhost:5000/a\n  type: image\n"
    assert load_text(base + "  fastCheck: true\n").sync[0].fast_copy
    assert load_text(base + "  fastCopy: true\n  fastCheck: true\n").sync[0].fast_copy
    assert load_text("defaults:\n  fastCheck: true\n" + base).sync[0].fast_copy
    with pytest.raises(ConfigError, match="fastCopy and fastCheck disagree"):
        load_text(base + "  fastCopy: true\n  fastCheck: false\n")


def test_referrer_target_sees_unexpanded_target() -> None:
    # regsync's quirk: the expanded source is fed back, the expanded target is not.
    c = load_text(
        "sync:\n"
        "- source: registry.example.org/app\n"
        "  target: 'mirror.example.org/{{ index (split .Sync.Source \"/\") 1 }}'\n"
        "  type: repository\n"
        "  referrerSource: '{{ .Sync.Source }}-sigs'\n"
        "  referrerTarget: >-\n"
        '    mirror.example.org/{{ if eq .Sync.Target "mirror.example.org/app" }}expanded'
        "{{ else }}raw{{ end }}\n"
    )
    (s,) = c.sync
    assert s.target == "mirror.example.org/app"
    assert s.referrer_source == "registry.example.org/app-sigs"
    assert s.referrer_target == "mirror.example.org/raw"


def test_templates_see_defaults_and_go_names() -> None:
    c = load_text(
        "defaults:\n  interval: 90m\n"
        "sync:\n- source: alpine\n"
        "  target: 'localhost:5000/{{ .Sync.Type }}-{{ .Sync.Interval }}-{{ .Sync.DigestTags }}'\n"
        "  type: image\n"
    )
    assert c.sync[0].target == "localhost:5000/image-1h30m0s-false"


def test_expand_backup() -> None:
    (step,) = load_config(str(DATA / "seed-extensions.yml")).sync[2:]
    target = ImageRef.parse("registry.example.org/repo-c:latest")
    assert expand_backup(step, target) == "backup-latest"
    assert resolve_backup(step, target) == ImageRef.parse(
        "registry.example.org/repo-c:backup-latest"
    )


def test_expand_backup_full_reference_and_data() -> None:
    base = load_config(str(DATA / "config2.yml")).sync[0]
    import dataclasses

    step = dataclasses.replace(
        base,
        backup="  {{ .Ref.Registry }}/backups/{{ .Ref.Repository }}:{{ .Ref.Tag }}-{{ .Sync.Interval }}"
        '{{ if eq .Step.Type "image" }}-img{{ end }}\n',
    )
    target = ImageRef.parse("registry:5000/library/busybox:latest")
    text = expand_backup(step, target)
    assert text == "registry:5000/backups/library/busybox:latest-12h0m0s-img"
    assert resolve_backup(step, target) == ImageRef.parse(text)
    bad = dataclasses.replace(base, backup="{{ .Ref.Nope }}")
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        expand_backup(bad, target)


def test_hooks_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        load_config(str(DATA / "full.yml"))
    messages = [r.getMessage() for r in caplog.records]
    assert any("hooks are parsed but never run" in m for m in messages)
    assert "Scheme is deprecated, for http set TLS to disabled" in messages


def test_values_in_anchors_are_reported_at_the_anchor() -> None:
    text = (
        "x-base: &base\n"
        "  type: image\n"
        "  tags:\n"
        "    allow: ['v(']\n"
        "sync:\n"
        "- <<: *base\n"
        "  source: a\n"
        "  target: localhost:5000/a\n"
    )
    with pytest.raises(ConfigError, match=r"test.yml:4:13: .*invalid allow pattern"):
        load_text(text)


def test_show_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGPLAN_TEST_REGISTRY", raising=False)
    for name in ("config1.yml", "full.yml", "seed-example.yml"):
        first = load_config(str(DATA / name))
        again = load_text(to_yaml(resolved(first)), name)
        assert again.sync == first.sync or [
            (s.source, s.target, s.type, s.tags, s.schedule, s.interval) for s in again.sync
        ] == [(s.source, s.target, s.type, s.tags, s.schedule, s.interval) for s in first.sync]
        assert [h.name for h in again.creds] == [h.name for h in first.creds]
