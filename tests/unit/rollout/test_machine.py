"""The rollout state machine: transitions, commands and wave progression."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from tests.unit.rollout.support import RID, T0, make_policy
from xdp47_common.rollout import (
    NOTHING_UPDATED,
    TERMINAL_STATUSES,
    DecisionEvent,
    EventName,
    InvalidTransition,
    PlanCount,
    RolloutHold,
    RolloutState,
    RolloutStatus,
    WaveCounters,
    WaveFinish,
    WaveOutcome,
    abort,
    approve,
    check_transition,
    decide,
    pause,
    promote,
    resume,
    retry,
    start,
)

S = RolloutStatus
# Written out independently of TRANSITIONS: the lifecycle the product promises.
ALLOWED = {
    (S.DRAFT, S.RUNNING),
    (S.DRAFT, S.ABORTED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.PARTIAL),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.ABORTED),
    (S.FAILED, S.RUNNING),
    (S.PARTIAL, S.RUNNING),
}


@pytest.mark.parametrize(("from_", "to"), list(itertools.product(S, S)))
def test_status_matrix(from_, to):
    if (from_, to) in ALLOWED:
        check_transition(from_, to)
    else:
        with pytest.raises(InvalidTransition) as err:
            check_transition(from_, to)
        assert (err.value.from_, err.value.to) == (from_, to)
        assert f"from {from_} to {to}" in str(err.value)


def state(status=S.RUNNING, wave=1, waves=3, attempt=1, shortfall=False):
    return RolloutState(
        id=RID,
        status=status,
        waves=waves,
        current_wave=wave,
        current_wave_started_at=T0 if wave else None,
        attempt=attempt,
        shortfall=shortfall,
    )


def ok(n=5, failed=0, skipped=0, pending=0):
    return WaveCounters(n + failed + pending, n, failed, skipped, pending)


LATER = T0 + timedelta(seconds=60)

# (command, from status) -> resulting status, "noop", or InvalidTransition.
COMMANDS = {
    "start": {S.DRAFT: S.RUNNING, S.RUNNING: "noop"},
    "abort": {S.DRAFT: S.ABORTED, S.RUNNING: S.ABORTED, S.ABORTED: "noop"},
    "retry": {S.FAILED: S.RUNNING, S.PARTIAL: S.RUNNING, S.RUNNING: "noop"},
}


def run_command(name, rollout):
    if name == "start":
        return start(rollout)
    if name == "abort":
        return abort(rollout, "alice")
    return retry(rollout)


@pytest.mark.parametrize(("name", "from_"), list(itertools.product(COMMANDS, S)))
def test_command_matrix(name, from_):
    rollout = state(status=from_, wave=None if from_ is S.DRAFT else 2, attempt=1)
    expected = COMMANDS[name].get(from_)
    if expected is None:
        with pytest.raises(InvalidTransition):
            run_command(name, rollout)
        return
    decision = run_command(name, rollout)
    if expected == "noop":
        assert not decision.changed
        assert decision.status is from_
        assert decision.events == ()
    else:
        assert decision.changed
        assert decision.status is expected


def test_start_runs_wave_one_of_attempt_one():
    decision = start(state(status=S.DRAFT, wave=None, attempt=0))
    assert (decision.status, decision.attempt, decision.start_wave) == (S.RUNNING, 1, 1)
    assert [e.name for e in decision.events] == [
        EventName.STARTED,
        EventName.WAVE_STARTED,
    ]


def test_start_of_failed_rollout_points_to_retry():
    with pytest.raises(InvalidTransition, match="use retry"):
        start(state(status=S.FAILED))


def test_abort_closes_the_running_wave():
    decision = abort(state(wave=2), "alice", "bad build")
    assert decision.status is S.ABORTED
    assert decision.reason == "aborted by alice: bad build"
    assert decision.finish_wave == WaveFinish(2, WaveOutcome.ABORTED, decision.reason)
    assert decision.events == (
        DecisionEvent(EventName.ABORTED, 2, S.ABORTED, "aborted by alice: bad build"),
    )


def test_abort_of_draft_has_no_wave_to_close():
    decision = abort(state(status=S.DRAFT, wave=None, attempt=0), "bob")
    assert (decision.reason, decision.finish_wave) == ("aborted by bob", None)


def test_retry_starts_a_new_attempt_at_wave_one():
    decision = retry(state(status=S.FAILED, wave=2, attempt=1))
    assert (decision.status, decision.attempt, decision.start_wave) == (S.RUNNING, 2, 1)
    assert decision.events[0].name is EventName.RETRIED


def test_passing_wave_starts_the_next():
    decision = decide(state(wave=1), ok(), make_policy(), LATER)
    assert decision.finish_wave is not None
    assert decision.finish_wave.outcome is WaveOutcome.SUCCEEDED
    assert (decision.status, decision.start_wave, decision.current_wave) == (
        S.RUNNING,
        2,
        2,
    )
    assert [e.name for e in decision.events] == [
        EventName.WAVE_FINISHED,
        EventName.WAVE_STARTED,
    ]


def test_last_wave_passing_completes():
    decision = decide(state(wave=3), ok(), make_policy(), LATER)
    assert decision.status is S.COMPLETED
    assert decision.reason == "all 3 waves passed"
    assert decision.start_wave is None
    assert decision.events[-1] == DecisionEvent(
        EventName.COMPLETED, 3, S.COMPLETED, "all 3 waves passed"
    )


@pytest.mark.parametrize(
    ("shortfall", "current"),
    [(True, ok()), (False, ok(failed=1)), (False, ok(skipped=1))],
)
def test_tolerated_losses_end_partial(shortfall, current):
    policy = make_policy(max_failures_per_wave=1, min_success_ratio=0.5)
    decision = decide(state(wave=3, shortfall=shortfall), current, policy, LATER)
    assert decision.status is S.PARTIAL


def test_failing_gate_fails_the_rollout_with_its_reason():
    decision = decide(
        state(wave=1),
        ok(n=1, failed=3, pending=6),
        make_policy(max_failures_per_wave=2),
        T0,
    )
    assert decision.status is S.FAILED
    assert decision.reason == "wave 1: 3 failures > max_failures_per_wave 2"
    assert decision.finish_wave == WaveFinish(1, WaveOutcome.FAILED, decision.reason)
    assert decision.start_wave is None


def test_waiting_gate_is_a_no_op_with_the_reason():
    decision = decide(state(wave=1), ok(n=1, pending=2), make_policy(), LATER)
    assert not decision.changed
    assert decision.reason == "2 of 3 devices pending"


def test_deadline_times_out_pending_devices_first():
    policy = make_policy(wave_deadline_seconds=30)
    decision = decide(state(wave=2), ok(n=1, pending=2), policy, LATER)
    assert decision.timed_out_wave == 2
    assert decision.status is S.RUNNING
    assert decision.finish_wave is None
    assert decision.events[0].name is EventName.WAVE_TIMED_OUT
    assert decision.reason == "wave 2: 2 devices timed_out after 30s"


def test_retry_attempt_skips_waves_with_nothing_to_retry():
    policy = make_policy(abort_on_zero_eligible=True)
    decision = decide(state(wave=1, attempt=2), ok(n=0), policy, LATER)
    assert decision.finish_wave == WaveFinish(
        1, WaveOutcome.SKIPPED, "wave 1: nothing to retry, skipped"
    )
    assert decision.start_wave == 2


def test_first_attempt_empty_wave_passes_even_under_abort_on_zero_eligible():
    policy = make_policy(abort_on_zero_eligible=True)
    decision = decide(state(wave=2, attempt=1), ok(n=0), policy, LATER)
    assert decision.finish_wave == WaveFinish(
        2, WaveOutcome.SKIPPED, "wave 2: no devices in this wave, skipped"
    )
    assert decision.start_wave == 3


def test_trailing_empty_waves_of_a_small_fleet_complete_the_rollout():
    """Five waves over three devices: waves 4 and 5 are empty and pass."""
    policy = make_policy(abort_on_zero_eligible=True)
    decision = decide(state(wave=5, waves=5), ok(n=0), policy, LATER)
    assert decision.status is S.COMPLETED
    assert decision.reason == "all 5 waves passed"


def test_a_wave_that_lost_every_device_aborts_the_rollout():
    policy = make_policy(abort_on_zero_eligible=True)
    lost = WaveCounters(eligible=0, succeeded=0, failed=0, skipped=2, pending=0)
    decision = decide(state(wave=2), lost, policy, LATER)
    assert decision.status is S.ABORTED
    reason = "wave 2: no eligible devices (2 in the wave, all skipped offline)"
    assert decision.reason == reason
    assert decision.finish_wave == WaveFinish(2, WaveOutcome.ABORTED, reason)
    assert decision.events[-1] == DecisionEvent(EventName.ABORTED, 2, S.ABORTED, reason)


def test_a_start_with_no_eligible_device_aborts_by_default():
    plan = PlanCount(planned=0, matched=3, excluded={"in_another_rollout": 3})
    decision = start(
        state(status=S.DRAFT, wave=None), plan, make_policy(abort_on_zero_eligible=True)
    )
    assert decision.status is S.ABORTED
    assert decision.reason == (
        "no eligible devices (3 matched the selector, all excluded: "
        "in_another_rollout 3)"
    )
    assert decision.start_wave is None
    assert decision.current_wave is None
    assert [e.name for e in decision.events] == [EventName.STARTED, EventName.ABORTED]
    # No policy given: the default is to abort.
    assert start(state(status=S.DRAFT, wave=None), plan).status is S.ABORTED


def test_a_start_with_no_eligible_device_completes_when_told_not_to_abort():
    plan = PlanCount(planned=0, matched=0)
    policy = make_policy(abort_on_zero_eligible=False)
    decision = start(state(status=S.DRAFT, wave=None), plan, policy)
    assert decision.status is S.COMPLETED
    assert decision.reason == (
        "0 devices updated: no eligible devices (0 matched the selector)"
    )
    assert decision.reason.startswith(NOTHING_UPDATED)
    assert [e.name for e in decision.events] == [
        EventName.STARTED,
        EventName.COMPLETED,
    ]


def test_a_start_with_devices_starts_wave_one():
    plan = PlanCount(planned=2, matched=5, excluded={"in_another_rollout": 3})
    decision = start(state(status=S.DRAFT, wave=None), plan, make_policy())
    assert (decision.status, decision.start_wave) == (S.RUNNING, 1)


def test_deadline_waits_until_the_heartbeats_before_it_were_read():
    """A scheduler behind its heartbeat queue (heard_until before the deadline)
    never times devices out: their reports may be in the queue."""
    policy = make_policy(wave_deadline_seconds=30)
    behind = T0 + timedelta(seconds=10)
    decision = decide(state(wave=2), ok(n=1, pending=2), policy, LATER, behind)
    assert decision.timed_out_wave is None
    assert not decision.changed
    caught_up = T0 + timedelta(seconds=30)
    decision = decide(state(wave=2), ok(n=1, pending=2), policy, LATER, caught_up)
    assert decision.timed_out_wave == 2


def test_running_without_a_wave_restarts_wave_one():
    decision = decide(state(wave=None), None, make_policy(), LATER)
    assert decision.start_wave == 1


def test_running_wave_needs_counters():
    with pytest.raises(ValueError, match="needs its start time and counters"):
        decide(state(wave=1), None, make_policy(), LATER)


@pytest.mark.parametrize("status", [S.DRAFT, *sorted(TERMINAL_STATUSES)])
def test_decide_leaves_non_running_rollouts_alone(status):
    decision = decide(state(status=status, wave=2), ok(), make_policy(), LATER)
    assert not decision.changed
    assert decision.status is status


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"waves": 0, "current_wave": None}, "waves must be"),
        ({"current_wave": 4}, "outside 1..3"),
        ({"attempt": -1}, "attempt must be"),
    ],
)
def test_invalid_state_is_rejected(changes, message):
    args: dict[str, Any] = {
        "id": RID,
        "status": S.RUNNING,
        "waves": 3,
        "current_wave": 1,
    }
    args.update(changes)
    with pytest.raises(ValueError, match=message):
        RolloutState(**args)


# Steering, written out independently of ACCEPTED_COMMANDS: (command, status,
# hold) -> the hold after it ("moving" for none), "noop", or InvalidTransition.
H = RolloutHold
PHASES_UNDER_TEST = [(s, None) for s in S] + [(S.RUNNING, h) for h in H]
STEERING: dict[str, dict[Any, Any]] = {
    "pause": {(S.RUNNING, None): H.PAUSED, (S.RUNNING, H.PAUSED): "noop"},
    "resume": {(S.RUNNING, H.PAUSED): "moving", (S.RUNNING, None): "noop"},
    "approve": {(S.RUNNING, H.AWAITING_APPROVAL): "moving"},
    "promote": {(S.RUNNING, None): "moving"},
}


def run_steering(name, rollout):
    now = T0 + timedelta(seconds=5)
    if name == "pause":
        return pause(rollout, "alice", now)
    if name == "resume":
        return resume(rollout, "alice", now)
    if name == "approve":
        return approve(rollout, "token:bob", four_eyes=True)
    return promote(rollout, "alice", make_policy(grace_seconds=30.0), now)


@pytest.mark.parametrize(
    ("name", "phase"), list(itertools.product(STEERING, PHASES_UNDER_TEST))
)
def test_steering_matrix(name, phase):
    status, hold = phase
    rollout = RolloutState(
        id=RID,
        status=status,
        waves=3,
        current_wave=None if status is S.DRAFT else 1,
        current_wave_started_at=None if status is S.DRAFT else T0,
        attempt=0 if status is S.DRAFT else 1,
        hold=hold,
        held_since=T0 if hold else None,
        started_by="token:alice",
    )
    expected = STEERING[name].get(phase)
    if expected is None:
        with pytest.raises(InvalidTransition):
            run_steering(name, rollout)
        return
    decision = run_steering(name, rollout)
    assert decision.status is status  # steering never changes the status
    if expected == "noop":
        assert not decision.changed
        assert decision.events == ()
    else:
        assert decision.changed
        assert decision.hold is (None if expected == "moving" else expected)


def test_a_held_rollout_does_not_move():
    for hold in RolloutHold:
        held = RolloutState(
            id=RID,
            status=S.RUNNING,
            waves=3,
            current_wave=1,
            current_wave_started_at=T0,
            attempt=1,
            hold=hold,
            held_since=T0,
        )
        # Past the deadline with devices pending, and with a passing wave.
        late = T0 + timedelta(hours=5)
        assert not decide(held, ok(pending=2), make_policy(), late).changed
        assert not decide(held, ok(), make_policy(), late).changed


def test_a_wave_before_an_approval_gate_closes_and_holds():
    policy = make_policy(approval_before_waves=[2])
    decision = decide(state(wave=1), ok(), policy, LATER)
    assert decision.finish_wave is not None
    assert (decision.current_wave, decision.start_wave) == (1, None)
    assert (decision.hold, decision.held_since) == (H.AWAITING_APPROVAL, LATER)
    assert decision.events[-1] == DecisionEvent(
        EventName.AWAITING_APPROVAL, 2, reason="wave 2 waits for approval"
    )
    # Wave 3 is not gated: wave 2 passing starts it.
    assert decide(state(wave=2), ok(), policy, LATER).start_wave == 3


def test_a_promoted_wave_is_judged_without_the_rest_of_its_grace():
    policy = make_policy(grace_seconds=600.0)
    soon = T0 + timedelta(seconds=5)
    assert not decide(state(wave=1), ok(), policy, soon).changed
    promoted = RolloutState(
        id=RID,
        status=S.RUNNING,
        waves=3,
        current_wave=1,
        current_wave_started_at=T0,
        attempt=1,
        grace_skipped=True,
    )
    assert decide(promoted, ok(), policy, soon).start_wave == 2
    # Skipping the grace never passes a wave with devices still updating.
    assert not decide(promoted, ok(pending=1), policy, soon).changed
