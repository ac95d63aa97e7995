"""`regplan config validate` and `regplan config show`."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from regplan.config.hosts import REDACTED, Host
from regplan.config.model import Config, SyncStep, TagFilter
from regplan.durations import format_duration


def validate_command(path: str) -> int:
    """Load and check the config; print `<file>: ok (N sync steps)`, warnings on stderr as
    `file:line:col: warning: ...`. Errors raise ConfigError."""
    from regplan.config.loader import load_config

    config = load_config(path)
    for warning in sorted(config.warnings, key=lambda w: (w.line, w.column)):
        print(warning, file=sys.stderr)
    label = "<stdin>" if path == "-" else path
    n = len(config.sync)
    w = len(config.warnings)
    extra = f", {w} warning{'s' if w != 1 else ''}" if w else ""
    print(f"{label}: ok ({n} sync step{'s' if n != 1 else ''}{extra})")
    return 0


def show_command(path: str) -> int:
    """Print the resolved config as YAML: defaults merged, templates expanded, secrets redacted."""
    from regplan.config.loader import load_config

    sys.stdout.write(to_yaml(resolved(load_config(path))))
    return 0


# -- the resolved view -----------------------------------------------------------------------


def _host(h: Host) -> dict[str, Any]:
    safe = h.redacted()
    out: dict[str, Any] = {"registry": safe.name}
    optional: list[tuple[str, Any, Any]] = [
        ("hostname", safe.hostname, ""),
        ("user", safe.user, ""),
        ("pass", safe.password, ""),
        ("token", safe.token, ""),
        ("credHelper", safe.cred_helper, ""),
        ("credHost", safe.cred_host, ""),
        ("regcert", safe.regcert, ""),
        ("clientCert", safe.client_cert, ""),
        ("clientKey", safe.client_key, ""),
        ("pathPrefix", safe.path_prefix, ""),
        ("mirrors", list(safe.mirrors), []),
        ("priority", safe.priority, 0),
        ("repoAuth", safe.repo_auth, False),
        ("apiOpts", dict(safe.api_opts), {}),
        ("blobChunk", safe.blob_chunk, 0),
        ("blobMax", safe.blob_max, 0),
        ("reqPerSec", safe.req_per_sec, 0.0),
        ("reqConcurrent", safe.req_concurrent, 0),
    ]
    out["tls"] = str(safe.tls)
    out["credExpire"] = format_duration(safe.cred_expire)
    for key, value, empty in optional:
        if value != empty:
            out[key] = value
    # Secrets stay secret even when a template read them from a file.
    for key in ("pass", "token", "clientKey"):
        if key in out:
            out[key] = REDACTED
    return out


def _tags(tf: TagFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tf.allow:
        out["allow"] = list(tf.allow)
    if tf.deny:
        out["deny"] = list(tf.deny)
    if tf.semver_range:
        out["semverRange"] = list(tf.semver_range)
    if tf.latest:
        out["latest"] = tf.latest
    return out


def _step(s: SyncStep) -> dict[str, Any]:
    out: dict[str, Any] = {"source": s.source, "target": s.target, "type": s.type}
    if not s.tags.empty:
        out["tags"] = _tags(s.tags)
    if s.tag_sets:
        out["tagSets"] = [_tags(t) for t in s.tag_sets]
    if s.repos.allow or s.repos.deny:
        out["repos"] = {
            k: list(v) for k, v in (("allow", s.repos.allow), ("deny", s.repos.deny)) if v
        }
    if s.platform:
        out["platform"] = s.platform
    if s.platforms:
        out["platforms"] = list(s.platforms)
    if s.schedule:
        out["schedule"] = s.schedule
    if s.interval:
        out["interval"] = format_duration(s.interval)
    if s.backup:
        out["backup"] = s.backup
    out["ratelimit"] = {"min": s.ratelimit.min, "retry": format_duration(s.ratelimit.retry)}
    out["digestTags"] = s.digest_tags
    out["referrers"] = s.referrers
    if s.referrer_filters:
        out["referrerFilters"] = [
            {
                **({"artifactType": f.artifact_type} if f.artifact_type else {}),
                **({"annotations": dict(f.annotations)} if f.annotations else {}),
            }
            for f in s.referrer_filters
        ]
    if s.referrer_source:
        out["referrerSource"] = s.referrer_source
    if s.referrer_target:
        out["referrerTarget"] = s.referrer_target
    out["referrerSlow"] = s.referrer_slow
    out["fastCopy"] = s.fast_copy
    out["forceRecursive"] = s.force_recursive
    out["includeExternal"] = s.include_external
    out["mediaTypes"] = list(s.media_types)
    # regplan's lifecycle extensions: shown when used, so a plain regsync config reads as before
    if s.prune:
        out["prune"] = True
        if s.prune_protect:
            out["pruneProtect"] = list(s.prune_protect)
        out["pruneMax"] = s.prune_max
    if s.min_tags:
        out["minTags"] = s.min_tags
    if s.immutable_tags:
        out["immutableTags"] = list(s.immutable_tags)
    return out


def resolved(config: Config) -> dict[str, Any]:
    d = config.defaults
    defaults: dict[str, Any] = {
        "parallel": d.parallel,
        "skipDockerConfig": d.skip_docker_config,
    }
    if d.cache_count:
        defaults["cacheCount"] = d.cache_count
    if d.cache_time:
        defaults["cacheTime"] = format_duration(d.cache_time)
    if d.user_agent:
        defaults["userAgent"] = d.user_agent
    if d.blob_limit:
        defaults["blobLimit"] = d.blob_limit
    out: dict[str, Any] = {"version": config.version}
    if config.creds:
        out["creds"] = [_host(h) for h in config.creds]
    out["defaults"] = defaults
    out["sync"] = [_step(s) for s in config.sync]
    return out


# -- a small YAML writer (block style, quoting whatever could be misread) ---------------------

# Plain (unquoted) text must not start with a YAML indicator (`>` `*` `@` `-` ...) and must not
# read as another type (`true`, `3.9`, `~`); anything else is written JSON-quoted.
_PLAIN_RE = re.compile(r"[A-Za-z0-9_./+<=^~$][A-Za-z0-9_./@:+<>=^~*$ \-]*")
_AMBIGUOUS_RE = re.compile(
    r"(?i:true|false|yes|no|on|off|y|n|null|~)|[-+]?[0-9][0-9_.:eE+-]*|[-+]?\.(?i:inf|nan)"
)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if (
        _PLAIN_RE.fullmatch(text)
        and not _AMBIGUOUS_RE.fullmatch(text)
        and ": " not in text
        and " #" not in text
        and not text.endswith((" ", ":"))
    ):
        return text
    return json.dumps(text, ensure_ascii=False)


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if (isinstance(item, dict) and item) or (isinstance(item, list) and item):
                out.append(f"{pad}{key}:")
                _emit(item, indent + 2, out)
            elif isinstance(item, dict | list):
                out.append(f"{pad}{key}: {'{}' if isinstance(item, dict) else '[]'}")
            else:
                out.append(f"{pad}{key}: {_scalar(item)}")
        return
    for item in value:
        if isinstance(item, dict) and item:
            lines: list[str] = []
            _emit(item, indent + 2, lines)
            out.append(f"{pad}- {lines[0].lstrip()}")
            out.extend(lines[1:])
        elif isinstance(item, list) and item:
            lines = []
            _emit(item, indent + 2, lines)
            out.append(f"{pad}- {lines[0].lstrip()}")
            out.extend(lines[1:])
        else:
            out.append(f"{pad}- {_scalar(item) if not isinstance(item, dict | list) else '{}'}")


def to_yaml(data: dict[str, Any]) -> str:
    out: list[str] = []
    _emit(data, 0, out)
    return "\n".join(out) + "\n"
