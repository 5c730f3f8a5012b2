"""What a command handler is: a function from a locked rollout and a command to a
``Step`` (the core's decision, with the policy and reason to apply it under).

A handler decides; it does not apply: ``dispatch`` claims the command in the
inbox, locks the rollout, calls the handler of the command's type, applies the
step and advances the rollout if a wave started, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from xdp47_common.messages import RolloutCommand, RolloutEvent
from xdp47_common.rollout import Decision, EffectivePolicy
from xdp47_scheduler.advance import Context
from xdp47_scheduler.ports import RolloutRow, RolloutTx

__all__ = ["Handler", "Step", "Then", "actor"]

# More work in the command's transaction once its decision is applied (a
# rollback starting another rollout): (transaction, restarted) -> events.
Then = Callable[[RolloutTx, Callable[[UUID], None]], Awaitable[list[RolloutEvent]]]


@dataclass(frozen=True)
class Step:
    """A decision (applied when it changes something), the policy the rollout
    runs under, the reason stored, and what to do after it (``then``)."""

    decision: Decision
    policy: EffectivePolicy
    reason: str | None
    then: Then | None = None


# (transaction, locked rollout, command, context) -> the step, or None for a
# command whose effect already holds (a no-op). Raises ``InvalidTransition`` for
# a command the rollout's status does not accept.
Handler = Callable[[RolloutTx, RolloutRow, Any, Context], Awaitable[Step | None]]


def actor(command: RolloutCommand) -> str:
    """Who sent the command, as reasons name it (``token:<id>``)."""
    return command.requested_by or "operator"
