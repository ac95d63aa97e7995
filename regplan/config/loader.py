"""Load a regsync config: parse, check the schema, merge defaults, expand templates, validate.

The order is regsync's (`ConfigLoadReader`): version check, `defaults.ratelimit.retry` raised
to 5m, defaults merged into every step (`syncSetDefaults`), then templates expanded — creds
`registry user pass regcert clientCert clientKey` with nil data, and per step `source`,
`referrerSource`, `target`, `referrerTarget` in that order with `{Sync: step}` data. regplan then
validates everything regsync would only discover while running (types, references, filters,
platforms, schedules) and reports each problem with file:line:column.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from regplan import collector, logs
from regplan.config import schema
from regplan.config.hosts import DEFAULT_CRED_EXPIRE, Host, TLSMode, host_limits
from regplan.config.model import (
    DEFAULT_MEDIA_TYPES,
    PRUNE_MAX_DEFAULT,
    RATELIMIT_RETRY_MIN,
    Config,
    ConfigWarning,
    Defaults,
    RateLimit,
    ReferrerFilter,
    RepoFilter,
    SyncStep,
    TagFilter,
    WarningKind,
)
from regplan.config.schema import Reader, Section
from regplan.config.yamlsource import compose, error_at
from regplan.durations import SECOND
from regplan.errors import (
    ConfigError,
    FilterError,
    InvalidReferenceError,
    RegistryError,
    TemplateError,
)

if TYPE_CHECKING:
    from regplan.refs import ImageRef

log = logs.get(__name__)

STEP_TYPES = ("registry", "repository", "image")
_BOOLEANS = (
    ("digestTags", "digest_tags"),
    ("referrers", "referrers"),
    ("referrerSlow", "referrer_slow"),
    ("forceRecursive", "force_recursive"),
    ("includeExternal", "include_external"),
)
_CRED_TEMPLATES = ("registry", "user", "pass", "regcert", "clientCert", "clientKey")


def read_source(path: str) -> tuple[bytes, str]:
    """The file's bytes and the label errors use for it ("-" reads stdin)."""
    if path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        with open(path, "rb") as f:
            return f.read(), path
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file is a directory: {path}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None


def load_config(path: str, *, require_sync: bool = True) -> Config:
    """Load, merge and validate the config at `path` ("-" for stdin). Raises ConfigError.
    `require_sync=False` accepts a file of creds and defaults only (`regplan copy -c`)."""
    data, label = read_source(path)
    return load_bytes(data, path=path, label=label, require_sync=require_sync)


def load_bytes(data: bytes, *, path: str, label: str, require_sync: bool = True) -> Config:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text (byte {e.start})", file=label) from None
    # nodes, sections and steps by the hundred thousand, all kept: collection passes set off
    # by the allocations were a third of a big config's load
    with collector.paused():
        root = compose(text, label)
        if root is None:
            if require_sync:
                raise ConfigError("no sync steps: the config file is empty", file=label)
            return Config(path, digest, 1, (), Defaults(), ())
        return _Loader(label).load(root, path=path, digest=digest, require_sync=require_sync)


@dataclasses.dataclass(frozen=True)
class _Val:
    """A merged value and the node it came from (an entry's own, or the defaults')."""

    value: Any
    node: Any


