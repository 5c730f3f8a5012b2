"""The rollout state machine: what to do next, given the state, counters and time.

``decide`` is called on every relevant heartbeat batch and on the timer for a
running rollout; ``start``, ``abort`` and ``retry`` apply the operator commands. All
are pure: the scheduler loads a ``RolloutState`` and the current wave's
``WaveCounters`` under the rollout's advisory lock, applies the returned
``Decision`` in the same transaction and publishes its events after commit.

Rules: a start whose plan has no device ends at once: ``aborted`` with the
reason (``abort_on_zero_eligible``, the default) or ``completed`` with a reason
saying 0 devices were updated. Waves only move forward within an attempt; a wave
that passes starts the next one, or ends the rollout ``completed`` (every
eligible device applied) or ``partial`` (the gates passed, but some device of
this attempt failed or was skipped); a failing gate ends it ``failed``; a wave
that had devices and lost them all ends it ``aborted`` under
``abort_on_zero_eligible``. Wave deadlines are judged against ``heard_until``
(``liveness``), never against a clock the heartbeat queue has not caught up with.
Terminal statuses absorb: ``decide`` never changes them and only ``retry`` (from
failed or partial) leaves one, starting a new attempt at wave 1 over the failed
and skipped devices. Repeating a command whose effect already holds (start of a
running rollout, abort of an aborted one, retry of a running one) is a no-op, so
redelivered commands are harmless; every
other move outside ``TRANSITIONS`` raises ``InvalidTransition``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from xdp47_common.rollout.gates import (
    GateVerdict,
    Verdict,
    WaveCounters,
    deadline_passed,
    evaluate_gate,
)
from xdp47_common.rollout.policy import EffectivePolicy
from xdp47_common.rollout.status import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    RolloutStatus,
    WaveOutcome,
)

__all__ = [
    "NOTHING_UPDATED",
    "Decision",
    "DecisionEvent",
    "EventName",
    "InvalidTransition",
    "PlanCount",
    "RolloutState",
    "WaveFinish",
    "abort",
    "check_transition",
    "decide",
    "retry",
    "start",
]


class InvalidTransition(Exception):
    """A move the rollout lifecycle does not allow."""

    def __init__(self, from_: RolloutStatus, to: RolloutStatus, reason: str) -> None:
        super().__init__(f"cannot move rollout from {from_} to {to}: {reason}")
        self.from_ = from_
        self.to = to
        self.reason = reason


def check_transition(from_: RolloutStatus, to: RolloutStatus, reason: str = "") -> None:
    """Raise unless ``TRANSITIONS`` allows ``from_ -> to``.

    Raises:
        InvalidTransition: When the move is not allowed.
    """
    if to not in TRANSITIONS[from_]:
        raise InvalidTransition(from_, to, reason or f"{from_} does not lead to {to}")


class EventName(StrEnum):
    STARTED = "started"
    RETRIED = "retried"
    WAVE_STARTED = "wave_started"
    WAVE_FINISHED = "wave_finished"
    WAVE_TIMED_OUT = "wave_timed_out"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """One event to publish on ``xdp47.events`` (``messages.RolloutEvent``)."""

    name: EventName
    wave: int | None = None
    status: RolloutStatus | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class WaveFinish:
    """Close the RolloutRun of ``wave`` in the current attempt with this outcome."""

    wave: int
    outcome: WaveOutcome
    reason: str


@dataclass(frozen=True, slots=True)
class RolloutState:
    """What the machine needs to know about a rollout.

    ``shortfall`` is true when an earlier wave of the current attempt passed with
    failed or skipped devices (``EXISTS`` a rollout_runs row of this attempt with
    ``failed > 0 OR skipped > 0``); it turns a final pass into ``partial``.
    """

    id: UUID
    status: RolloutStatus
    waves: int
    current_wave: int | None = None
    current_wave_started_at: datetime | None = None
    attempt: int = 0
    shortfall: bool = False

    def __post_init__(self) -> None:
        if self.waves < 1:
            raise ValueError(f"waves must be >= 1, got {self.waves}")
        if self.current_wave is not None and not 1 <= self.current_wave <= self.waves:
            raise ValueError(
                f"current_wave {self.current_wave} is outside 1..{self.waves}"
            )
        if self.attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {self.attempt}")


@dataclass(frozen=True, slots=True)
class PlanCount:
    """What a start's plan found.

    ``planned``: devices in the waves; ``matched``: devices of the tenant on the
    rollout's channel whose labels match its selector; ``excluded``: how many of
    those each reason (``exclusions.Exclusion`` values) kept out of the waves.
    """

    planned: int
    matched: int
    excluded: Mapping[str, int] = field(default_factory=dict)

    def zero_eligible_reason(self) -> str:
        """``no eligible devices (N matched the selector[, all excluded: ...])``."""
        if self.matched == 0:
            return "no eligible devices (0 matched the selector)"
        why = ", ".join(f"{k} {n}" for k, n in sorted(self.excluded.items()) if n)
        return (
            f"no eligible devices ({self.matched} matched the selector, all "
            f"excluded: {why or 'unknown'})"
        )


# Prefix of the reason of a rollout that completed without updating anyone (a
# plan with no device under abort_on_zero_eligible=false): readers tell "completed,
# nothing updated" from it together with no run having succeeded any device.
NOTHING_UPDATED = "0 devices updated: "


@dataclass(frozen=True, slots=True)
class Decision:
    """What the scheduler applies, in one transaction.

    In order: time out the wave's pending devices (``timed_out_wave``: mark its
    assigned targets failed with reason ``timed_out``, then call ``decide`` again),
    close ``finish_wave``, set ``status``/``attempt``/``current_wave``/``reason``
    on the rollout, start ``start_wave`` (a new RolloutRun of ``attempt``), and
    publish ``events`` after commit. ``changed`` is false for a no-op.
    """

    status: RolloutStatus
    attempt: int
    current_wave: int | None
    reason: str | None
    start_wave: int | None = None
    finish_wave: WaveFinish | None = None
    timed_out_wave: int | None = None
    events: tuple[DecisionEvent, ...] = field(default_factory=tuple)
    changed: bool = True


def _no_op(rollout: RolloutState, reason: str) -> Decision:
    return Decision(
        status=rollout.status,
        attempt=rollout.attempt,
        current_wave=rollout.current_wave,
        reason=reason,
        changed=False,
    )


def _start_wave(rollout: RolloutState, wave: int, reason: str) -> Decision:
    return Decision(
        status=RolloutStatus.RUNNING,
        attempt=max(rollout.attempt, 1),
        current_wave=wave,
        reason=reason,
        start_wave=wave,
        events=(DecisionEvent(EventName.WAVE_STARTED, wave=wave),),
    )


def _judge(
    rollout: RolloutState,
    wave: int,
    started_at: datetime,
    current: WaveCounters,
    policy: EffectivePolicy,
    now: datetime,
) -> GateVerdict:
    if rollout.attempt > 1 and current.eligible == 0 and current.skipped == 0:
        # A retry re-runs only failed and skipped devices; a wave that had none is
        # not "a wave with no eligible device" in the abort_on_zero_eligible sense.
        return GateVerdict.passed(
            f"wave {wave}: nothing to retry, skipped", WaveOutcome.SKIPPED
        )
    return evaluate_gate(wave, current, started_at, now, policy)


def decide(
    rollout: RolloutState,
    current: WaveCounters | None,
    policy: EffectivePolicy,
    now: datetime,
    heard_until: datetime | None = None,
) -> Decision:
    """Decide the next step of a rollout from the counters of its current wave.

    Args:
        rollout: The rollout as stored.
        current: Counters of ``rollout.current_wave`` in ``rollout.attempt``;
            required when the rollout is running with a current wave.
        policy: The effective policy.
        now: The current time (aware).
        heard_until: The time up to which every heartbeat ingest accepted has
            been committed (``liveness``); the wave deadline is judged against
            it, so devices whose reports wait in the queue never time out. None:
            caught up (``now``).

    Returns:
        The decision; a no-op unless the rollout is running and something is due.

    Raises:
        ValueError: When a running rollout lacks its wave's start time or counters,
            or a datetime is naive.
    """
    if rollout.status is not RolloutStatus.RUNNING:
        return _no_op(rollout, f"rollout is {rollout.status}")
    wave = rollout.current_wave
    if wave is None:
        # A running rollout always has a wave; repair a lost wave start.
        return _start_wave(rollout, 1, "wave 1 started")
    started_at = rollout.current_wave_started_at
    if started_at is None or current is None:
        raise ValueError(
            f"running rollout {rollout.id} wave {wave} needs its start time "
            "and counters"
        )
    verdict = _judge(rollout, wave, started_at, current, policy, now)
    if verdict.verdict is Verdict.WAIT:
        heard = now if heard_until is None else min(now, heard_until)
        if current.pending and deadline_passed(started_at, heard, policy):
            reason = (
                f"wave {wave}: {current.pending} devices timed_out after "
                f"{policy.wave_deadline_seconds:g}s"
            )
            return Decision(
                status=rollout.status,
                attempt=rollout.attempt,
                current_wave=wave,
                reason=reason,
                timed_out_wave=wave,
                events=(DecisionEvent(EventName.WAVE_TIMED_OUT, wave, reason=reason),),
            )
        return _no_op(rollout, verdict.reason)
    assert verdict.outcome is not None  # pass and fail verdicts carry an outcome
    finish = WaveFinish(wave, verdict.outcome, verdict.reason)
    finished = DecisionEvent(EventName.WAVE_FINISHED, wave, reason=verdict.reason)
    if verdict.verdict is Verdict.FAIL:
        return _finish(rollout, RolloutStatus.FAILED, finish, finished, verdict.reason)
    if verdict.verdict is Verdict.ABORT:
        return _finish(rollout, RolloutStatus.ABORTED, finish, finished, verdict.reason)
    if wave < rollout.waves:
        step = _start_wave(rollout, wave + 1, f"wave {wave + 1} started")
        return Decision(
            status=step.status,
            attempt=step.attempt,
            current_wave=step.current_wave,
            reason=verdict.reason,
            start_wave=step.start_wave,
            finish_wave=finish,
            events=(finished, *step.events),
        )
    if rollout.shortfall or current.failed or current.skipped:
        status = RolloutStatus.PARTIAL
        reason = f"all {rollout.waves} waves passed with failed or skipped devices"
    else:
        status, reason = RolloutStatus.COMPLETED, f"all {rollout.waves} waves passed"
    return _finish(rollout, status, finish, finished, reason)


def _finish(
    rollout: RolloutState,
    status: RolloutStatus,
    finish: WaveFinish | None,
    finished: DecisionEvent | None,
    reason: str,
) -> Decision:
    check_transition(rollout.status, status, reason)
    final = DecisionEvent(EventName(status.value), rollout.current_wave, status, reason)
    return Decision(
        status=status,
        attempt=rollout.attempt,
        current_wave=rollout.current_wave,
        reason=reason,
        finish_wave=finish,
        events=(finished, final) if finished else (final,),
    )


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
    if rollout.status is RolloutStatus.RUNNING:
        return _no_op(rollout, "already running")
    hint = (
        "; use retry"
        if rollout.status in (RolloutStatus.FAILED, RolloutStatus.PARTIAL)
        else ""
    )
    if rollout.status is not RolloutStatus.DRAFT:
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
    if rollout.status is RolloutStatus.ABORTED:
        return _no_op(rollout, "already aborted")
    check_transition(
        rollout.status,
        RolloutStatus.ABORTED,
        f"a {rollout.status} rollout has already ended",
    )
    reason = f"aborted by {by}" + (f": {note}" if note else "")
    wave = rollout.current_wave
    finish = (
        WaveFinish(wave, WaveOutcome.ABORTED, reason)
        if rollout.status is RolloutStatus.RUNNING and wave is not None
        else None
    )
    return _finish(rollout, RolloutStatus.ABORTED, finish, None, reason)


def retry(rollout: RolloutState) -> Decision:
    """Apply a retry command: failed|partial -> running, a new attempt from wave 1.

    The scheduler resets the failed and skipped targets to pending; waves of the new
    attempt with nothing to redo pass as skipped.

    Raises:
        InvalidTransition: When the rollout is draft, completed or aborted.
    """
    if rollout.status is RolloutStatus.RUNNING:
        return _no_op(rollout, "already running")
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
