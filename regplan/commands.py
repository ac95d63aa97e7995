"""One short body per command: load, plan, apply, render, all through the run engine
(regplan.engine). The CLI calls these; each returns an exit code. Results go to stdout, logs
to stderr."""

from __future__ import annotations

import calendar
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from regplan import engine, logs
from regplan.engine import Halt, Outcome, Proceed, RunStop, SignalStop, interruptible
from regplan.errors import PlanFileError, RegplanError, UsageError

if TYPE_CHECKING:
    from regplan.config.model import Config
    from regplan.plan.model import Plan
    from regplan.plan.shard import Shard
    from regplan.registry.client import RegistryClient

log = logs.get(__name__)


def _load(config_path: str, stop: RunStop, *, share: int = 1) -> tuple[Config, RegistryClient]:
    """The config and a client for it that stops with the run; `share` > 1 gives this worker
    that share of every registry's request limits (`--share-limits`)."""
    from regplan.config import load_config

    config = load_config(config_path)
    _log_warnings(config)
    if share > 1:
        from regplan.plan.shard import share_limits

        config = share_limits(config, share)
    return config, _client(config, stop)


def _client(config: Config, stop: RunStop) -> RegistryClient:
    from regplan.registry.client import RegistryClient

    return RegistryClient.from_config(config, cancel=stop.token)


def _log_warnings(config: Config) -> None:
    from regplan.config.model import WarningKind

    for w in config.warnings:
        if w.kind is not WarningKind.UNSCHEDULED:  # only `watch` runs on schedules
            log.warn(w.message, file=w.file, line=w.line)


def _selection(config: Config, steps: tuple[str, ...]) -> tuple[int, ...] | None:
    """`--step` selectors as step indexes (None: every step)."""
    from regplan.plan.select import select_steps

    selected = select_steps(config.sync, steps)
    if selected is not None:
        log.warn(
            "Only the selected steps are planned (--step)", steps=",".join(str(i) for i in selected)
        )
    return selected


def _report(
    path: Path | None, shard: Shard | None = None, *, saved: bool = False
) -> engine.ReportFile | None:
    if path is None:
        return None
    return engine.ReportFile(path, (shard.index, shard.count) if shard else None, saved)


def _sharded(plan: Plan, shard: Shard | None) -> Plan:
    """The part of `plan` this worker applies (all of it without --shard)."""
    if shard is None:
        return plan
    from regplan.plan.shard import shard_plan

    part = shard_plan(plan, shard)
    log.info(
        "Applying one shard", shard=str(shard), actions=len(part.actions), of=len(plan.actions)
    )
    return part


def _emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# -- commands --------------------------------------------------------------------------------
@interruptible
def plan_command(
    stop: SignalStop,
    config_path: str,
    *,
    out: Path | None,
    missing: bool,
    fmt: str,
    detailed_exitcode: bool,
    explain: bool,
    sign_key: Path | None = None,
    steps: tuple[str, ...] = (),
    markdown_limit: int | None = None,
) -> int:
    from regplan.plan.planfile import encode, write_plan_bytes
    from regplan.plan.planner import PlanOptions

    key = None
    if sign_key is not None:
        from regplan.plan.signing import load_private_key

        if out is None:
            raise UsageError("--sign-key signs the plan file: give it with -o")
        key = load_private_key(sign_key)  # before any request: a bad key wastes no plan
    config, client = _load(config_path, stop)
    selected = _selection(config, steps)
    options = PlanOptions(
        missing=missing, explain=explain, log_decisions=False, step_indexes=selected
    )
    plan = engine.make_plan(config, client, options, stop)
    if out is not None:
        data = encode(plan)
        if key is not None:
            from regplan.plan.signing import sign_plan_bytes

            data = sign_plan_bytes(data, key)
        try:
            write_plan_bytes(data, out)
        except OSError as e:
            raise RegplanError(f"cannot write -o {out}: {e.strerror or e}") from None
        log.info("Plan written", file=str(out), actions=len(plan.actions), signed=key is not None)
    _emit(_render(plan, fmt, explain=explain, markdown_limit=markdown_limit))
    if plan.errors:
        return 1
    return 2 if detailed_exitcode and plan.has_changes else 0


