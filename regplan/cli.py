"""The command line: parse flags, call one function per command, map errors to exit codes.

Global options (-c, -v, --logopt) work before the command name and after it, as regsync takes
them: `global_options` adds them to every command. Engines are imported inside each command so
`regplan --help` stays fast.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from regplan.errors import RegplanError

_CONTEXT = {"help_option_names": ["-h", "--help"]}


def _plain_argument_help() -> None:
    """typer 0.2x shows arguments as `{PLAN}` in usage and `PLAN <path>` in the list; the
    POSIX-style `PLAN` / `[PLAN]` and the metavar say it more plainly."""
    core = getattr(typer, "core", None)
    argument = getattr(core, "TyperArgument", None)
    if argument is None:
        return
    if hasattr(argument, "display_type_rich"):
        argument.display_type_rich = lambda self, ctx: None
    if hasattr(argument, "_usage_display_name"):

        def usage_name(self: Any) -> str:
            name = self.metavar or str(self.name).upper()
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        argument._usage_display_name = usage_name


_plain_argument_help()
app = typer.Typer(
    name="regplan",
    help="Mirror container images between registries: plan, review, apply. Reads regsync configs.",
    no_args_is_help=True,
    add_completion=False,  # `regplan completion SHELL` instead, as regsync and regctl have it
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=_CONTEXT,
)
config_app = typer.Typer(
    help="Validate or print the resolved configuration.",
    no_args_is_help=True,
    context_settings=_CONTEXT,
)
app.add_typer(config_app, name="config")
report_app = typer.Typer(help="Read apply reports (--report files).", no_args_is_help=True)
app.add_typer(report_app, name="report")


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
    from regplan.cliopts import choice

    return choice("--format", value, Format).value


def _check_format_value(value: str) -> str:
    from regplan.cliopts import choice

    return choice("--format", value, CheckFormat).value


def _complete_from(enum: type[StrEnum]) -> Callable[[str], list[str]]:
    return lambda incomplete: [m.value for m in enum if m.value.startswith(incomplete)]


class GlobalOptions:
    """Values of -c/-v/--logopt, from before or after the command name (after wins)."""

    config: str | None = None
    verbosity: str = "info"
    logopt: list[str] = []  # noqa: RUF012 - class-level state of one process

    @classmethod
    def debug(cls) -> bool:
        return cls.verbosity.lower() in ("debug", "trace")


ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "-c",
        "--config",
        metavar="FILE",
        help="Config file (regsync format); '-' reads stdin.",
        show_default=False,
    ),
]
ShareLimitsOpt = Annotated[
    bool,
    typer.Option(
        "--share-limits",
        help="With --shard N: each worker keeps 1/N of every registry's reqPerSec and reqConcurrent.",
    ),
]
VerbosityOpt = Annotated[
    str | None,
    typer.Option(
        "-v",
        "--verbosity",
        metavar="LEVEL",
        help="Log level: trace, debug, info, warn, error.",
        show_default=False,
    ),
]
LogoptOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--logopt",
        metavar="OPT",
        help="Log options; 'json' for JSON log lines.",
        show_default=False,
    ),
]
AbortOpt = Annotated[bool, typer.Option("--abort-on-error", help="Stop at the first error.")]
# --format is parsed by us, not typer: its enum errors read as pydantic's wording
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        metavar="text|json|markdown",
        help="How to print the plan.",
        callback=_format_value,
        autocompletion=_complete_from(Format),
    ),
]
ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", metavar="FILE", help="Write the result as JSON here."),
]
StepOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--step",
        metavar="STEP",
        help="Only this sync step: its index (2 for sync[2]) or a target glob. Repeatable.",
        show_default=False,
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="I/N",
        help="Apply only shard I of N (0-based); N alone or 'env' takes I from "
        "JOB_COMPLETION_INDEX / REGPLAN_SHARD_INDEX.",
        show_default=False,
    ),
]
MarkdownLimitOpt = Annotated[
    int,
    typer.Option(
        "--markdown-limit",
        metavar="CHARS",
        min=1000,
        help="Most characters of --format markdown (rows are cut per step beyond it).",
    ),
]
_GLOBAL_PARAMS = (
    inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt),
    inspect.Parameter(
        "verbosity", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=VerbosityOpt
    ),
    inspect.Parameter("logopt", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=LogoptOpt),
)


def _apply_globals(config: str | None, verbosity: str | None, logopt: list[str] | None) -> None:
    from regplan import logs

    if config is not None:
        GlobalOptions.config = config
    if verbosity is not None:
        GlobalOptions.verbosity = verbosity
    if logopt:
        GlobalOptions.logopt = [*GlobalOptions.logopt, *logopt]
    from regplan.errors import UsageError

    for opt in GlobalOptions.logopt:
        if opt != "json":
            raise UsageError(f'unknown --logopt "{opt}" (only "json" is recognised)')
    try:
        logs.setup(GlobalOptions.verbosity, json_format="json" in GlobalOptions.logopt)
    except ValueError as e:
        raise UsageError(f"{e} (use trace, debug, info, warn or error)") from None


def report_error(message: str, *, prefix: str = "regplan") -> None:
    """The final error line: plain text, or a JSON log record under --logopt json (so a log
    pipeline never meets one line that is not JSON)."""
    if "json" in GlobalOptions.logopt:
        from regplan import logs

        logs.get("regplan").error(message)
    else:
        from regplan.textsafe import terminal

        # registry error bodies end up here: no control character may forge a line
        print(f"{prefix}: error: {terminal(message)}", file=sys.stderr)


def _run(call: Callable[[], int | None]) -> int:
    """Run a command body; every expected error becomes one line on stderr and an exit code."""
    try:
        code = call()
    except RegplanError as e:
        if GlobalOptions.debug():
            import traceback

            traceback.print_exc()
        report_error(str(e))
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        print("regplan: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except Exception as e:  # unexpected: one line unless debugging
        if GlobalOptions.debug():
            raise
        report_error(f"internal error: {type(e).__name__}: {e} (run with -v debug for details)")
        raise typer.Exit(1) from None
    if code:
        raise typer.Exit(code)
    return 0


def _safe(e: BaseException) -> str:
    from regplan.textsafe import terminal

    return terminal(str(e))


def global_options(fn: Callable[..., int | None]) -> Callable[..., int]:
    """Give a command -c/-v/--logopt (after the command name) and one-line error handling."""
    return _with_globals(fn, _GLOBAL_PARAMS)


def no_config_options(fn: Callable[..., int | None]) -> Callable[..., int]:
    """-v/--logopt only, for commands that read no config: a -c there would be ignored."""

    def body(*args: Any, **kwargs: Any) -> int | None:
        if GlobalOptions.config is not None:
            from regplan.errors import UsageError

            raise UsageError(f"{fn.__name__} reads no config file: drop -c")
        return fn(*args, **kwargs)

    functools.update_wrapper(body, fn)
    return _with_globals(body, _GLOBAL_PARAMS[1:])


def _with_globals(
    fn: Callable[..., int | None], params: tuple[inspect.Parameter, ...]
) -> Callable[..., int]:
    signature = inspect.signature(fn, eval_str=True)

    @functools.wraps(fn)
    def command(
        *args: Any,
        config: str | None = None,
        verbosity: str | None = None,
        logopt: list[str] | None = None,
        **kwargs: Any,
    ) -> int:
        def body() -> int | None:
            _apply_globals(config, verbosity, logopt)
            return fn(*args, **kwargs)

        return _run(body)

    command.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *params]
    )
    del command.__wrapped__  # typer must read the signature above, not the wrapped one's
    return command


def _print_version(value: bool) -> None:
    if value:
        from regplan import __version__

        typer.echo(f"regplan {__version__}")
        raise typer.Exit()


@app.callback()
@global_options
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit (`regplan version` lists dependencies too).",
        ),
    ] = False,
) -> None:
    """Global options given before the command name."""


def _config_path() -> str:
    from regplan.config.discover import find_config

    return find_config(GlobalOptions.config)


def _check_outputs(*outputs: tuple[str, Path | None]) -> None:
    from regplan.cliopts import writable_file

    for option, path in outputs:
        if path is not None:
            writable_file(option, path)


# -- plan / show / apply ---------------------------------------------------------------------
@app.command()
@global_options
def plan(
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", metavar="FILE", help="Write the plan file here."),
    ] = None,
    missing: Annotated[
        bool, typer.Option("--missing", help="Only tags missing on the target.")
    ] = False,
    fmt: FormatOpt = Format.text.value,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 with no changes, 2 with changes.")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Also list tags the filters dropped, and why.")
    ] = False,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key", metavar="KEY", help="Sign the plan file (-o) with this Ed25519 PEM key."
        ),
    ] = None,
    step: StepOpt = None,
    markdown_limit: MarkdownLimitOpt = 60_000,
) -> int:
    """Resolve the config, query source and target read-only, and print the plan."""
    from regplan.commands import plan_command

    _check_outputs(("-o", out))
    return plan_command(
        _config_path(),
        out=out,
        missing=missing,
        fmt=fmt,
        detailed_exitcode=detailed_exitcode,
        explain=explain,
        sign_key=sign_key,
        steps=tuple(step or ()),
        markdown_limit=markdown_limit,
    )


@app.command()
@no_config_options
def show(
    plan_file: Annotated[
        Path, typer.Argument(metavar="PLAN", help="A plan file written by `plan -o`.")
    ],
    fmt: FormatOpt = Format.text.value,
    shards: Annotated[
        int | None,
        typer.Option("--shards", metavar="N", help="Print how N shards would split the plan."),
    ] = None,
    markdown_limit: MarkdownLimitOpt = 60_000,
) -> int:
    """Render a saved plan."""
    from regplan.commands import show_command, show_shards_command

    if shards is not None:
        return show_shards_command(plan_file, shards, fmt=fmt)
    return show_command(plan_file, fmt=fmt, markdown_limit=markdown_limit)


@app.command()
@global_options
def apply(
    plan_file: Annotated[
        Path | None, typer.Argument(metavar="PLAN", help="A saved plan; without it, plan first.")
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option(
            "--parallel", metavar="N", help="Image copies at once (default: defaults.parallel)."
        ),
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="After a failure, go on with independent actions.")
    ] = False,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Do not ask before applying a fresh plan.")
    ] = False,
    report: ReportOpt = None,
    max_age: Annotated[
        str | None,
        typer.Option(
            "--max-age", metavar="DURATION", help="Refuse a saved plan older than this (e.g. 2h)."
        ),
    ] = None,
    step: StepOpt = None,
    shard: ShardOpt = None,
    share_limits: ShareLimitsOpt = False,
    verify_key: Annotated[
        Path | None,
        typer.Option(
            "--verify-key",
            metavar="PUBKEY",
            help="Refuse a plan not signed by this Ed25519 public key.",
        ),
    ] = None,
    allow_partial: Annotated[
        bool,
        typer.Option("--allow-partial", help="Apply a plan that recorded errors (exits 1 still)."),
    ] = False,
    refuse_source_drift: Annotated[
        bool,
        typer.Option("--refuse-source-drift", help="Refuse the plan if a source tag moved."),
    ] = False,
) -> int:
    """Apply a saved plan exactly, or plan and apply in one (-c, asks unless --auto-approve)."""
    from regplan.cliopts import duration
    from regplan.commands import SavedPlanChecks, apply_command
    from regplan.errors import UsageError

    if max_age is not None:
        duration("--max-age", max_age)
    if step and plan_file is not None:
        raise UsageError(
            "--step selects steps when planning: a saved plan already holds only the steps "
            "it was made with (plan again with --step)"
        )
    if parallel is not None and parallel < 1:
        raise UsageError(f"invalid --parallel {parallel}: must be 1 or more")
    _check_outputs(("--report", report))
    return apply_command(
        plan_file,
        # a saved plan names its config: -c is optional then, and passed down as given
        config_path=GlobalOptions.config if plan_file is not None else _config_path(),
        parallel=parallel,
        keep_going=keep_going,
        auto_approve=auto_approve,
        report=report,
        max_age=max_age,
        steps=tuple(step or ()),
        shard=shard,
        share_limits=share_limits,
        checks=SavedPlanChecks(
            allow_partial=allow_partial,
            refuse_source_drift=refuse_source_drift,
            verify_key=verify_key,
        ),
    )


# -- regsync-compatible ----------------------------------------------------------------------
@app.command()
@global_options
def once(
    missing: Annotated[
        bool, typer.Option("--missing", help="Only copy tags missing on the target.")
    ] = False,
    abort_on_error: AbortOpt = False,
    report: ReportOpt = None,
    step: StepOpt = None,
    shard: ShardOpt = None,
    share_limits: ShareLimitsOpt = False,
) -> int:
    """Plan and apply once, without prompting (regsync once)."""
    from regplan.commands import once_command

    _check_outputs(("--report", report))
    return once_command(
        _config_path(),
        missing=missing,
        abort_on_error=abort_on_error,
        report=report,
        steps=tuple(step or ()),
        shard=shard,
        share_limits=share_limits,
    )


@app.command()
@global_options
def check(
    abort_on_error: AbortOpt = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="text|json",
            help="How to print the result.",
            callback=_check_format_value,
            autocompletion=_complete_from(CheckFormat),
        ),
    ] = CheckFormat.text.value,
    step: StepOpt = None,
) -> int:
    """Report what needs syncing and write nothing (regsync check; exit 0 unless an error)."""
    from regplan.commands import check_command

    return check_command(
        _config_path(), abort_on_error=abort_on_error, fmt=fmt, steps=tuple(step or ())
    )


@app.command()
@global_options
def copy(
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help="Image to copy, e.g. registry/repo:tag.")
    ],
    target: Annotated[
        str, typer.Argument(metavar="TARGET", help="Where to put it, e.g. ocidir://dir/repo:tag.")
    ],
    platform: Annotated[
        list[str] | None,
        typer.Option(
            "--platform",
            metavar="OS/ARCH",
            help="Copy only this platform of a multi-platform image. Repeatable.",
            show_default=False,
        ),
    ] = None,
    referrers: Annotated[
        bool, typer.Option("--referrers", help="Also copy referrers (signatures, SBOMs).")
    ] = False,
    digest_tags: Annotated[
        bool, typer.Option("--digest-tags", help="Also copy digest tags (sha256-<hex>.sig ...).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and copy nothing.")
    ] = False,
    fmt: FormatOpt = Format.text.value,
    report: ReportOpt = None,
) -> int:
    """Copy one image without a config file: plan it, then apply it (-c adds creds)."""
    from regplan.commands import copy_command

    _check_outputs(("--report", report))
    return copy_command(
        source,
        target,
        config_path=GlobalOptions.config,
        platforms=tuple(platform or ()),
        referrers=referrers,
        digest_tags=digest_tags,
        dry_run=dry_run,
        fmt=fmt,
        report=report,
    )


@global_options
def _watch(
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help="Address for /healthz, /readyz, /metrics; '' turns it off.",
        ),
    ] = "127.0.0.1:9090",
    grace_period: Annotated[
        str,
        typer.Option(
            "--grace-period",
            metavar="DURATION",
            help="How long in-flight copies may finish on shutdown.",
        ),
    ] = "30s",
    plan_dir: Annotated[
        Path | None,
        typer.Option("--plan-dir", metavar="DIR", help="Keep each run's plan and report here."),
    ] = None,
    abort_on_error: AbortOpt = False,
    run_timeout: Annotated[
        str,
        typer.Option(
            "--run-timeout",
            metavar="DURATION",
            help="End a step's run as an error after this; 0s: never.",
        ),
    ] = "1h",
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Apply the deletes of prune steps (else only report them)."),
    ] = False,
) -> int:
    """Run every step on its schedule, with health and metrics endpoints (regsync server)."""
    from regplan.cliopts import duration
    from regplan.watch import watch_command

    duration("--grace-period", grace_period)
    if listen:
        from regplan.errors import UsageError
        from regplan.watch.endpoints import parse_listen

        try:
            parse_listen(listen)
        except RegplanError as e:
            raise UsageError(str(e)) from None
    return watch_command(
        _config_path(),
        listen=listen,
        grace_period=grace_period,
        plan_dir=plan_dir,
        abort_on_error=abort_on_error,
        run_timeout=run_timeout,
        prune=prune,
    )


app.command(name="watch")(_watch)
app.command(name="server", help="Alias of `watch` (regsync server).")(_watch)


# -- config ----------------------------------------------------------------------------------
@config_app.command("validate")
@global_options
def config_validate() -> int:
    """Load and check the config; errors name the file and line."""
    from regplan.config.commands import validate_command

    return validate_command(_config_path())


@config_app.command("show")
@global_options
def config_show() -> int:
    """Print the resolved config: defaults merged, templates expanded, secrets redacted."""
    from regplan.config.commands import show_command

    return show_command(_config_path())


@config_app.command("schema")
@no_config_options
def config_schema() -> int:
    """Print the JSON Schema of the config file (for editors and linters)."""
    from regplan.config.jsonschema import schema_text

    sys.stdout.write(schema_text())
    return 0


@report_app.command("merge")
@global_options
def report_merge(
    reports: Annotated[
        list[Path], typer.Argument(metavar="REPORT...", help="Reports written by --report.")
    ],
    fmt: FormatOpt = Format.text.value,
) -> int:
    """One result for the reports of one apply (the shards of a sharded apply)."""
    from regplan.commands import report_merge_command

    return report_merge_command(reports, fmt=fmt)


@app.command()
@no_config_options
def version() -> int:
    """Print regplan's version, Python's, and its dependencies'."""
    from regplan.version import version_text

    typer.echo(version_text())
    return 0