class _Loader:
    def __init__(self, label: str) -> None:
        self.label = label
        self.reader = Reader(label)
        self.warnings: list[ConfigWarning] = []
        # every reference text parsed once: each step's is checked, then compared (lint), and
        # generated configs copy one source to several targets
        self.refs: dict[str, ImageRef] = {}

    def parse_ref(self, text: str) -> ImageRef:
        """ImageRef.parse, remembered (refs are frozen values; a failure is not remembered)."""
        ref = self.refs.get(text)
        if ref is None:
            from regplan.refs import ImageRef

            ref = self.refs[text] = ImageRef.parse(text)
        return ref

    def fail(self, node: Any, message: str) -> ConfigError:
        return error_at(self.label, node, message)

    def warn(self, kind: WarningKind, node: Any, message: str) -> None:
        line, column = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (0, 0)
        self.warnings.append(ConfigWarning(kind, message, self.label, line, column))

    def missing_file(self, what: str, node: Any) -> Callable[[str], None]:
        def note(path: str) -> None:
            self.warn(
                WarningKind.MISSING_FILE,
                node,
                f'{what}: file "{path}" does not exist; the template reads it as ""',
            )

        return note

    # -- top level -------------------------------------------------------------------------
    def load(self, root: Any, *, path: str, digest: str, require_sync: bool = True) -> Config:
        doc = self.reader.section(root, schema.ROOT, "")
        version = doc.get("version", 0)
        if version > 1 or version < 0:
            raise self.fail(doc.node_of("version"), f"unsupported config version {version}")
        defaults = doc.sub("defaults")
        self.warn_ignored(defaults)
        creds = tuple(self.host(i, s) for i, s in enumerate(doc.get("creds", [])))
        entries: list[Section] = doc.get("sync", [])
        if not entries and require_sync:
            raise self.fail(doc.node_of("sync"), "no sync steps: add at least one entry under sync")
        steps = tuple(self.step(i, entry, defaults) for i, entry in enumerate(entries))
        return Config(
            path=path,
            digest=digest,
            version=1,
            creds=creds,
            defaults=self.global_defaults(defaults),
            sync=steps,
            warnings=tuple(self.warnings),
        )

    def warn_ignored(self, section: Section) -> None:
        for key, why in section.ignored.items():
            node = section.node_of(key)
            line = node.start_mark.line + 1 if node is not None else 0
            log.warn(why, key=f"{section.path}.{key}", file=self.label, line=line)

    def global_defaults(self, d: Section) -> Defaults:
        parallel = d.get("parallel", 0)
        cache_time = d.get("cacheTime", 0)
        if cache_time < 0:
            raise self.fail(d.node_of("cacheTime"), "defaults.cacheTime: must not be negative")
        return Defaults(
            parallel=parallel if parallel > 0 else 1,  # regsync: 0 or less means 1
            cache_count=d.get("cacheCount", 0),
            cache_time=cache_time / SECOND,
            skip_docker_config=d.get("skipDockerConfig", False),
            user_agent=d.get("userAgent", ""),
            blob_limit=d.get("blobLimit", 0),
        )

    # -- creds -----------------------------------------------------------------------------
    def host(self, i: int, s: Section) -> Host:
        for key, why in s.ignored.items():
            log.warn(why, name=s.get("registry", ""), key=f"creds[{i}].{key}")
        values: dict[str, str] = {}
        for key in _CRED_TEMPLATES:
            text = s.get(key, "")
            try:
                values[key] = (
                    _render(
                        text,
                        None,
                        name=f"creds[{i}].{key}",
                        on_missing_file=self.missing_file(f"creds[{i}].{key}", s.node_of(key)),
                    )
                    if "{{" in text
                    else text
                )
            except TemplateError as e:
                raise self.fail(s.node_of(key), str(e)) from None
        name = values["registry"].strip()
        if not name:
            raise self.fail(s.node_of("registry"), f"creds[{i}]: registry is required")
        tls_text = s.get("tls", "enabled")
        try:
            tls = TLSMode(tls_text.lower())
        except ValueError:
            raise self.fail(
                s.node_of("tls"),
                f'creds[{i}].tls: unknown TLS value "{tls_text}" (use enabled, insecure or disabled)',
            ) from None
        if bool(values["clientCert"]) != bool(values["clientKey"]):
            raise self.fail(
                s.node_of("clientCert" if values["clientCert"] else "clientKey"),
                f"creds[{i}]: clientCert and clientKey must both be set for mTLS",
            )
        cred_expire = s.get("credExpire", 0)
        if cred_expire < 0:
            raise self.fail(s.node_of("credExpire"), f"creds[{i}].credExpire: must not be negative")
        req_per_sec = s.get("reqPerSec", 0.0)
        if req_per_sec < 0:
            raise self.fail(s.node_of("reqPerSec"), f"creds[{i}].reqPerSec: must not be negative")
        host = Host(
            name=name,
            hostname=s.get("hostname", ""),
            user=values["user"],
            password=values["pass"],
            token=s.get("token", ""),
            cred_helper=s.get("credHelper", ""),
            cred_expire=cred_expire / SECOND if cred_expire else DEFAULT_CRED_EXPIRE,
            cred_host=s.get("credHost", ""),
            tls=tls,
            regcert=values["regcert"],
            client_cert=values["clientCert"],
            client_key=values["clientKey"],
            path_prefix=s.get("pathPrefix", "").strip("/"),
            mirrors=tuple(s.get("mirrors", [])),
            priority=s.get("priority", 0),
            repo_auth=s.get("repoAuth", False),
            api_opts=tuple(sorted(s.get("apiOpts", {}).items())),
            blob_chunk=s.get("blobChunk", 0),
            blob_max=s.get("blobMax", 0),
            req_per_sec=req_per_sec,
            req_concurrent=s.get("reqConcurrent", 0),
        )
        try:
            host_limits(host)  # deadlines and caps in apiOpts: refused here, not mid-run
        except RegistryError as e:
            raise self.fail(s.node_of("apiOpts"), f"creds[{i}].{e.message}") from None
        return host

    # -- sync steps ------------------------------------------------------------------------
    def own_or_default(self, e: Section, d: Section, key: str, empty: Any) -> _Val:
        """Entry value unless empty/absent, else the defaults' (regsync's `if s.X == ""`)."""
        value = e.get(key, empty)
        if value != empty:
            return _Val(value, e.node_of(key))
        return _Val(d.get(key, empty), d.node_of(key) if d.has(key) else e.node)

    def fast_copy(self, s: Section) -> bool | None:
        """`fastCheck` (regsync's key) or `fastCopy` (the documented one); both must agree."""
        check, copy = s.get("fastCheck"), s.get("fastCopy")
        if check is not None and copy is not None and check != copy:
            raise self.fail(
                s.node_of("fastCopy"),
                f"{s.path or 'defaults'}: fastCopy and fastCheck disagree (they are the same option)",
            )
        return check if check is not None else copy

    def step(self, i: int, e: Section, d: Section) -> SyncStep:
        path = f"sync[{i}]"
        self.warn_ignored(e)
        for key in ("source", "target", "type"):
            if not e.get(key, "").strip():
                raise self.fail(e.node_of(key), f'{path}: "{key}" is required')
        step_type = e.get("type")
        if step_type not in STEP_TYPES:
            raise self.fail(
                e.node_of("type"),
                f'{path}: invalid type "{step_type}" (use registry, repository or image)',
            )

        # ratelimit: defaults.retry is floored at 5m; an entry's non-zero retry too
        d_rl, e_rl = d.sub("ratelimit"), e.sub("ratelimit")
        d_retry = max(d_rl.get("retry", 0) / SECOND, RATELIMIT_RETRY_MIN)
        e_retry = e_rl.get("retry", 0) / SECOND
        retry = d_retry if e_retry == 0 else max(e_retry, RATELIMIT_RETRY_MIN)
        rl_min = e_rl.get("min", 0) or d_rl.get("min", 0)

        # schedule / interval: inherited only when the entry has neither
        schedule = _Val(e.get("schedule", ""), e.node_of("schedule"))
        interval = _Val(e.get("interval", 0), e.node_of("interval"))
        if not schedule.value and not interval.value:
            if d.get("schedule"):
                schedule = _Val(d.get("schedule"), d.node_of("schedule"))
            elif d.get("interval"):
                interval = _Val(d.get("interval"), d.node_of("interval"))
        if interval.value < 0:
            raise self.fail(interval.node, f"{path}: interval must not be negative")

        backup = self.own_or_default(e, d, "backup", "")
        media_types = e.get("mediaTypes") or d.get("mediaTypes") or list(DEFAULT_MEDIA_TYPES)
        booleans: dict[str, Any] = {
            attr: bool(e.get(key, d.get(key, False))) for key, attr in _BOOLEANS
        }
        fast = self.fast_copy(e)
        if fast is None:
            fast = bool(self.fast_copy(d))
        filters_src = e if e.has("referrerFilters") else d
        referrer_filters = tuple(
            ReferrerFilter(
                artifact_type=f.get("artifactType", ""),
                annotations=tuple(sorted(f.get("annotations", {}).items())),
            )
            for f in filters_src.get("referrerFilters", [])
        )
        ref_src = self.own_or_default(e, d, "referrerSource", "")
        ref_tgt = self.own_or_default(e, d, "referrerTarget", "")

        tags = self.tag_filter(e.sub("tags"))
        tag_sets = tuple(self.tag_filter(t) for t in e.get("tagSets", []))
        repos_section = e.sub("repos")
        repos = RepoFilter(
            allow=tuple(repos_section.get("allow", [])), deny=tuple(repos_section.get("deny", []))
        )
        step = SyncStep(
            index=i,
            line=e.node.start_mark.line + 1,
            source=e.get("source"),
            target=e.get("target"),
            type=step_type,
            tags=tags,
            tag_sets=tag_sets,
            repos=repos,
            referrer_filters=referrer_filters,
            referrer_source=ref_src.value,
            referrer_target=ref_tgt.value,
            platform=e.get("platform", ""),
            platforms=tuple(e.get("platforms", [])),
            fast_copy=fast,
            backup=backup.value,
            interval=interval.value / SECOND,
            interval_text=_interval_text(e, d, interval),
            schedule=schedule.value,
            ratelimit=RateLimit(min=rl_min, retry=retry),
            media_types=tuple(media_types),
            **booleans,
            **self.lifecycle(path, e, d),
        )
        step = self.expand(step, e, ref_src, ref_tgt)
        self.validate(step, e, d, backup, schedule)
        return step

    def lifecycle(self, path: str, e: Section, d: Section) -> dict[str, Any]:
        """The regplan lifecycle keys, each inherited from `defaults` when the entry lacks it."""
        from regplan.filters import InvalidFilterItem, validate_patterns

        def pick(key: str, empty: Any) -> tuple[Any, Any]:
            s = e if e.has(key) else d
            return s.get(key, empty), s.node_of(key) if s.has(key) else e.node

        out: dict[str, Any] = {}
        for key, attr in (("pruneProtect", "prune_protect"), ("immutableTags", "immutable_tags")):
            patterns, node = pick(key, [])
            try:
                validate_patterns(key, patterns)
            except InvalidFilterItem as err:
                raise self.fail(
                    _item(node, err.index), f"{path}.{key}[{err.index}]: {err}"
                ) from None
            out[attr] = tuple(patterns)
        for key, attr, default in (
            ("pruneMax", "prune_max", PRUNE_MAX_DEFAULT),
            ("minTags", "min_tags", 0),
        ):
            value, node = pick(key, default)
            if value < 0:
                raise self.fail(node, f"{path}.{key}: must not be negative")
            out[attr] = value
        prune, node = pick("prune", False)
        if prune and e.get("type") == "image":
            if e.has("prune"):
                raise self.fail(
                    node, f"{path}.prune: only repository and registry steps prune tags"
                )
            prune = False  # inherited from defaults: an image step names one tag, none to prune
        out["prune"] = bool(prune)
        return out

    def tag_filter(self, s: Section) -> TagFilter:
        latest = s.get("latest", 0)
        if latest < 0:
            raise self.fail(s.node_of("latest"), f"{s.path}.latest: must not be negative")
        return TagFilter(
            allow=tuple(s.get("allow", [])),
            deny=tuple(s.get("deny", [])),
            semver_range=tuple(s.get("semverRange", [])),
            latest=latest,
        )

    def expand(self, step: SyncStep, e: Section, ref_src: _Val, ref_tgt: _Val) -> SyncStep:
        """regsync's order and data: source, referrerSource, target, referrerTarget, each seeing
        the expanded source/referrerSource — but NOT the expanded target (a regsync quirk kept
        for compatibility: `.Sync.Target` in referrerTarget is the unexpanded text)."""
        texts = (step.source, step.referrer_source, step.target, step.referrer_target)
        if not any("{{" in text for text in texts):
            return step  # most steps: building the template data would cost more than the rest
        from regplan.config.expand import sync_struct  # the template engine, only when used

        sync = sync_struct(step)
        path = f"sync[{step.index}]"

        def run(text: str, key: str, node: Any) -> str:
            if "{{" not in text:
                return text
            try:
                return _render(
                    text,
                    {"Sync": sync},
                    name=f"{path}.{key}",
                    on_missing_file=self.missing_file(f"{path}.{key}", node),
                )
            except TemplateError as err:
                raise self.fail(node, str(err)) from None

        source = run(step.source, "source", e.node_of("source"))
        sync = sync.replace(Source=source)
        referrer_source = run(step.referrer_source, "referrerSource", ref_src.node)
        sync = sync.replace(ReferrerSrc=referrer_source)
        target = run(step.target, "target", e.node_of("target"))
        referrer_target = run(step.referrer_target, "referrerTarget", ref_tgt.node)
        return dataclasses.replace(
            step,
            source=source,
            target=target,
            referrer_source=referrer_source,
            referrer_target=referrer_target,
        )

    # -- validation ------------------------------------------------------------------------
    def validate(
        self, step: SyncStep, e: Section, d: Section, backup: _Val, schedule: _Val
    ) -> None:
        from regplan.refs import ImageRef

        path = f"sync[{step.index}]"

        def ref_check(key: str, text: str, node: Any, kind: str) -> None:
            what = f"{path}.{key}"
            try:
                if kind == "registry-source":
                    ImageRef.registry_host(text)
                    return
                if kind == "registry-target":
                    try:
                        ImageRef.registry_host(text)
                        return
                    except InvalidReferenceError:
                        pass
                ref = self.parse_ref(text)
            except InvalidReferenceError as err:
                shown = " (expanded from a template)" if "{{" in e.get(key, "") else ""
                raise self.fail(node, f"{what}: {err}{shown}") from None
            if kind in ("repository", "registry-target") and _has_tag_or_digest(text, ref):
                raise self.fail(
                    node,
                    f'{what}: "{text}" must not include a tag or digest for type {step.type} '
                    "(tags are added to it for every image)",
                )

        if step.type == "image":
            ref_check("source", step.source, e.node_of("source"), "image")
            ref_check("target", step.target, e.node_of("target"), "image")
        elif step.type == "repository":
            ref_check("source", step.source, e.node_of("source"), "repository")
            ref_check("target", step.target, e.node_of("target"), "repository")
        else:
            ref_check("source", step.source, e.node_of("source"), "registry-source")
            ref_check("target", step.target, e.node_of("target"), "registry-target")
        for key, text in (
            ("referrerSource", step.referrer_source),
            ("referrerTarget", step.referrer_target),
        ):
            if text:
                node = e.node_of(key) if e.has(key) else d.node_of(key)
                ref_check(key, text, node, "referrer")

        self.validate_filters(path, e, step)
        self.validate_platforms(path, e)
        if backup.value:
            self.validate_backup(step, backup)
        self.lint(step, e, schedule)
        if schedule.value:
            from regplan.schedule import ScheduleError, parse_schedule

            try:
                parse_schedule(schedule.value)
            except ScheduleError as err:
                raise self.fail(schedule.node, f"{path}.schedule: {err}") from None

    def validate_backup(self, step: SyncStep, backup: _Val) -> None:
        """Parse the backup template, and run it once on an example target: a field that does
        not exist (`.Ref.Tagg`) would fail every backup, so it fails the config now. Other
        execution errors may depend on the real tag, and wait for it."""
        from regplan.config.expand import expand_backup
        from regplan.config.template import parse

        path = f"sync[{step.index}]"
        try:
            parse(backup.value, name=f"{path}.backup")
        except TemplateError as err:
            raise self.fail(backup.node, str(err)) from None
        sample = _sample_target(step)
        if sample is None:
            return
        try:
            expand_backup(
                step, sample, on_missing_file=self.missing_file(f"{path}.backup", backup.node)
            )
        except TemplateError as err:
            if "can't evaluate field" in str(err):
                raise self.fail(backup.node, str(err)) from None

    def lint(self, step: SyncStep, e: Section, schedule: _Val) -> None:
        """What loads, and regsync accepts, but has no effect: warnings, not errors."""
        path = f"sync[{step.index}]"
        ignored = WarningKind.IGNORED
        if step.type == "image":
            for key in ("tags", "tagSets"):
                if e.has(key):
                    self.warn(
                        ignored,
                        e.node_of(key),
                        f"{path}.{key}: ignored on an image step "
                        "(tag filters apply to repository and registry steps)",
                    )
        if step.type != "registry" and e.has("repos"):
            self.warn(
                ignored,
                e.node_of("repos"),
                f"{path}.repos: ignored on {'an' if step.type == 'image' else 'a'} {step.type} step "
                "(only registry steps list repositories)",
            )
        if step.platform and step.platforms:
            self.warn(
                ignored,
                e.node_of("platforms"),
                f"{path}.platforms: ignored because platform is set "
                "(platform copies that one platform's image, not an index)",
            )
        if _same_place(step, self.parse_ref):
            self.warn(
                WarningKind.NO_OP,
                e.node_of("target"),
                f'{path}: source and target are the same ("{step.target}"): nothing to copy',
            )
        if not schedule.value and not step.interval:
            self.warn(
                WarningKind.UNSCHEDULED,
                e.node,
                f"{path}: neither schedule nor interval (here or in defaults): "
                "watch never runs this step",
            )

    def validate_filters(self, path: str, e: Section, step: SyncStep) -> None:
        """The filters' own check (filters.validate_*), located at the item that failed."""
        from regplan.filters import InvalidFilterItem, validate_repo_filter, validate_tag_filter

        checks: list[tuple[str, Section, Callable[[], None]]] = [
            ("tags", e.sub("tags"), lambda: validate_tag_filter(step.tags))
        ]
        for j, (section, tf) in enumerate(zip(e.get("tagSets", []), step.tag_sets, strict=True)):
            checks.append((f"tagSets[{j}]", section, functools.partial(validate_tag_filter, tf)))
        checks.append(("repos", e.sub("repos"), lambda: validate_repo_filter(step.repos)))
        for name, section, check in checks:
            try:
                check()
            except InvalidFilterItem as err:
                node = _item(section.node_of(err.key), err.index)
                raise self.fail(node, f"{path}.{name}.{err.key}[{err.index}]: {err}") from None

    def validate_platforms(self, path: str, e: Section) -> None:
        from regplan.oci.platform import parse as parse_platform

        checks: list[tuple[str, str, Any]] = []
        if e.get("platform"):
            checks.append(("platform", e.get("platform"), e.node_of("platform")))
        seq = e.node_of("platforms")
        for j, text in enumerate(e.get("platforms", [])):
            if text:  # "" selects entries without a platform
                checks.append((f"platforms[{j}]", text, seq.value[j]))
        for key, text, node in checks:
            try:
                parse_platform(text)
            except FilterError as err:
                raise self.fail(node, f"{path}.{key}: {err}") from None


