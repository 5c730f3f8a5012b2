"""Rollout commands (imperative, consumed by the scheduler) and events (past tense,
published on ``xdp47.events`` for the UI, the CLI and integrations)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from xdp47_common.messages.envelope import Envelope

__all__ = [
    "AbortRollout",
    "ApproveRollout",
    "PauseRollout",
    "PromoteRollout",
    "ResumeRollout",
    "RetryRollout",
    "RollbackRollout",
    "RolloutCommand",
    "RolloutEvent",
    "StartRollout",
]


class _RolloutCommandBase(Envelope):
    version: Literal[1] = 1
    rollout_id: UUID
    # Who sent the command: ``token:<id>`` (or the dev actor), the token's name
    # as minted, and the API request that carried it (its ``X-Request-ID``), so a
    # decision the scheduler takes on the command can name them.
    requested_by: str | None = None
    actor_name: str | None = None
    request_id: str | None = None


class StartRollout(_RolloutCommandBase):
    type: Literal["rollout.start"] = "rollout.start"


class RetryRollout(_RolloutCommandBase):
    type: Literal["rollout.retry"] = "rollout.retry"


class AbortRollout(_RolloutCommandBase):
    type: Literal["rollout.abort"] = "rollout.abort"
    reason: str | None = None


class RollbackRollout(_RolloutCommandBase):
    """Undo rollout ``rollout_id``: abort it if it runs, then create and start
    rollout ``rollback_id`` (kind rollback) under ``policy_id`` (None: the
    undone rollout's policy)."""

    type: Literal["rollout.rollback"] = "rollout.rollback"
    rollback_id: UUID
    policy_id: UUID | None = None


class PauseRollout(_RolloutCommandBase):
    """Hold a running rollout: no gate judges, no wave starts, clocks stop."""

    type: Literal["rollout.pause"] = "rollout.pause"


class ResumeRollout(_RolloutCommandBase):
    """Lift a pause; the wave's grace and deadline go on where they stopped."""

    type: Literal["rollout.resume"] = "rollout.resume"


class ApproveRollout(_RolloutCommandBase):
    """Start the wave that awaits approval (``requested_by`` is the approver)."""

    type: Literal["rollout.approve"] = "rollout.approve"


class PromoteRollout(_RolloutCommandBase):
    """Judge the current wave now, skipping the rest of its grace."""

    type: Literal["rollout.promote"] = "rollout.promote"


RolloutCommand = (
    StartRollout
    | RetryRollout
    | AbortRollout
    | RollbackRollout
    | PauseRollout
    | ResumeRollout
    | ApproveRollout
    | PromoteRollout
)


class RolloutEvent(Envelope):
    """A scheduler decision: ``event`` names it (``wave_started``, ``completed`` …)."""

    type: Literal["rollout.event"] = "rollout.event"
    version: Literal[1] = 1
    rollout_id: UUID
    event: str
    wave: int | None = None
    status: str | None = None
    reason: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
