"""The operator commands: start, retry, abort and rollback, and the statuses
accepting each.

``ACCEPTED_COMMANDS`` is the one table of which command each status accepts; the
API answers 409 outside it, the UI offers a command where it changes something
(``offered_from``), and ``start``/``retry``/``abort`` raise ``InvalidTransition``
exactly outside it (a unit test holds them to it). A command repeated once its
effect holds (start or retry of a running rollout, abort of an aborted one) is
accepted and changes nothing, so a redelivered command or a second click is
harmless.

A start whose plan has no device ends at once: ``aborted`` with the reason
(``abort_on_zero_eligible``, the default) or ``completed`` with a reason saying 0
devices were updated. Only ``retry`` (from failed or partial) leaves a terminal
status, starting a new attempt at wave 1 over the failed and skipped devices.
``rollback`` never changes the rollout's own status beyond aborting a running
one: it starts another rollout (``rollout.rollback``), so it has no no-op status.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from xdp47_common.rollout.decision import (
    NOTHING_UPDATED,
    Decision,
    DecisionEvent,
    EventName,
    InvalidTransition,
    PlanCount,
    RolloutState,
    WaveFinish,
    check_transition,
    finish,
    no_op,
)
from xdp47_common.rollout.policy import EffectivePolicy
from xdp47_common.rollout.status import TERMINAL_STATUSES, RolloutStatus, WaveOutcome

__all__ = [
    "ACCEPTED_COMMANDS",
    "NO_OP_IN",
    "CommandName",
    "abort",
    "accepted_from",
    "offered_from",
    "offered_table",
    "retry",
    "start",
]


class CommandName(StrEnum):
    """An operator command (the ``rollout.<name>`` message type)."""

    START = "start"
    RETRY = "retry"
    ABORT = "abort"
    ROLLBACK = "rollback"


_S = RolloutStatus
_C = CommandName

# The commands each status accepts: the moves ``TRANSITIONS`` allows, plus the
# repeat of a command whose effect already holds (``NO_OP_IN``).
ACCEPTED_COMMANDS: Mapping[RolloutStatus, frozenset[CommandName]] = {
    _S.DRAFT: frozenset({_C.START, _C.ABORT}),
    _S.RUNNING: frozenset({_C.START, _C.RETRY, _C.ABORT, _C.ROLLBACK}),
    _S.COMPLETED: frozenset({_C.ROLLBACK}),
    _S.PARTIAL: frozenset({_C.RETRY, _C.ROLLBACK}),
    _S.FAILED: frozenset({_C.RETRY, _C.ROLLBACK}),
    _S.ABORTED: frozenset({_C.ABORT}),
}

# The status in which a command's effect already holds: accepted, a no-op.
# (Rollback has none: each one starts a rollout of its own.)
NO_OP_IN: Mapping[CommandName, RolloutStatus] = {
    _C.START: _S.RUNNING,
    _C.RETRY: _S.RUNNING,
    _C.ABORT: _S.ABORTED,
}


def accepted_from(command: CommandName) -> frozenset[RolloutStatus]:
    """The statuses in which ``command`` is accepted (a move or a harmless repeat)."""
    return frozenset(s for s, cs in ACCEPTED_COMMANDS.items() if command in cs)


def offered_from(command: CommandName) -> frozenset[RolloutStatus]:
    """The statuses in which ``command`` changes something (what a UI offers)."""
    no_op_in = NO_OP_IN.get(command)
    return accepted_from(command) - ({no_op_in} if no_op_in else set())


def offered_table() -> dict[str, frozenset[str]]:
    """``offered_from`` of every command, by name, as plain strings (templates)."""
    return {c.value: frozenset(s.value for s in offered_from(c)) for c in CommandName}


def _repeat(command: CommandName, rollout: RolloutState) -> bool:
    """Whether ``command``'s effect already holds (accepted, a no-op)."""
    return rollout.status is NO_OP_IN.get(command)


