"""The command line's options, each defined once, and the checks of their values.

Each check raises UsageError (exit 2) with one line naming the option, so a typo never costs a
full plan against every registry first. The option aliases (`Annotated` types) are what the
commands in cli.py take: a shared option is written here once, its help text with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from regplan.errors import UsageError

E = TypeVar("E", bound=StrEnum)


def choice(option: str, value: str, enum: type[E]) -> E:
    """`value` as a member of `enum`, or a usage error listing the choices."""
    try:
        return enum(value)
    except ValueError:
        names = [m.value for m in enum]
        listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
        raise UsageError(f"invalid {option} {value!r}: choose {listed}") from None


def duration(option: str, text: str) -> float:
    """Seconds in Go duration text (`2h`, `30m`), or a usage error with a hint."""
    from regplan.durations import DurationError, parse_duration

    try:
        seconds = parse_duration(text.strip())
    except DurationError:
        bare = text.strip()
        if bare.isdigit():
            hint = f"a number needs a unit, e.g. {bare}h or {bare}m"
        elif bare[:-1].isdigit() and bare[-1:] in ("d", "w", "y"):
            hint = f"the largest unit is h, e.g. {int(bare[:-1]) * 24}h for {bare}"
        else:
            hint = "use a duration like 2h, 30m or 1h30m"
        raise UsageError(f"invalid {option} {text!r}: {hint}") from None
    if seconds < 0:
        raise UsageError(f"invalid {option} {text!r}: must not be negative")
    return seconds


def writable_file(option: str, path: Path) -> None:
    """Refuse an output path that cannot be written: checked before planning or applying, so
    a typo in `-o` or `--report` does not surface only after the work is done (and lost)."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, not a file")
    parent = path.absolute().parent
    if not parent.exists():
        raise UsageError(f"{option} {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: file is not writable")


class _Kind(Enum):
    """Annotations whose command-line values need no parsing, only wrapping."""

    FLAG = "flag"
    TEXT = "text"
    PATH = "path"
    TEXTS = "texts"
    PATHS = "paths"
    INT = "int"


_PLAIN_ANNOTATIONS: tuple[tuple[object, _Kind], ...] = (
    (bool, _Kind.FLAG),
    (str, _Kind.TEXT),
    (str | None, _Kind.TEXT),
    (Path, _Kind.PATH),
    (Path | None, _Kind.PATH),
    (list[str], _Kind.TEXTS),
    (list[str] | None, _Kind.TEXTS),
    (list[Path], _Kind.PATHS),
    (list[Path] | None, _Kind.PATHS),
    (int, _Kind.INT),
    (int | None, _Kind.INT),
)
_SLOW = object()  # "not a plain value": typer's own coercion decides


def _plain(kind: _Kind, value: Any) -> Any:
    if kind is _Kind.FLAG:
        return value if type(value) is bool else _SLOW
    if kind is _Kind.TEXT:
        return value if type(value) is str else _SLOW
    if kind is _Kind.PATH:
        return Path(value) if type(value) is str or isinstance(value, Path) else _SLOW
    if kind is _Kind.INT:
        # a default, or plain decimal digits; anything else gets typer's own wording
        if type(value) is int:
            return value
        return int(value) if type(value) is str and value.isascii() and value.isdigit() else _SLOW
    if not isinstance(value, (tuple, list)) or not all(type(v) is str for v in value):
        return _SLOW
    return list(value) if kind is _Kind.TEXTS else [Path(v) for v in value]


class _PlainParam:
    """typer's runtime coercion of one parameter, pydantic only for values that need it."""

    def __init__(self, kind: _Kind, descriptor: Any, build: Callable[[Any], Any]) -> None:
        self._kind = kind
        self._descriptor = descriptor
        self._build = build
        self._full: Any = None
        info = getattr(descriptor, "parameter_info", None)
        # an int outside the option's min/max (or any clamped one) is typer's to word
        self._clamped = bool(getattr(info, "clamp", False))
        self._min = getattr(info, "min", None)
        self._max = getattr(info, "max", None)

    def _in_range(self, value: Any) -> bool:
        if self._kind is not _Kind.INT:
            return True
        if self._clamped:
            return False
        return (self._min is None or value >= self._min) and (
            self._max is None or value <= self._max
        )

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None  # as typer answers a missing value
        if multi != (self._kind in (_Kind.TEXTS, _Kind.PATHS)):
            plain = _SLOW
        else:
            plain = _plain(self._kind, value)
        if plain is not _SLOW and self._in_range(plain):
            return plain
        if self._full is None:
            self._full = self._build(self._descriptor)
        return self._full.coerce(value, param=param, ctx=ctx)


