"""The operator commands, and the phases (status and hold) accepting each.

``ACCEPTED_COMMANDS`` is the one table of which command each ``Phase`` accepts: a
status, and for a running rollout its hold (``RolloutHold``: paused, awaiting
approval, analysis inconclusive; None: moving). The API answers 409 outside it,
the UI offers a command where it changes something (``offered_from``), and the
command functions (``start``/``retry``/``abort`` here, ``pause``/``resume``/``approve``/
``promote`` in ``steering``) raise ``InvalidTransition`` exactly outside it (a
unit test holds them to it). A command repeated once its effect holds (start or
retry of a running rollout, abort of an aborted one, pause of a paused one,
resume of a running one not held) is accepted and changes nothing, so a
redelivered command or a second click is harmless.

``promote`` is the one command with a condition the table cannot hold: the
current wave must be in its grace (``steering.promotable``); the API checks it
too.

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
from typing import NamedTuple

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
from xdp47_common.rollout.status import (
    TERMINAL_STATUSES,
    RolloutHold,
    RolloutStatus,
    WaveOutcome,
)

__all__ = [
    "ACCEPTED_COMMANDS",
    "NO_OP_IN",
    "PHASES",
    "CommandName",
    "Phase",
    "abort",
    "accepted_from",
    "accepts",
    "offered_from",
    "offered_table",
    "phase_of",
    "repeats",
    "retry",
    "start",
]


class CommandName(StrEnum):
    """An operator command (the ``rollout.<name>`` message type)."""

    START = "start"
    RETRY = "retry"
    ABORT = "abort"
    ROLLBACK = "rollback"
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    PROMOTE = "promote"


class Phase(NamedTuple):
    """Where a rollout is: its status and, running, its hold (None: moving)."""

    status: RolloutStatus
    hold: RolloutHold | None = None

    @property
    def key(self) -> str:
        """``running``, ``running:paused`` ...: the spelling templates compare."""
        return self.status.value + (f":{self.hold.value}" if self.hold else "")

    def describe(self) -> str:
        """In words, for messages: ``running``, ``running (paused)``."""
        return self.status.value + (f" ({self.hold.value})" if self.hold else "")


_S = RolloutStatus
_C = CommandName
_H = RolloutHold

PHASES: tuple[Phase, ...] = (
    *(Phase(s) for s in RolloutStatus),
    *(Phase(_S.RUNNING, h) for h in RolloutHold),
)


def phase_of(rollout: RolloutState) -> Phase:
    return Phase(rollout.status, rollout.hold)


# The commands each phase accepts: the moves ``TRANSITIONS`` and the holds allow,
# plus the repeat of a command whose effect already holds (``NO_OP_IN``). Abort
# ends a held rollout like a moving one; rollback (which aborts a running
# rollout and starts another) is accepted whatever the hold.
ACCEPTED_COMMANDS: Mapping[Phase, frozenset[CommandName]] = {
    Phase(_S.DRAFT): frozenset({_C.START, _C.ABORT}),
    Phase(_S.RUNNING): frozenset(
        {_C.START, _C.RETRY, _C.ABORT, _C.ROLLBACK, _C.PAUSE, _C.RESUME, _C.PROMOTE}
    ),
    Phase(_S.RUNNING, _H.PAUSED): frozenset(
        {_C.START, _C.RETRY, _C.ABORT, _C.ROLLBACK, _C.PAUSE, _C.RESUME}
    ),
    Phase(_S.RUNNING, _H.AWAITING_APPROVAL): frozenset(
        {_C.START, _C.RETRY, _C.ABORT, _C.ROLLBACK, _C.APPROVE}
    ),
    # Held by an inconclusive analysis: resume judges the wave again.
    Phase(_S.RUNNING, _H.ANALYSIS_INCONCLUSIVE): frozenset(
        {_C.START, _C.RETRY, _C.ABORT, _C.RESUME, _C.ROLLBACK}
    ),
    Phase(_S.COMPLETED): frozenset({_C.ROLLBACK}),
    Phase(_S.PARTIAL): frozenset({_C.RETRY, _C.ROLLBACK}),
    Phase(_S.FAILED): frozenset({_C.RETRY, _C.ROLLBACK}),
    Phase(_S.ABORTED): frozenset({_C.ABORT}),
}

_RUNNING_ANY = frozenset(p for p in PHASES if p.status is _S.RUNNING)

# The phases in which a command's effect already holds: accepted, a no-op.
# (Rollback has none: each one starts a rollout of its own.)
NO_OP_IN: Mapping[CommandName, frozenset[Phase]] = {
    _C.START: _RUNNING_ANY,
    _C.RETRY: _RUNNING_ANY,
    _C.ABORT: frozenset({Phase(_S.ABORTED)}),
    _C.ROLLBACK: frozenset(),
    _C.PAUSE: frozenset({Phase(_S.RUNNING, _H.PAUSED)}),
    _C.RESUME: frozenset({Phase(_S.RUNNING)}),
    _C.APPROVE: frozenset(),
    _C.PROMOTE: frozenset(),
}


def accepted_from(command: CommandName) -> frozenset[Phase]:
    """The phases in which ``command`` is accepted (a move or a harmless repeat)."""
    return frozenset(p for p, cs in ACCEPTED_COMMANDS.items() if command in cs)


def offered_from(command: CommandName) -> frozenset[Phase]:
    """The phases in which ``command`` changes something (what a UI offers)."""
    return accepted_from(command) - NO_OP_IN[command]


def offered_table() -> dict[str, frozenset[str]]:
    """``offered_from`` of every command, by name, as ``Phase.key`` strings."""
    return {c.value: frozenset(p.key for p in offered_from(c)) for c in CommandName}


def accepts(command: CommandName, rollout: RolloutState) -> bool:
    return command in ACCEPTED_COMMANDS[phase_of(rollout)]


def repeats(command: CommandName, rollout: RolloutState) -> bool:
    """Whether ``command``'s effect already holds (accepted, a no-op)."""
    return phase_of(rollout) in NO_OP_IN[command]


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
    if repeats(_C.START, rollout):
        return no_op(rollout, "already running")
    hint = "; use retry" if accepts(_C.RETRY, rollout) else ""
    if not accepts(_C.START, rollout):
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
    if repeats(_C.ABORT, rollout):
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
    if repeats(_C.RETRY, rollout):
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