def show_shards_command(plan_file: Path, count: int, *, fmt: str) -> int:
    from regplan.plan.planfile import load_plan
    from regplan.plan.shard import Shard, shard_loads
    from regplan.units import human_bytes

    Shard.of(0, count, what="--shards")
    loads = shard_loads(load_plan(plan_file), count)
    if fmt == "json":
        _emit(orjson.dumps([vars(x) for x in loads], option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    rows = ["| shard | repositories | actions | bytes |", "|---|---|---|---|"]
    if fmt != "markdown":
        rows = [f"{'shard':>5}  {'repositories':>12}  {'actions':>8}  {'bytes':>10}"]
    for x in loads:
        cells = (str(x.index), str(x.repositories), str(x.actions), human_bytes(x.bytes))
        if fmt == "markdown":
            rows.append("| " + " | ".join(cells) + " |")
        else:
            rows.append(f"{cells[0]:>5}  {cells[1]:>12}  {cells[2]:>8}  {cells[3]:>10}")
    _emit("\n".join(rows) + "\n")
    return 0


def report_merge_command(paths: list[Path], *, fmt: str) -> int:
    from regplan.apply.reports import merge, read_report, render_merged

    merged = merge([read_report(p) for p in paths])
    _emit(render_merged(merged, fmt))
    return 0 if merged.ok else 1


def show_command(plan_file: Path, *, fmt: str, markdown_limit: int | None = None) -> int:
    from regplan.plan.planfile import load_plan

    _emit(_render(load_plan(plan_file), fmt, explain=True, markdown_limit=markdown_limit))
    return 0


def _render(plan: Plan, fmt: str, *, explain: bool, markdown_limit: int | None = None) -> str:
    """The plan for stdout: colour only on a terminal; every step listed at -v debug."""
    from regplan.plan.render import DEFAULT_MARKDOWN_LIMIT, render
    from regplan.terminal import wants_colour

    return render(
        plan,
        fmt,
        explain=explain,
        colour=wants_colour(sys.stdout),
        all_steps=log.enabled("debug"),
        markdown_limit=markdown_limit or DEFAULT_MARKDOWN_LIMIT,
    )


def _check_age(plan: Plan, max_age: str | None) -> None:
    if not max_age:
        return
    from regplan.durations import parse_duration

    limit = parse_duration(max_age)
    try:
        created = calendar.timegm(time.strptime(plan.created_at, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise PlanFileError(
            f"plan created_at {plan.created_at!r} is not a UTC time like 2026-01-31T12:00:00Z, "
            "so --max-age cannot be checked; nothing was applied"
        ) from None
    age = time.time() - created
    if age > limit:
        raise PlanFileError(
            f"plan was created {age / 60:.0f} minutes ago, older than --max-age {max_age}; plan again"
        )


@interruptible
def apply_command(
    stop: SignalStop,
    plan_file: Path | None,
    *,
    config_path: str | None,
    parallel: int | None,
    keep_going: bool,
    auto_approve: bool,
    report: Path | None,
    max_age: str | None,
    steps: tuple[str, ...] = (),
    shard: str | None = None,
    share_limits: bool = False,
    checks: SavedPlanChecks | None = None,
) -> int:
    from regplan.plan.planner import PlanOptions
    from regplan.plan.shard import ShardError, shard_from

    chosen = shard_from(shard)
    if share_limits and chosen is None:
        raise ShardError("--share-limits goes with --shard")
    if plan_file is not None:
        checked = checks or SavedPlanChecks()
        saved = _saved_plan(plan_file, config_path, max_age, checked, chosen, share_limits)
        how = engine.ApplySettings(parallel=parallel, keep_going=keep_going, verify_state=True)
        return _apply_saved(saved, stop, how, report)
    if checks is not None and checks != SavedPlanChecks():
        raise UsageError(
            "--verify-key, --allow-partial and --refuse-source-drift check a saved plan: "
            "give the plan file"
        )
    if chosen is not None:
        raise UsageError("--shard applies a saved plan: every worker must split the same plan")
    assert config_path is not None
    config, client = _load(config_path, stop)
    planning = PlanOptions(log_decisions=False, step_indexes=_selection(config, steps))
    job = engine.Job(
        config,
        client,
        stop,
        planning,
        review=lambda plan: _confirm(plan, stop, auto_approve=auto_approve),
        apply=engine.ApplySettings(parallel=parallel, keep_going=keep_going),
        report=_report(report),
    )
    return engine.run(job).exit_code


def _confirm(plan: Plan, stop: SignalStop, *, auto_approve: bool) -> Proceed | Halt:
    """`apply -c`: show the plan, ask before applying it (unless --auto-approve)."""
    _emit(_render(plan, "text", explain=False))
    if plan.errors:
        raise RegplanError(f"planning failed with {len(plan.errors)} error(s); nothing was applied")
    if not plan.has_changes:
        return Halt(Outcome.SUCCESS)
    if auto_approve:
        return Proceed(plan)
    if not sys.stdin.isatty():
        raise RegplanError(
            "refusing to apply without confirmation: not a terminal; pass --auto-approve"
        )
    with stop.immediately():
        answer = input("Apply this plan? Only 'yes' is accepted: ")
    if answer.strip() != "yes":
        print("Apply cancelled.", file=sys.stderr)
        return Halt(Outcome.CANCELLED, exit_code=1)
    return Proceed(plan, verify_state=True)  # time passed at the prompt: check nothing moved


@dataclass(frozen=True)
class SavedPlanChecks:
    """What `apply PLAN` insists on beyond the file's own checks."""

    allow_partial: bool = False  # apply a plan that recorded planning errors (exit 1 still)
    refuse_source_drift: bool = False  # a source tag that moved refuses the plan
    verify_key: Path | None = None  # Ed25519 public key the plan must be signed with


def _saved_plan_config(plan_file: Path, plan: Plan, given: str | None) -> Config:
    """The config to apply `plan` with: -c, else the one the plan records; refused when its
    bytes are not the ones planned from."""
    import os

    from regplan.config import load_config

    recorded = plan.config_path
    if given is None:
        if recorded != "-" and not os.path.exists(recorded):
            relative = "" if os.path.isabs(recorded) else ", relative to where plan ran"
            raise PlanFileError(
                f"{plan_file}: the plan was made from {recorded} (recorded in the plan{relative}), "
                "which does not exist here; pass the config with -c"
            )
        given = recorded
    config = load_config(given)  # for credentials and registry settings: plans hold no secret
    if config.digest == plan.config_digest:
        return config
    was, now = plan.config_digest[:19], config.digest[:19]
    if os.path.abspath(given) == os.path.abspath(recorded):
        raise PlanFileError(
            f"{plan_file}: made from a different config: {given} was {was} when planned "
            f"and has changed since (now {now}); plan again"
        )
    raise PlanFileError(
        f"{plan_file}: made from a different config: the plan was made from {recorded} ({was}); "
        f"the config given, {given}, is another file ({now}); plan again with it"
    )


@dataclass(frozen=True)
class _SavedPlan:
    plan: Plan  # this worker's part of it
    config: Config  # to apply it with (its share of the limits with --share-limits)
    shard: Shard | None
    refuse_drift: bool


def _saved_plan(
    plan_file: Path,
    config_path: str | None,
    max_age: str | None,
    checks: SavedPlanChecks,
    shard: Shard | None,
    share_limits: bool,
) -> _SavedPlan:
    """The saved plan, checked (signature, age, config, scope, planning errors), and the
    config to apply it with."""
    from regplan.plan.planfile import decode, read_plan_bytes
    from regplan.plan.scope import check_scope

    data = read_plan_bytes(plan_file)
    plan = decode(data, name=str(plan_file))
    if checks.verify_key is not None:
        from regplan.plan.signing import load_public_key, verify_plan

        verify_plan(data, str(plan_file), load_public_key(checks.verify_key), checks.verify_key)
    _check_age(plan, max_age)
    # -c is passed down by the CLI: under `python -m regplan.cli` the CLI module is __main__,
    # and importing regplan.cli here saw none of its options (-c was silently ignored)
    config = _saved_plan_config(plan_file, plan, config_path)
    check_scope(plan, config)  # the integrity digest is no signature: trust only the config
    if plan.errors:
        if not checks.allow_partial:
            raise PlanFileError(
                f"{plan_file}: planning failed for part of this plan ({len(plan.errors)} "
                f"error(s), first: {plan.errors[0]}); nothing was applied. Fix it and plan "
                "again, or pass --allow-partial to apply the rest (apply then still exits 1)"
            )
        log.warn("The plan recorded planning errors; applying the rest", errors=len(plan.errors))
    plan = _sharded(plan, shard)
    if shard is not None and share_limits:
        from regplan.plan.shard import share_limits as shared

        config = shared(config, shard.count)
    return _SavedPlan(plan, config, shard, checks.refuse_source_drift)


def _apply_saved(
    saved: _SavedPlan, stop: RunStop, how: engine.ApplySettings, report: Path | None
) -> int:
    plan = saved.plan
    report_file = _report(report, saved.shard, saved=True)
    if not plan.has_changes:
        log.info("No changes in this plan" if saved.shard is None else "No changes in this shard")
        if report_file is not None:
            from regplan.apply.result import ApplyResult

            engine.write_report(report_file, plan, ApplyResult([], 0.0, already_done=True))
        return 1 if plan.errors else 0
    client = _client(saved.config, stop)
    job = engine.Job(
        saved.config,
        client,
        stop,
        plan=plan,
        drift=engine.Drift.REFUSE if saved.refuse_drift else engine.Drift.WARN,
        apply=how,
        report=report_file,
    )
    return engine.run(job).exit_code


@interruptible
def once_command(
    stop: SignalStop,
    config_path: str,
    *,
    missing: bool,
    abort_on_error: bool,
    report: Path | None,
    steps: tuple[str, ...] = (),
    shard: str | None = None,
    share_limits: bool = False,
) -> int:
    from regplan.plan.planner import PlanOptions
    from regplan.plan.shard import ShardError, shard_from

    chosen = shard_from(shard)
    if share_limits and chosen is None:
        raise ShardError("--share-limits goes with --shard")
    share = chosen.count if share_limits and chosen else 1
    config, client = _load(config_path, stop, share=share)
    planning = PlanOptions(
        missing=missing,
        abort_on_error=abort_on_error,
        shard=(chosen.index, chosen.count) if chosen else None,
        step_indexes=_selection(config, steps),
    )
    job = engine.Job(
        config,
        client,
        stop,
        planning,
        review=lambda plan: _first_error(plan) if abort_on_error else Proceed(plan),
        apply=engine.ApplySettings(keep_going=not abort_on_error),
        report=_report(report, chosen),
    )
    return engine.run(job).exit_code


def _first_error(plan: Plan) -> Proceed:
    """--abort-on-error: the first planning error ends the run before anything is copied."""
    if plan.errors:
        raise RegplanError(plan.errors[0])
    return Proceed(plan)


@interruptible
def check_command(
    stop: SignalStop,
    config_path: str,
    *,
    abort_on_error: bool,
    fmt: str = "text",
    steps: tuple[str, ...] = (),
) -> int:
    from regplan.plan.checkview import check_json, check_text
    from regplan.plan.planner import PlanOptions

    config, client = _load(config_path, stop)
    selected = _selection(config, steps)
    options = PlanOptions(shallow=True, abort_on_error=abort_on_error, step_indexes=selected)
    plan = engine.make_plan(config, client, options, stop)
    _emit(check_json(plan) if fmt == "json" else check_text(plan))
    return 1 if plan.errors else 0


@interruptible
def copy_command(
    stop: SignalStop,
    source: str,
    target: str,
    *,
    config_path: str | None,
    platforms: tuple[str, ...],
    referrers: bool,
    digest_tags: bool,
    dry_run: bool,
    fmt: str,
    report: Path | None,
) -> int:
    """One image, no config file: plan a one-step config in memory, print it, apply it."""
    from regplan.config.loader import load_config as load_file
    from regplan.config.oneoff import CopyRequest, one_off_config
    from regplan.plan.planner import PlanOptions

    if fmt != "text" and not dry_run:
        raise UsageError("--format json|markdown needs --dry-run: the apply result is text")
    base = load_file(config_path, require_sync=False) if config_path else None
    config = one_off_config(CopyRequest(source, target, platforms, referrers, digest_tags), base)
    job = engine.Job(
        config,
        _client(config, stop),
        stop,
        PlanOptions(log_decisions=False),
        review=lambda plan: _show_copy(plan, fmt, dry_run=dry_run),
        report=_report(report),
    )
    return engine.run(job).exit_code


def _show_copy(plan: Plan, fmt: str, *, dry_run: bool) -> Proceed | Halt:
    from regplan.plan.render import render

    _emit(render(plan, fmt))
    if plan.errors:
        raise RegplanError(f"planning failed: {plan.errors[0]}; nothing was copied")
    if dry_run or not plan.has_changes:
        return Halt(Outcome.SUCCESS)
    return Proceed(plan)
