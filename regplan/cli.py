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
from pathlib import Path
from typing import Annotated, Any

import typer

from regplan.cliopts import (
    AbortOpt,
    AllowPartialOpt,
    ApplyPlanArg,
    AutoApproveOpt,
    CheckFormat,
    CheckFormatOpt,
    ConfigOpt,
    DetailedExitcodeOpt,
    DigestTagsOpt,
    DryRunOpt,
    ExplainOpt,
    Format,
    FormatOpt,
    GracePeriodOpt,
    KeepGoingOpt,
    ListenOpt,
    LogoptOpt,
    MarkdownLimitOpt,
    MaxAgeOpt,
    OnceMissingOpt,
    OutOpt,
    ParallelOpt,
    PlanDirOpt,
    PlanMissingOpt,
    PlatformOpt,
    PruneOpt,
    ReferrersOpt,
    RefuseSourceDriftOpt,
    ReportOpt,
    ReportsArg,
    RunTimeoutOpt,
    ShardOpt,
    ShardsOpt,
    ShareLimitsOpt,
    Shell,
    ShellArg,
    ShowPlanArg,
    SignKeyOpt,
    SourceArg,
    StepOpt,
    TargetArg,
    VerbosityOpt,
    VerifyKeyOpt,
    choice,
)
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


def _plain_values_without_pydantic() -> None:
    """typer 0.29 coerces every parameter value through a pydantic TypeAdapter, so every
    command paid pydantic's import (about a quarter of a one-image `check`'s start-up).
    Values that already are what their annotation names (a `str` for a str option, a tuple
    of str for a repeated one) pass through as pydantic would pass them; anything else
    (ints, anything to parse) still goes to typer's own coercion, errors worded as before."""
    from regplan.cliopts import plain_coercion

    core = getattr(typer, "core", None)
    build = getattr(core, "build_runtime_param", None)
    if core is None or build is None:
        return
    core.build_runtime_param = plain_coercion(build)


_plain_values_without_pydantic()
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


class GlobalOptions:
    """Values of -c/-v/--logopt, from before or after the command name (after wins)."""

    config: str | None = None
    verbosity: str = "info"
    logopt: list[str] = []  # noqa: RUF012 - class-level state of one process

    @classmethod
    def debug(cls) -> bool:
        return cls.verbosity.lower() in ("debug", "trace")


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
    out: OutOpt = None,
    missing: PlanMissingOpt = False,
    fmt: FormatOpt = Format.text.value,
    detailed_exitcode: DetailedExitcodeOpt = False,
    explain: ExplainOpt = False,
    sign_key: SignKeyOpt = None,
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
    plan_file: ShowPlanArg,
    fmt: FormatOpt = Format.text.value,
    shards: ShardsOpt = None,
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
    plan_file: ApplyPlanArg = None,
    parallel: ParallelOpt = None,
    keep_going: KeepGoingOpt = False,
    auto_approve: AutoApproveOpt = False,
    report: ReportOpt = None,
    max_age: MaxAgeOpt = None,
    step: StepOpt = None,
    shard: ShardOpt = None,
    share_limits: ShareLimitsOpt = False,
    verify_key: VerifyKeyOpt = None,
    allow_partial: AllowPartialOpt = False,
    refuse_source_drift: RefuseSourceDriftOpt = False,
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
    missing: OnceMissingOpt = False,
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
    fmt: CheckFormatOpt = CheckFormat.text.value,
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
    source: SourceArg,
    target: TargetArg,
    platform: PlatformOpt = None,
    referrers: ReferrersOpt = False,
    digest_tags: DigestTagsOpt = False,
    dry_run: DryRunOpt = False,
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
    listen: ListenOpt = "127.0.0.1:9090",
    grace_period: GracePeriodOpt = "30s",
    plan_dir: PlanDirOpt = None,
    abort_on_error: AbortOpt = False,
    run_timeout: RunTimeoutOpt = "1h",
    prune: PruneOpt = False,
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
    reports: ReportsArg,
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
    shell: ShellArg,
) -> int:
    """Print a shell completion script: `source <(regplan completion bash)`."""
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