def plain_coercion(build: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap typer's `build_runtime_param`: plain str/Path (and lists of them) values pass
    through without importing pydantic; everything else is built by `build` on first use."""

    def build_plain(descriptor: Any) -> Any:
        if getattr(descriptor, "file_annotation", None) is None:
            annotation = getattr(descriptor, "annotation", None)
            for known, kind in _PLAIN_ANNOTATIONS:
                if annotation == known:
                    return _PlainParam(kind, descriptor, build)
        return build(descriptor)

    return build_plain


# -- the options: each defined once, shared by every command that takes it -------------------
class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


class CheckFormat(StrEnum):
    text = "text"
    json = "json"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def _format_value(value: str) -> str:
    return choice("--format", value, Format).value


def _check_format_value(value: str) -> str:
    return choice("--format", value, CheckFormat).value


def complete_from(enum: type[StrEnum]) -> Callable[[str], list[str]]:
    return lambda incomplete: [m.value for m in enum if m.value.startswith(incomplete)]


def _flag(name: str, help: str) -> Any:
    return typer.Option(name, help=help)


def _value(*names: str, metavar: str, help: str, **extra: Any) -> Any:
    return typer.Option(*names, metavar=metavar, help=help, **extra)


def _argument(metavar: str, help: str, **extra: Any) -> Any:
    return typer.Argument(metavar=metavar, help=help, **extra)


# global options (before or after the command name)
ConfigOpt = Annotated[
    str | None,
    _value(
        "-c",
        "--config",
        metavar="FILE",
        help="Config file (regsync format); '-' reads stdin.",
        show_default=False,
    ),
]
VerbosityOpt = Annotated[
    str | None,
    _value(
        "-v",
        "--verbosity",
        metavar="LEVEL",
        help="Log level: trace, debug, info, warn, error.",
        show_default=False,
    ),
]
LogoptOpt = Annotated[
    list[str] | None,
    _value(
        "--logopt",
        metavar="OPT",
        help="Log options; 'json' for JSON log lines.",
        show_default=False,
    ),
]

# what to print
# --format is parsed by us, not typer: its enum errors read as pydantic's wording
FormatOpt = Annotated[
    str,
    _value(
        "--format",
        metavar="text|json|markdown",
        help="How to print the plan.",
        callback=_format_value,
        autocompletion=complete_from(Format),
    ),
]
CheckFormatOpt = Annotated[
    str,
    _value(
        "--format",
        metavar="text|json",
        help="How to print the result.",
        callback=_check_format_value,
        autocompletion=complete_from(CheckFormat),
    ),
]
MarkdownLimitOpt = Annotated[
    int,
    _value(
        "--markdown-limit",
        metavar="CHARS",
        min=1000,
        help="Most characters of --format markdown (rows are cut per step beyond it).",
    ),
]
ReportOpt = Annotated[
    Path | None, _value("--report", metavar="FILE", help="Write the result as JSON here.")
]

# what to plan
StepOpt = Annotated[
    list[str] | None,
    _value(
        "--step",
        metavar="STEP",
        help="Only this sync step: its index (2 for sync[2]) or a target glob. Repeatable.",
        show_default=False,
    ),
]
PlanMissingOpt = Annotated[bool, _flag("--missing", "Only tags missing on the target.")]
OnceMissingOpt = Annotated[bool, _flag("--missing", "Only copy tags missing on the target.")]
OutOpt = Annotated[
    Path | None, _value("-o", "--out", metavar="FILE", help="Write the plan file here.")
]
DetailedExitcodeOpt = Annotated[
    bool, _flag("--detailed-exitcode", "Exit 0 with no changes, 2 with changes.")
]
ExplainOpt = Annotated[bool, _flag("--explain", "Also list tags the filters dropped, and why.")]
SignKeyOpt = Annotated[
    Path | None,
    _value("--sign-key", metavar="KEY", help="Sign the plan file (-o) with this Ed25519 PEM key."),
]

# how to apply
AbortOpt = Annotated[bool, _flag("--abort-on-error", "Stop at the first error.")]
ShardOpt = Annotated[
    str | None,
    _value(
        "--shard",
        metavar="I/N",
        help="Apply only shard I of N (0-based); N alone or 'env' takes I from "
        "JOB_COMPLETION_INDEX / REGPLAN_SHARD_INDEX.",
        show_default=False,
    ),
]
ShareLimitsOpt = Annotated[
    bool,
    _flag(
        "--share-limits",
        "With --shard N: each worker keeps 1/N of every registry's reqPerSec and reqConcurrent.",
    ),
]
ParallelOpt = Annotated[
    int | None,
    _value("--parallel", metavar="N", help="Image copies at once (default: defaults.parallel)."),
]
KeepGoingOpt = Annotated[
    bool, _flag("--keep-going", "After a failure, go on with independent actions.")
]
AutoApproveOpt = Annotated[
    bool, _flag("--auto-approve", "Do not ask before applying a fresh plan.")
]
MaxAgeOpt = Annotated[
    str | None,
    _value("--max-age", metavar="DURATION", help="Refuse a saved plan older than this (e.g. 2h)."),
]
VerifyKeyOpt = Annotated[
    Path | None,
    _value(
        "--verify-key",
        metavar="PUBKEY",
        help="Refuse a plan not signed by this Ed25519 public key.",
    ),
]
AllowPartialOpt = Annotated[
    bool, _flag("--allow-partial", "Apply a plan that recorded errors (exits 1 still).")
]
RefuseSourceDriftOpt = Annotated[
    bool, _flag("--refuse-source-drift", "Refuse the plan if a source tag moved.")
]

# saved plans and reports
ShowPlanArg = Annotated[Path, _argument("PLAN", "A plan file written by `plan -o`.")]
ApplyPlanArg = Annotated[Path | None, _argument("PLAN", "A saved plan; without it, plan first.")]
ShardsOpt = Annotated[
    int | None, _value("--shards", metavar="N", help="Print how N shards would split the plan.")
]
ReportsArg = Annotated[list[Path], _argument("REPORT...", "Reports written by --report.")]

# one image, no config
SourceArg = Annotated[str, _argument("SOURCE", "Image to copy, e.g. registry/repo:tag.")]
TargetArg = Annotated[str, _argument("TARGET", "Where to put it, e.g. ocidir://dir/repo:tag.")]
PlatformOpt = Annotated[
    list[str] | None,
    _value(
        "--platform",
        metavar="OS/ARCH",
        help="Copy only this platform of a multi-platform image. Repeatable.",
        show_default=False,
    ),
]
ReferrersOpt = Annotated[bool, _flag("--referrers", "Also copy referrers (signatures, SBOMs).")]
DigestTagsOpt = Annotated[
    bool, _flag("--digest-tags", "Also copy digest tags (sha256-<hex>.sig ...).")
]
DryRunOpt = Annotated[bool, _flag("--dry-run", "Print the plan and copy nothing.")]

# watch
ListenOpt = Annotated[
    str,
    _value(
        "--listen",
        metavar="HOST:PORT",
        help="Address for /healthz, /readyz, /metrics; '' turns it off.",
    ),
]
GracePeriodOpt = Annotated[
    str,
    _value(
        "--grace-period",
        metavar="DURATION",
        help="How long in-flight copies may finish on shutdown.",
    ),
]
PlanDirOpt = Annotated[
    Path | None,
    _value("--plan-dir", metavar="DIR", help="Keep each run's plan and report here."),
]
RunTimeoutOpt = Annotated[
    str,
    _value(
        "--run-timeout",
        metavar="DURATION",
        help="End a step's run as an error after this; 0s: never.",
    ),
]
PruneOpt = Annotated[
    bool, _flag("--prune", "Apply the deletes of prune steps (else only report them).")
]

ShellArg = Annotated[
    str,
    _argument(
        "bash|zsh|fish",
        "The shell to print a completion script for.",
        autocompletion=complete_from(Shell),
    ),
]