@app.command()
@no_config_options
def completion(
    shell: Annotated[
        str,
        typer.Argument(
            metavar="bash|zsh|fish",
            help="The shell to print a completion script for.",
            autocompletion=_complete_from(Shell),
        ),
    ],
) -> int:
    """Print a shell completion script: `source <(regplan completion bash)`."""
    from regplan.cliopts import choice

    chosen = choice("shell", shell, Shell)
    from typer._completion_shared import get_completion_script

    typer.echo(get_completion_script(prog_name="regplan", complete_var=_COMPLETE_VAR, shell=chosen))
    return 0


_COMPLETE_VAR = "_REGPLAN_COMPLETE"


def _usage_line(e: Exception) -> str:
    """A click usage error as one line: what is wrong and where help is."""
    ctx = getattr(e, "ctx", None)
    where = ctx.command_path if ctx is not None else "regplan"
    message = " ".join(str(e.format_message()).split())  # type: ignore[attr-defined]
    return f"{where}: error: {message} (see {where} --help)"


def _json_logs_asked(argv: list[str]) -> bool:
    return "--logopt=json" in argv or any(
        a == "--logopt" and argv[i + 1 : i + 2] == ["json"] for i, a in enumerate(argv)
    )


def main() -> None:
    import os

    if os.environ.get(_COMPLETE_VAR):
        # completion requests only: register typer's shell classes (kept off normal start-up)
        from typer._completion_classes import completion_init

        completion_init()
    usage_error: type[Exception] = typer.BadParameter.__mro__[1]  # click's UsageError
    try:
        code = app(prog_name="regplan", standalone_mode=False)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `regplan`: the help is the answer
            e.show()  # type: ignore[attr-defined]
        elif _json_logs_asked(sys.argv[1:]):  # options were not parsed: look for it ourselves
            from regplan import logs

            logs.setup("info", json_format=True)
            logs.get("regplan").error(_usage_line(e).split(": error: ", 1)[1])
        else:
            print(_usage_line(e), file=sys.stderr)
        sys.exit(2)
    except RegplanError as e:  # raised while parsing, e.g. by an option's own check
        if _json_logs_asked(sys.argv[1:]) and "json" not in GlobalOptions.logopt:
            from regplan import logs

            GlobalOptions.logopt = ["json"]
            logs.setup("info", json_format=True)
        report_error(str(e))
        sys.exit(e.exit_code)
    except typer.Abort:
        print("regplan: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
