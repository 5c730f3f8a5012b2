"""Steering a running rollout: pause, resume, approve and promote.

Each is a pure function of the rollout as stored (and the time), accepted exactly
where ``commands.ACCEPTED_COMMANDS`` says, raising ``InvalidTransition``
elsewhere; none changes the status (``running`` stays ``running``, so devices
already told keep their desired state and go on updating), only the hold:

- ``pause``: hold ``paused`` from ``now``; no gate judges and no wave starts.
- ``resume``: lift the pause and shift the current wave's clock by the time spent
  paused, so the wave has the grace and deadline left it had when paused.
- ``approve``: lift ``awaiting_approval`` and start the waiting wave
  (``current_wave + 1``). Under four-eyes the approver must not be the one who
  started the attempt (``ApprovalRefused``).
- ``promote``: judge the current wave now, skipping the rest of its grace; only
  while the wave is in its grace (``promotable``).

The scheduler applies the decision and then asks the gates (``decide``), which
judge a promoted wave at once and a resumed one as they would have.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from xdp47_common.rollout.commands import CommandName, Phase, accepts, repeats
from xdp47_common.rollout.decision import (
    Decision,
    DecisionEvent,
    EventName,
    InvalidTransition,
    RolloutState,
    no_op,
)
from xdp47_common.rollout.policy import EffectivePolicy
from xdp47_common.rollout.status import RolloutHold, RolloutStatus

__all__ = [
    "ApprovalRefused",
    "approve",
    "grace_left",
    "pause",
    "promotable",
    "promote",
    "resume",
]

_C = CommandName


class ApprovalRefused(Exception):
    """An approve that four-eyes forbids: the approver started the attempt."""


def _refuse(command: CommandName, rollout: RolloutState, needs: str) -> None:
    if not accepts(command, rollout):
        phase = Phase(rollout.status, rollout.hold).describe()
        raise InvalidTransition(
            rollout.status,
            rollout.status,
            f"{command.value} applies to {needs}, not to a {phase} one",
        )


def _kept(rollout: RolloutState, **changes: Any) -> Decision:
    """The rollout's status, attempt, wave and hold unchanged, with ``changes``."""
    base = Decision(
        status=rollout.status,
        attempt=rollout.attempt,
        current_wave=rollout.current_wave,
        reason=None,
        hold=rollout.hold,
        held_since=rollout.held_since,
        skip_grace=rollout.grace_skipped,
    )
    return dataclasses.replace(base, **changes)


def pause(rollout: RolloutState, by: str, now: datetime) -> Decision:
    """Hold a running rollout ``paused`` from ``now``.

    Raises:
        InvalidTransition: Outside a running rollout, or awaiting approval.
    """
    _refuse(_C.PAUSE, rollout, "a running rollout")
    if repeats(_C.PAUSE, rollout):
        return no_op(rollout, "already paused")
    reason = f"paused by {by}"
    return _kept(
        rollout,
        reason=reason,
        hold=RolloutHold.PAUSED,
        held_since=now,
        events=(
            DecisionEvent(
                EventName.PAUSED, rollout.current_wave, RolloutStatus.RUNNING, reason
            ),
        ),
    )


def resume(rollout: RolloutState, by: str, now: datetime) -> Decision:
    """Lift a pause; the current wave's clock moves on by the time spent paused.

    Raises:
        InvalidTransition: Outside a running rollout, or awaiting approval.
    """
    _refuse(_C.RESUME, rollout, "a paused rollout")
    if repeats(_C.RESUME, rollout):
        return no_op(rollout, "not paused")
    paused = max(timedelta(0), now - (rollout.held_since or now))
    reason = f"resumed by {by} after {paused.total_seconds():.0f}s paused"
    return _kept(
        rollout,
        reason=reason,
        hold=None,
        held_since=None,
        shift_wave_clock=paused if rollout.current_wave_started_at else None,
        events=(
            DecisionEvent(
                EventName.RESUMED, rollout.current_wave, RolloutStatus.RUNNING, reason
            ),
        ),
    )


def approve(rollout: RolloutState, by: str | None, *, four_eyes: bool) -> Decision:
    """Start the wave that awaits approval (``current_wave + 1``).

    Args:
        rollout: The rollout as stored.
        by: Who approves (``token:<id>``).
        four_eyes: The tenant's setting: the approver must not be the one who
            started the attempt (``rollout.started_by``).

    Raises:
        InvalidTransition: When no wave awaits approval.
        ApprovalRefused: When four-eyes forbids this approver.
    """
    _refuse(_C.APPROVE, rollout, "a rollout awaiting approval")
    if four_eyes and by is not None and by == rollout.started_by:
        raise ApprovalRefused(
            "four-eyes approval: the token that started the rollout cannot approve "
            "it; another token with rollouts:approve must"
        )
    wave = (rollout.current_wave or 0) + 1
    if wave > rollout.waves:  # not reachable from ``decide``; a broken row
        raise InvalidTransition(
            rollout.status, rollout.status, f"no wave {wave} of {rollout.waves}"
        )
    reason = f"wave {wave} approved by {by or 'operator'}"
    return _kept(
        rollout,
        reason=reason,
        current_wave=wave,
        start_wave=wave,
        hold=None,
        held_since=None,
        skip_grace=False,
        events=(
            DecisionEvent(EventName.APPROVED, wave, RolloutStatus.RUNNING, reason),
            DecisionEvent(EventName.WAVE_STARTED, wave=wave),
        ),
    )


def grace_left(
    rollout: RolloutState, policy: EffectivePolicy, now: datetime
) -> timedelta:
    """How much of the current wave's grace is left (zero: none, or skipped)."""
    started = rollout.current_wave_started_at
    if rollout.grace_skipped or started is None or rollout.current_wave is None:
        return timedelta(0)
    until = started + timedelta(seconds=policy.grace_seconds)
    return max(timedelta(0), until - now)


def promotable(
    rollout: RolloutState, policy: EffectivePolicy, now: datetime
) -> str | None:
    """Why there is nothing to promote now; None when promote applies."""
    if not accepts(_C.PROMOTE, rollout):
        phase = Phase(rollout.status, rollout.hold).describe()
        return f"promote applies to a running rollout, not to a {phase} one"
    if rollout.grace_skipped:
        return f"wave {rollout.current_wave} was promoted already"
    if grace_left(rollout, policy, now) <= timedelta(0):
        return (
            f"wave {rollout.current_wave} is not in its grace period: its gate "
            "judges it as its devices report"
        )
    return None


def promote(
    rollout: RolloutState, by: str, policy: EffectivePolicy, now: datetime
) -> Decision:
    """Skip the rest of the current wave's grace; the gates judge it next.

    Raises:
        InvalidTransition: When there is nothing to promote (``promotable``).
    """
    why_not = promotable(rollout, policy, now)
    if why_not is not None:
        raise InvalidTransition(rollout.status, rollout.status, why_not)
    wave = rollout.current_wave
    left = grace_left(rollout, policy, now).total_seconds()
    reason = f"wave {wave} promoted by {by}, {left:.0f}s of grace skipped"
    return _kept(
        rollout,
        reason=reason,
        skip_grace=True,
        events=(
            DecisionEvent(EventName.PROMOTED, wave, RolloutStatus.RUNNING, reason),
        ),
    )
