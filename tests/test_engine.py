"""The run engine's decisions: how a run ended, and how a run's stop behaves (no registry)."""

from __future__ import annotations

import signal
import threading

import pytest

from regplan.apply.result import ActionResult, ApplyResult
from regplan.apply.status import ActionStatus
from regplan.cancel import Cancelled
from regplan.engine import Outcome, RunStop, SignalStop, conclude, interruptible
from regplan.plan.model import Action, Plan, StepSummary

S = ActionStatus


def plan(errors: tuple[str, ...] = ()) -> Plan:
    step = StepSummary(index=0, name="s", type="image", source="a", target="b", errors=errors)
    return Plan("2026-01-01T00:00:00Z", "r.yml", "sha256:" + "0" * 64, "full", (step,), ())


def result(*statuses: ActionStatus) -> ApplyResult:
    def action(i: int) -> Action:
        return Action(id=f"a{i}", kind="tag", reason="create", target=f"r/x:t{i}",
                      digest="sha256:" + "1" * 64, media_type="m", size=1, source="r/y@d",
                      steps=(0,), group=f"a{i}")  # fmt: skip

    return ApplyResult([ActionResult(action(i), s) for i, s in enumerate(statuses)], 1.0)


@pytest.mark.parametrize(
    ("errors", "statuses", "cancelled", "outcome", "failed", "code"),
    [
        ((), (S.DONE, S.SKIPPED), False, Outcome.SUCCESS, 0, 0),
        ((), (S.DONE, S.FAILED, S.NOT_RUN), False, Outcome.FAILURE, 1, 1),
        # once cancelled, failed copies are the cancellation itself
        ((), (S.DONE, S.FAILED, S.NOT_RUN), True, Outcome.CANCELLED, 0, 1),
        ((), (S.DONE, S.NOT_RUN), False, Outcome.CANCELLED, 0, 1),  # stopped short (drain)
        (("boom",), (S.DONE,), False, Outcome.FAILURE, 0, 1),  # planning error, rest applied
        (("boom",), (S.FAILED,), True, Outcome.FAILURE, 0, 1),
        ((), None, False, Outcome.SUCCESS, 0, 0),  # nothing applied: nothing to do
        ((), None, True, Outcome.CANCELLED, 0, 1),  # nothing applied: stopped first
        (("boom",), None, True, Outcome.FAILURE, 0, 1),
        ((), (), False, Outcome.SUCCESS, 0, 0),  # `once` with an empty plan
    ],
)
def test_conclude(
    errors: tuple[str, ...],
    statuses: tuple[ActionStatus, ...] | None,
    cancelled: bool,
    outcome: Outcome,
    failed: int,
    code: int,
) -> None:
    done = conclude(
        plan(errors), None if statuses is None else result(*statuses), cancelled=cancelled
    )
    assert (done.outcome, len(done.failed), done.exit_code) == (outcome, failed, code)


def test_outcome_and_status_names_are_the_strings_reports_carry() -> None:
    assert [str(o) for o in Outcome] == ["success", "failure", "cancelled"]
    assert [str(s) for s in ActionStatus] == ["done", "skipped", "failed", "not-run"]


def test_stop_planning_spares_a_run_that_is_applying_and_a_drain_keeps_one_from_applying() -> None:
    planning, applying, drained = RunStop(), RunStop(), RunStop()
    assert applying.begin_apply(None)
    planning.stop_planning("server stopping")
    applying.stop_planning("server stopping")
    assert planning.token.cancelled and not applying.token.cancelled
    assert not planning.begin_apply(None)  # cancelled while planning: never applies
    drain = threading.Event()
    drain.set()
    assert not drained.begin_apply(drain) and not drained.token.cancelled


def test_a_signal_cancels_the_token_and_the_command_exits_with_128_plus_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @interruptible
    def command(stop: SignalStop) -> int:
        signal.raise_signal(signal.SIGTERM)  # handled between bytecodes, on this thread
        assert stop.token.cancelled
        stop.token.check()  # what the planner does at its next request
        return 0

    before = signal.getsignal(signal.SIGTERM)
    assert command() == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "regplan: interrupted\n"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler was only the command's


def test_a_second_signal_interrupts_at_once() -> None:
    @interruptible
    def command(stop: SignalStop) -> int:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        return 0

    with pytest.raises(KeyboardInterrupt):
        command()


def test_a_command_not_signalled_keeps_its_code_and_its_errors() -> None:
    @interruptible
    def fails(stop: SignalStop) -> int:
        raise Cancelled("run did not finish")  # not from a signal: not swallowed

    assert interruptible(lambda stop: 2)() == 2
    with pytest.raises(Cancelled):
        fails()
