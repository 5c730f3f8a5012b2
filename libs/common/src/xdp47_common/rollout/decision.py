"""What the state machine decides: the rollout as it knows it, and the steps to apply.

``RolloutState`` and ``WaveCounters`` go in; a ``Decision`` comes out, applied by the
scheduler in one transaction in the order ``Decision`` documents. ``TRANSITIONS``
(``status``) bounds every status change (``check_transition``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from xdp47_common.rollout.status import (
    TRANSITIONS,
    RolloutHold,
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
    "check_transition",
    "finish",
    "no_op",
    "wave_start",
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
    PAUSED = "paused"
    RESUMED = "resumed"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    PROMOTED = "promoted"


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

    ``hold`` (running only) stops the machine: ``paused`` since ``held_since``,
    or ``awaiting_approval`` of wave ``current_wave + 1`` (the current wave's run
    is closed). ``grace_skipped``: the current wave was promoted, its gate judges
    it without the rest of its grace. ``started_by``: who started the current
    attempt (``token:<id>``), the one a four-eyes approval must not come from.
    """

    id: UUID
    status: RolloutStatus
    waves: int
    current_wave: int | None = None
    current_wave_started_at: datetime | None = None
    attempt: int = 0
    shortfall: bool = False
    hold: RolloutHold | None = None
    held_since: datetime | None = None
    grace_skipped: bool = False
    started_by: str | None = None

    def __post_init__(self) -> None:
        if self.waves < 1:
            raise ValueError(f"waves must be >= 1, got {self.waves}")
        if self.current_wave is not None and not 1 <= self.current_wave <= self.waves:
            raise ValueError(
                f"current_wave {self.current_wave} is outside 1..{self.waves}"
            )
        if self.attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {self.attempt}")
        if self.hold is not None and self.status is not RolloutStatus.RUNNING:
            raise ValueError(f"only a running rollout is held, not a {self.status}")


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

    The hold: ``hold`` and ``held_since`` are stored as given (None: not held);
    ``shift_wave_clock`` moves the current wave's start later by that much (a
    resume: the time spent paused does not count against its grace and
    deadline); ``skip_grace`` marks the current wave promoted (a wave start
    clears the mark).
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
    hold: RolloutHold | None = None
    held_since: datetime | None = None
    shift_wave_clock: timedelta | None = None
    skip_grace: bool = False


def no_op(rollout: RolloutState, reason: str) -> Decision:
    return Decision(
        status=rollout.status,
        attempt=rollout.attempt,
        current_wave=rollout.current_wave,
        reason=reason,
        changed=False,
        hold=rollout.hold,
        held_since=rollout.held_since,
        skip_grace=rollout.grace_skipped,
    )


def wave_start(rollout: RolloutState, wave: int, reason: str) -> Decision:
    return Decision(
        status=RolloutStatus.RUNNING,
        attempt=max(rollout.attempt, 1),
        current_wave=wave,
        reason=reason,
        start_wave=wave,
        events=(DecisionEvent(EventName.WAVE_STARTED, wave=wave),),
    )


def finish(
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