def start(
    rollout: RolloutState,
    plan: PlanCount | None = None,
    policy: EffectivePolicy | None = None,
) -> Decision:
    """Apply a start command: draft -> running, wave 1 of attempt 1.

    A plan with no device ends the rollout in the same step (zero eligible):
    ``aborted`` with ``plan.zero_eligible_reason()`` when the policy has
    ``abort_on_zero_eligible`` (or no policy is given), else ``completed`` with
    that reason prefixed by ``NOTHING_UPDATED``. No wave starts then.

    Args:
        rollout: The rollout as stored.
        plan: What planning found; None: not known (no zero-eligible check).
        policy: The effective policy.

    Raises:
        InvalidTransition: When the rollout is neither draft nor running.
    """
    if _repeat(_C.START, rollout):
        return no_op(rollout, "already running")
    hint = "; use retry" if _C.RETRY in ACCEPTED_COMMANDS[rollout.status] else ""
    if rollout.status not in accepted_from(_C.START):
        raise InvalidTransition(
            rollout.status,
            RolloutStatus.RUNNING,
            f"start applies to a draft rollout{hint}",
        )
    if plan is not None and plan.planned == 0:
        return _zero_eligible_start(rollout, plan, policy)
    return Decision(
        status=RolloutStatus.RUNNING,
        attempt=1,
        current_wave=1,
        reason="started",
        start_wave=1,
        events=(
            DecisionEvent(EventName.STARTED, status=RolloutStatus.RUNNING),
            DecisionEvent(EventName.WAVE_STARTED, wave=1),
        ),
    )


def _zero_eligible_start(
    rollout: RolloutState, plan: PlanCount, policy: EffectivePolicy | None
) -> Decision:
    reason = plan.zero_eligible_reason()
    if policy is None or policy.abort_on_zero_eligible:
        status = RolloutStatus.ABORTED
    else:
        status, reason = RolloutStatus.COMPLETED, NOTHING_UPDATED + reason
    # draft -> running -> terminal in one step: the rollout did start.
    check_transition(rollout.status, RolloutStatus.RUNNING, reason)
    check_transition(RolloutStatus.RUNNING, status, reason)
    return Decision(
        status=status,
        attempt=1,
        current_wave=None,
        reason=reason,
        events=(
            DecisionEvent(EventName.STARTED, status=RolloutStatus.RUNNING),
            DecisionEvent(EventName(status.value), None, status, reason),
        ),
    )


def abort(rollout: RolloutState, by: str, note: str | None = None) -> Decision:
    """Apply an abort command: draft|running -> aborted, reason ``aborted by <by>``.

    Devices not yet updated keep their version: the scheduler clears their desired
    state and marks pending or assigned targets skipped.

    Raises:
        InvalidTransition: When the rollout already ended otherwise.
    """
    if _repeat(_C.ABORT, rollout):
        return no_op(rollout, "already aborted")
    check_transition(
        rollout.status,
        RolloutStatus.ABORTED,
        f"a {rollout.status} rollout has already ended",
    )
    reason = f"aborted by {by}" + (f": {note}" if note else "")
    wave = rollout.current_wave
    closed = (
        WaveFinish(wave, WaveOutcome.ABORTED, reason)
        if rollout.status is RolloutStatus.RUNNING and wave is not None
        else None
    )
    return finish(rollout, RolloutStatus.ABORTED, closed, None, reason)


def retry(rollout: RolloutState) -> Decision:
    """Apply a retry command: failed|partial -> running, a new attempt from wave 1.

    The scheduler resets the failed and skipped targets to pending; waves of the new
    attempt with nothing to redo pass as skipped.

    Raises:
        InvalidTransition: When the rollout is draft, completed or aborted.
    """
    if _repeat(_C.RETRY, rollout):
        return no_op(rollout, "already running")
    if rollout.status not in TERMINAL_STATUSES:
        raise InvalidTransition(
            rollout.status, RolloutStatus.RUNNING, "retry applies to a finished rollout"
        )
    check_transition(
        rollout.status,
        RolloutStatus.RUNNING,
        f"a {rollout.status} rollout has no failed or skipped devices to retry",
    )
    attempt = rollout.attempt + 1
    return Decision(
        status=RolloutStatus.RUNNING,
        attempt=attempt,
        current_wave=1,
        reason=f"retry, attempt {attempt}",
        start_wave=1,
        events=(
            DecisionEvent(EventName.RETRIED, status=RolloutStatus.RUNNING),
            DecisionEvent(EventName.WAVE_STARTED, wave=1),
        ),
    )
