"""One function per command: load, plan, apply, render. The CLI calls these; each returns an
exit code. Results go to stdout, logs to stderr."""

from __future__ import annotations

import calendar
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from regplan import logs
from regplan.errors import PlanFileError, RegplanError

if TYPE_CHECKING:
    from regplan.apply.applier import ApplyResult
    from regplan.config.model import Config
    from regplan.plan.model import Plan
    from regplan.plan.planner import PlanOptions
    from regplan.plan.shard import Shard
    from regplan.registry.client import RegistryClient

log = logs.get(__name__)


def _load(config_path: str) -> tuple[Config, RegistryClient]:
    from regplan.config import load_config
    from regplan.registry.client import RegistryClient

    config = load_config(config_path)
    return config, RegistryClient.from_config(config)


def _plan(config: Config, client: RegistryClient, options: PlanOptions) -> Plan:
    from regplan.plan.planner import make_plan

    return make_plan(config, client, options)


def _apply(
    plan: Plan,
    config: Config,
    client: RegistryClient,
    *,
    verify_state: bool,
    parallel: int | None = None,
    keep_going: bool = False,
) -> ApplyResult:
    from regplan.apply.applier import ApplyOptions, apply_plan
    from regplan.apply.progress import ProgressDisplay

    options = ApplyOptions(
        parallel=parallel or config.defaults.parallel,
        keep_going=keep_going,
        verify_state=verify_state,
        ratelimits={s.index: s.ratelimit for s in config.sync},
    )
    with ProgressDisplay(plan) as progress:
        result = apply_plan(plan, client, options, on_progress=progress.advance)
    _log_result(result)
    _emit(_result_line(result))
    return result


def _log_result(result: ApplyResult) -> None:
    from regplan.plan.render import human_bytes

    s = result.summary()
    level = log.info if result.ok else log.error
    level(
        "Apply finished" if result.ok else "Apply failed",
        images=s["images"],
        manifests=s["manifests"],
        blobs=s["blobs"],
        mounted=s["mounted"],
        bytes=human_bytes(s["bytes"]),
        skipped=s["skipped"],
        failed=s["failed"],
        not_run=s["not_run"],
        seconds=s["seconds"],
    )
    for r in result.results:
        if r.status == "failed":
            log.error(
                "Action failed",
                action=r.action.id,
                kind=r.action.kind,
                target=r.action.target,
                error=r.detail,
            )


def _result_line(result: ApplyResult) -> str:
    from regplan.plan.render import human_bytes

    s = result.summary()
    if result.already_done:
        return "Apply complete: nothing to do, the plan was already applied.\n"
    head = "Apply complete" if result.ok else "Apply FAILED"
    line = (
        f"{head}: {s['images']} image(s), {s['manifests']} manifest(s), {s['blobs']} blob(s) "
        f"({s['mounted']} mounted), {human_bytes(s['bytes'])} copied in {s['seconds']:.1f}s"
    )
    if s["deleted"]:
        line += f"; {s['deleted']} tag(s) deleted"
    if s["failed"] or s["not_run"]:
        line += f"; {s['failed']} failed, {s['not_run']} not run"
    return line + ".\n"


def _write_report(
    path: Path | None,
    plan: Plan,
    result: ApplyResult,
    shard: Shard | None = None,
    *,
    saved: bool = False,
) -> None:
    if path is not None:
        body = result.report(plan, (shard.index, shard.count) if shard else None)
        # the shards of one saved plan share it; `once` workers each plan their own
        body["plan"]["saved"] = saved
        path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")


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
def plan_command(
    config_path: str,
    *,
    out: Path | None,
    missing: bool,
    fmt: str,
    detailed_exitcode: bool,
    explain: bool,
) -> int:
    from regplan.plan.model import save_plan
    from regplan.plan.planner import PlanOptions
    from regplan.plan.render import render

    config, client = _load(config_path)
    plan = _plan(config, client, PlanOptions(missing=missing, explain=explain, log_decisions=False))
    if out is not None:
        save_plan(plan, out)
        log.info("Plan written", file=str(out), actions=len(plan.actions))
    _emit(render(plan, fmt, explain=explain))
    if plan.errors:
        return 1
    return 2 if detailed_exitcode and plan.has_changes else 0


def show_shards_command(plan_file: Path, count: int, *, fmt: str) -> int:
    from regplan.plan.model import load_plan
    from regplan.plan.render import human_bytes
    from regplan.plan.shard import Shard, shard_loads

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


def show_command(plan_file: Path, *, fmt: str) -> int:
    from regplan.plan.model import load_plan
    from regplan.plan.render import render

    _emit(render(load_plan(plan_file), fmt, explain=True))
    return 0


