"""`regplan watch` (alias `server`): the scheduled server with health and metrics endpoints.

Modules: `scheduler` (when steps run), `runs` (one plan+apply of one step), `metrics`
(Prometheus), `endpoints` (HTTP), `server` (the life of the process: signals, reload, shutdown).
"""

from __future__ import annotations

from pathlib import Path

from regplan.errors import RegplanError


def watch_command(
    config_path: str,
    *,
    listen: str,
    grace_period: str,
    plan_dir: Path | None,
    abort_on_error: bool,
    run_timeout: str = "1h",
    prune: bool = False,
) -> int:
    from regplan.durations import DurationError, parse_duration
    from regplan.watch.server import WatchServer, WatchSettings

    try:
        grace = parse_duration(grace_period)
    except DurationError as e:
        raise RegplanError(f"invalid --grace-period: {e}") from None
    if grace < 0:
        raise RegplanError("invalid --grace-period: must not be negative")
    try:
        deadline = parse_duration(run_timeout)
    except DurationError as e:
        raise RegplanError(f"invalid --run-timeout: {e}") from None
    if deadline < 0:
        raise RegplanError("invalid --run-timeout: must not be negative")
    if listen:
        from regplan.watch.endpoints import parse_listen

        parse_listen(listen)  # a typo fails before the config is even read
    _refuse_unscheduled(config_path)
    if plan_dir is not None:
        plan_dir.mkdir(parents=True, exist_ok=True)
    settings = WatchSettings(
        config_path=config_path,
        listen=listen,
        grace_period=grace,
        plan_dir=plan_dir,
        abort_on_error=abort_on_error,
        run_timeout=deadline,
        prune=prune,
    )
    return WatchServer(settings).run()


def _refuse_unscheduled(config_path: str) -> None:
    """A watch in which no step has a schedule would run nothing, for ever, and exit 0."""
    if config_path == "-":
        return  # stdin can be read once only: the server reads it
    from regplan.config import load_config

    config = load_config(config_path)
    if not any(s.schedule or s.interval for s in config.sync):
        raise RegplanError(
            f"{config_path}: no sync step has a schedule or interval, so watch would never run "
            "one: set interval or schedule (in defaults for every step), or use `regplan once`"
        )
