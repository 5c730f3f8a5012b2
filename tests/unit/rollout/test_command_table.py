"""The core's table of accepted commands is what the command functions do, in
every phase (status and hold): start, retry, abort, rollback, pause, resume,
approve and promote each raise exactly outside it."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.unit.rollout.support import T0, make_policy
from xdp47_common.rollout import (
    ACCEPTED_COMMANDS,
    NO_OP_IN,
    PHASES,
    ApprovalRefused,
    CommandName,
    Decision,
    EventName,
    InvalidTransition,
    Phase,
    RolloutHold,
    RolloutKind,
    RolloutState,
    RolloutStatus,
    abort,
    accepted_from,
    approve,
    offered_from,
    offered_table,
    pause,
    promotable,
    promote,
    resume,
    retry,
    rollback,
    start,
)

GRACE = make_policy(grace_seconds=60.0)
NOW = T0 + timedelta(seconds=10)  # inside the grace of a wave started at T0

APPLY: dict[CommandName, Callable[[RolloutState], Decision]] = {
    CommandName.START: start,
    CommandName.RETRY: retry,
    CommandName.ABORT: lambda r: abort(r, by="op"),
    CommandName.ROLLBACK: lambda r: rollback(r, RolloutKind.ROLLOUT, by="op"),
    CommandName.PAUSE: lambda r: pause(r, "op", NOW),
    CommandName.RESUME: lambda r: resume(r, "op", NOW),
    CommandName.APPROVE: lambda r: approve(r, "token:b", four_eyes=True),
    CommandName.PROMOTE: lambda r: promote(r, "op", GRACE, NOW),
}


def _state(phase: Phase) -> RolloutState:
    in_wave = phase.status is not RolloutStatus.DRAFT
    return RolloutState(
        id=uuid.uuid4(),
        status=phase.status,
        waves=2,
        current_wave=1 if in_wave else None,
        current_wave_started_at=T0 if in_wave else None,
        attempt=1 if in_wave else 0,
        hold=phase.hold,
        held_since=T0 if phase.hold else None,
        started_by="token:a" if in_wave else None,
    )


def test_the_table_covers_every_phase() -> None:
    assert set(ACCEPTED_COMMANDS) == set(PHASES)
    assert len(PHASES) == len(RolloutStatus) + len(RolloutHold)


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.key)
@pytest.mark.parametrize("command", list(CommandName))
def test_each_command_raises_exactly_outside_the_table(
    phase: Phase, command: CommandName
) -> None:
    rollout = _state(phase)
    if command not in ACCEPTED_COMMANDS[phase]:
        with pytest.raises(InvalidTransition):
            APPLY[command](rollout)
        return
    decision = APPLY[command](rollout)
    if command is CommandName.ROLLBACK:
        # The rollout itself only moves when it runs (aborted first); the
        # rollback is another rollout.
        assert decision.changed is (phase.status is RolloutStatus.RUNNING)
        return
    # Accepted: a move, or a repeat whose effect already holds (a no-op).
    assert decision.changed is (phase not in NO_OP_IN[command])
    if decision.changed and command not in (CommandName.ABORT, CommandName.RETRY):
        # Steering keeps the status; only the hold and the wave move.
        assert decision.status is RolloutStatus.RUNNING


def test_abort_of_an_aborted_rollout_is_an_accepted_no_op() -> None:
    decision = abort(_state(Phase(RolloutStatus.ABORTED)), by="op")
    assert not decision.changed
    assert Phase(RolloutStatus.ABORTED) in accepted_from(CommandName.ABORT)
    # ... which a UI does not offer: it would change nothing.
    assert Phase(RolloutStatus.ABORTED) not in offered_from(CommandName.ABORT)


def test_the_ui_offers_only_moves() -> None:
    running = Phase(RolloutStatus.RUNNING)
    paused = Phase(RolloutStatus.RUNNING, RolloutHold.PAUSED)
    waiting = Phase(RolloutStatus.RUNNING, RolloutHold.AWAITING_APPROVAL)
    unjudged = Phase(RolloutStatus.RUNNING, RolloutHold.ANALYSIS_INCONCLUSIVE)
    assert offered_from(CommandName.START) == {Phase(RolloutStatus.DRAFT)}
    assert offered_from(CommandName.RETRY) == {
        Phase(RolloutStatus.FAILED),
        Phase(RolloutStatus.PARTIAL),
    }
    assert offered_from(CommandName.ABORT) == {
        Phase(RolloutStatus.DRAFT),
        running,
        paused,
        waiting,
        unjudged,
    }
    assert offered_from(CommandName.PAUSE) == {running}
    assert offered_from(CommandName.RESUME) == {paused, unjudged}
    assert offered_from(CommandName.APPROVE) == {waiting}
    assert offered_from(CommandName.PROMOTE) == {running}
    assert offered_table()["resume"] == {
        "running:paused",
        "running:analysis_inconclusive",
    }


def test_rollback_is_offered_where_a_release_may_have_reached_devices() -> None:
    # Whatever a running rollout's hold: a paused or waiting one reached devices.
    assert offered_from(CommandName.ROLLBACK) == {
        Phase(RolloutStatus.RUNNING),
        Phase(RolloutStatus.RUNNING, RolloutHold.PAUSED),
        Phase(RolloutStatus.RUNNING, RolloutHold.AWAITING_APPROVAL),
        Phase(RolloutStatus.RUNNING, RolloutHold.ANALYSIS_INCONCLUSIVE),
        Phase(RolloutStatus.FAILED),
        Phase(RolloutStatus.PARTIAL),
        Phase(RolloutStatus.COMPLETED),
    }


def test_pause_then_resume_shifts_the_wave_clock_by_the_time_paused() -> None:
    running = _state(Phase(RolloutStatus.RUNNING))
    paused = pause(running, "token:a", NOW)
    assert (paused.hold, paused.held_since) == (RolloutHold.PAUSED, NOW)
    assert [e.name for e in paused.events] == [EventName.PAUSED]
    held = _state(Phase(RolloutStatus.RUNNING, RolloutHold.PAUSED))
    held = dataclasses.replace(held, held_since=NOW)
    later = NOW + timedelta(minutes=5)
    resumed = resume(held, "token:a", later)
    assert (resumed.hold, resumed.held_since) == (None, None)
    assert resumed.shift_wave_clock == timedelta(minutes=5)
    assert resumed.start_wave is None
    assert [e.name for e in resumed.events] == [EventName.RESUMED]


def test_approve_starts_the_waiting_wave() -> None:
    waiting = _state(Phase(RolloutStatus.RUNNING, RolloutHold.AWAITING_APPROVAL))
    decision = approve(waiting, "token:a", four_eyes=False)
    assert (decision.hold, decision.current_wave, decision.start_wave) == (None, 2, 2)
    assert [e.name for e in decision.events] == [
        EventName.APPROVED,
        EventName.WAVE_STARTED,
    ]


def test_four_eyes_refuses_the_starter() -> None:
    waiting = _state(Phase(RolloutStatus.RUNNING, RolloutHold.AWAITING_APPROVAL))
    with pytest.raises(ApprovalRefused, match="four-eyes"):
        approve(waiting, "token:a", four_eyes=True)
    assert approve(waiting, "token:b", four_eyes=True).start_wave == 2


def test_promote_applies_only_inside_the_grace() -> None:
    running = _state(Phase(RolloutStatus.RUNNING))
    assert promotable(running, GRACE, NOW) is None
    assert promote(running, "op", GRACE, NOW).skip_grace
    over = T0 + timedelta(seconds=61)
    assert "not in its grace" in (promotable(running, GRACE, over) or "")
    with pytest.raises(InvalidTransition):
        promote(running, "op", GRACE, over)
    promoted = dataclasses.replace(running, grace_skipped=True)
    assert "promoted already" in (promotable(promoted, GRACE, NOW) or "")