def _render(text: str, data: Any, *, name: str, on_missing_file: Callable[[str], None]) -> str:
    # the Go template engine is imported for the first template: most configs have none
    from regplan.config.template import render

    return render(text, data, name=name, on_missing_file=on_missing_file)


def _item(seq: Any, index: int) -> Any:
    """The node of one list item, or the list's own node when items have none."""
    if seq is not None and isinstance(getattr(seq, "value", None), list):
        return seq.value[index]
    return seq


def _interval_text(e: Section, d: Section, interval: _Val) -> str:
    """The interval as written (e.g. "60m"), from whichever mapping it came from."""
    for s in (e, d):
        if s.has("interval") and s.node_of("interval") is interval.node:
            return str(interval.node.value)
    return ""


def _sample_target(step: SyncStep) -> ImageRef | None:
    """A target reference like the ones the step's backups will be named for."""
    from regplan.refs import ImageRef

    try:
        if step.type == "image":
            return ImageRef.parse(step.target)
        if step.type == "repository":
            return ImageRef.parse(step.target).with_tag("latest")
        return ImageRef.parse(f"{step.target.rstrip('/')}/example").with_tag("latest")
    except InvalidReferenceError:
        return None


def _same_place(step: SyncStep, parse_ref: Callable[[str], ImageRef]) -> bool:
    if step.type == "registry":
        return step.source.rstrip("/") == step.target.rstrip("/")
    try:
        return str(parse_ref(step.source)) == str(parse_ref(step.target))
    except InvalidReferenceError:
        return False


def _has_tag_or_digest(text: str, ref: Any) -> bool:
    """Whether a reference names a tag or digest explicitly (not just the default `latest`)."""
    if ref.digest or "@" in text:
        return True
    last = text.rsplit("/", 1)[-1]
    return ":" in last