def _check_age(plan: Plan, max_age: str | None) -> None:
    if not max_age:
        return
    from regplan.durations import parse_duration

    limit = parse_duration(max_age)
    created = calendar.timegm(time.strptime(plan.created_at, "%Y-%m-%dT%H:%M:%SZ"))
    age = time.time() - created
    if age > limit:
        raise PlanFileError(
            f"plan was created {age / 60:.0f} minutes ago, older than --max-age {max_age}; plan again"
        )


def apply_command(
    plan_file: Path | None,
    *,
    config_path: str | None,
    parallel: int | None,
    keep_going: bool,
    auto_approve: bool,
    report: Path | None,
    max_age: str | None,
    shard: str | None = None,
) -> int:
    from regplan.plan.shard import shard_from

    chosen = shard_from(shard)
    if plan_file is not None:
        return _apply_saved(
            plan_file,
            config_path=config_path,
            parallel=parallel,
            keep_going=keep_going,
            report=report,
            max_age=max_age,
            shard=chosen,
        )
    if chosen is not None:
        raise PlanFileError("--shard applies a saved plan: every worker must split the same plan")
    assert config_path is not None
    from regplan.plan.planner import PlanOptions
    from regplan.plan.render import render_text

    config, client = _load(config_path)
    plan = _plan(config, client, PlanOptions(log_decisions=False))
    _emit(render_text(plan))
    if plan.errors:
        raise RegplanError(f"planning failed with {len(plan.errors)} error(s); nothing was applied")
    if not plan.has_changes:
        return 0
    verify = False
    if not auto_approve:
        if not sys.stdin.isatty():
            raise RegplanError(
                "refusing to apply without confirmation: not a terminal; pass --auto-approve"
            )
        answer = input("Apply this plan? Only 'yes' is accepted: ")
        if answer.strip() != "yes":
            print("Apply cancelled.", file=sys.stderr)
            return 1
        verify = True  # time passed at the prompt: check nothing moved
    result = _apply(
        plan, config, client, verify_state=verify, parallel=parallel, keep_going=keep_going
    )
    _write_report(report, plan, result)
    return 0 if result.ok else 1


def _apply_saved(
    plan_file: Path,
    *,
    config_path: str | None,
    parallel: int | None,
    keep_going: bool,
    report: Path | None,
    max_age: str | None,
    shard: Shard | None = None,
) -> int:
    from regplan.config import load_config
    from regplan.plan.model import load_plan
    from regplan.registry.client import RegistryClient

    plan = load_plan(plan_file)
    _check_age(plan, max_age)
    # -c is passed down by the CLI: under `python -m regplan.cli` the CLI module is __main__,
    # and importing regplan.cli here saw none of its options (-c was silently ignored)
    config_path = config_path or plan.config_path
    config = load_config(config_path)  # for credentials and registry settings: plans hold no secret
    if config.digest != plan.config_digest:
        raise PlanFileError(
            f"{plan_file}: made from a different config ({plan.config_path} {plan.config_digest[:19]}), "
            f"but {config_path} is now {config.digest[:19]}; plan again"
        )
    if plan.errors:
        log.warn("The plan recorded planning errors; applying the rest", errors=len(plan.errors))
    plan = _sharded(plan, shard)
    client = RegistryClient.from_config(config)
    if not plan.has_changes:
        log.info("No changes in this plan" if shard is None else "No changes in this shard")
        from regplan.apply.applier import ApplyResult

        _write_report(report, plan, ApplyResult([], 0.0, already_done=True), shard, saved=True)
        return 0
    result = _apply(
        plan, config, client, verify_state=True, parallel=parallel, keep_going=keep_going
    )
    _write_report(report, plan, result, shard, saved=True)
    return 0 if result.ok else 1


def once_command(
    config_path: str,
    *,
    missing: bool,
    abort_on_error: bool,
    report: Path | None,
    shard: str | None = None,
) -> int:
    from regplan.plan.planner import PlanOptions
    from regplan.plan.shard import shard_from

    chosen = shard_from(shard)
    config, client = _load(config_path)
    options = PlanOptions(
        missing=missing,
        abort_on_error=abort_on_error,
        shard=(chosen.index, chosen.count) if chosen else None,
    )
    plan = _plan(config, client, options)
    if plan.errors and abort_on_error:
        raise RegplanError(plan.errors[0])
    result = _apply(plan, config, client, verify_state=False, keep_going=not abort_on_error)
    _write_report(report, plan, result, chosen)
    return 0 if result.ok and not plan.errors else 1


def check_command(config_path: str, *, abort_on_error: bool) -> int:
    from regplan.plan.planner import PlanOptions

    config, client = _load(config_path)
    plan = _plan(config, client, PlanOptions(shallow=True, abort_on_error=abort_on_error))
    images = sum(s.images for s in plan.steps)
    need = sum(s.to_sync for s in plan.steps)
    _emit(
        f"check: {need} of {images} image(s) need syncing; {plan.summary.up_to_date} up to date"
        + (f"; {len(plan.errors)} error(s)" if plan.errors else "")
        + "\n"
    )
    return 1 if plan.errors else 0
