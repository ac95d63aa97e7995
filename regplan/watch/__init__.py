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
    if listen:
        from regplan.watch.endpoints import parse_listen

        parse_listen(listen)  # a typo fails before the config is even read
    if plan_dir is not None:
        plan_dir.mkdir(parents=True, exist_ok=True)
    settings = WatchSettings(
        config_path=config_path,
        listen=listen,
        grace_period=grace,
        plan_dir=plan_dir,
        abort_on_error=abort_on_error,
        prune=prune,
    )
    return WatchServer(settings).run()
