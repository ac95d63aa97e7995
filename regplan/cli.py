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

app = typer.Typer(
    name="regplan",
    help="Mirror container images between registries: plan, review, apply. Reads regsync configs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Validate or print the resolved configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
report_app = typer.Typer(help="Read apply reports (--report files).", no_args_is_help=True)
app.add_typer(report_app, name="report")


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


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
FormatOpt = Annotated[Format, typer.Option("--format", help="How to print the plan.")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write the result as JSON here.")]
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
    for opt in GlobalOptions.logopt:
        if opt != "json":
            raise RegplanError(f'unknown --logopt "{opt}" (only "json" is recognised)')
    try:
        logs.setup(GlobalOptions.verbosity, json_format="json" in GlobalOptions.logopt)
    except ValueError as e:
        raise RegplanError(str(e)) from None


def _run(call: Callable[[], int | None]) -> int:
    """Run a command body; every expected error becomes one line on stderr and an exit code."""
    try:
        code = call()
    except RegplanError as e:
        if GlobalOptions.debug():
            import traceback

            traceback.print_exc()
        print(f"regplan: error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        print("regplan: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except Exception as e:  # unexpected: one line unless debugging
        if GlobalOptions.debug():
            raise
        print(
            f"regplan: internal error: {type(e).__name__}: {e} (run with -v debug for details)",
            file=sys.stderr,
        )
        raise typer.Exit(1) from None
    if code:
        raise typer.Exit(code)
    return 0


def global_options(fn: Callable[..., int | None]) -> Callable[..., int]:
    """Give a command -c/-v/--logopt (after the command name) and one-line error handling."""
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
        parameters=[*signature.parameters.values(), *_GLOBAL_PARAMS]
    )
    del command.__wrapped__  # typer must read the signature above, not the wrapped one's
    return command


@app.callback()
@global_options
def _root() -> None:
    """Global options given before the command name."""


def _config_path() -> str:
    from regplan.config.discover import find_config

    return find_config(GlobalOptions.config)


# -- plan / show / apply ---------------------------------------------------------------------
@app.command()
@global_options
def plan(
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Write the plan file here.")
    ] = None,
    missing: Annotated[
        bool, typer.Option("--missing", help="Only tags missing on the target.")
    ] = False,
    fmt: FormatOpt = Format.text,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 with no changes, 2 with changes.")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Also list tags the filters dropped, and why.")
    ] = False,
) -> int:
    """Resolve the config, query source and target read-only, and print the plan."""
    from regplan.commands import plan_command

    return plan_command(
        _config_path(),
        out=out,
        missing=missing,
        fmt=fmt.value,
        detailed_exitcode=detailed_exitcode,
        explain=explain,
    )


@app.command()
@global_options
def show(
    plan_file: Annotated[
        Path, typer.Argument(metavar="PLAN", help="A plan file written by `plan -o`.")
    ],
    fmt: FormatOpt = Format.text,
    shards: Annotated[
        int | None,
        typer.Option("--shards", metavar="N", help="Print how N shards would split the plan."),
    ] = None,
) -> int:
    """Render a saved plan."""
    from regplan.commands import show_command, show_shards_command

    if shards is not None:
        return show_shards_command(plan_file, shards, fmt=fmt.value)
    return show_command(plan_file, fmt=fmt.value)


@app.command()
@global_options
def apply(
    plan_file: Annotated[
        Path | None, typer.Argument(metavar="[PLAN]", help="A saved plan; without it, plan first.")
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option("--parallel", help="Image copies at once (default: defaults.parallel)."),
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="After a failure, go on with independent actions.")
    ] = False,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Do not ask before applying a fresh plan.")
    ] = False,
    report: ReportOpt = None,
    max_age: Annotated[
        str | None, typer.Option("--max-age", help="Refuse a saved plan older than this (e.g. 2h).")
    ] = None,
    shard: ShardOpt = None,
) -> int:
    """Apply a saved plan exactly, or plan and apply in one (-c, asks unless --auto-approve)."""
    from regplan.commands import apply_command

    return apply_command(
        plan_file,
        # a saved plan names its config: -c is optional then, and passed down as given
        config_path=GlobalOptions.config if plan_file is not None else _config_path(),
        parallel=parallel,
        keep_going=keep_going,
        auto_approve=auto_approve,
        report=report,
        max_age=max_age,
        shard=shard,
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
    shard: ShardOpt = None,
) -> int:
    """Plan and apply once, without prompting (regsync once)."""
    from regplan.commands import once_command

    return once_command(
        _config_path(), missing=missing, abort_on_error=abort_on_error, report=report, shard=shard
    )


@app.command()
@global_options
def check(abort_on_error: AbortOpt = False) -> int:
    """Report what needs syncing and write nothing (regsync check; exit 0 unless an error)."""
    from regplan.commands import check_command

    return check_command(_config_path(), abort_on_error=abort_on_error)


@global_options
def _watch(
    listen: Annotated[
        str,
        typer.Option("--listen", help="Address for /healthz, /readyz, /metrics; '' turns it off."),
    ] = "127.0.0.1:9090",
    grace_period: Annotated[
        str,
        typer.Option("--grace-period", help="How long in-flight copies may finish on shutdown."),
    ] = "30s",
    plan_dir: Annotated[
        Path | None, typer.Option("--plan-dir", help="Keep each run's plan and report here.")
    ] = None,
    abort_on_error: AbortOpt = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Apply the deletes of prune steps (else only report them)."),
    ] = False,
) -> int:
    """Run every step on its schedule, with health and metrics endpoints (regsync server)."""
    from regplan.watch import watch_command

    return watch_command(
        _config_path(),
        listen=listen,
        grace_period=grace_period,
        plan_dir=plan_dir,
        abort_on_error=abort_on_error,
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


@report_app.command("merge")
@global_options
def report_merge(
    reports: Annotated[
        list[Path], typer.Argument(metavar="REPORT...", help="Reports written by --report.")
    ],
    fmt: FormatOpt = Format.text,
) -> int:
    """One result for the reports of one apply (the shards of a sharded apply)."""
    from regplan.commands import report_merge_command

    return report_merge_command(reports, fmt=fmt.value)


@app.command()
@global_options
def version() -> int:
    """Print regplan's version, Python's, and its dependencies'."""
    from regplan.version import version_text

    typer.echo(version_text())
    return 0


def main() -> None:
    app(prog_name="regplan")


if __name__ == "__main__":
    main()
