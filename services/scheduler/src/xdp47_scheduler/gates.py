"""Gate evaluation: ask the gates of one running rollout and apply what they decide.

Called after a heartbeat batch moved the rollout's counters, by the timer for
every running rollout (deadlines, waves that pass without devices), and after a
wave-start follow-up moved targets. One transaction that locks the rollout; the
timer skips a rollout another scheduler holds (``skip_locked``).
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import structlog

from xdp47_common.messages import RolloutEvent
from xdp47_common.rollout import RolloutStatus
from xdp47_scheduler.advance import Context, advance, policy_of
from xdp47_scheduler.metrics import GATE_DURATION, GATE_EVALUATIONS
from xdp47_scheduler.ports import RolloutTx
from xdp47_scheduler.runner import Runner

__all__ = ["evaluate"]


async def evaluate(
    runner: Runner,
    ctx: Context,
    rollout_id: UUID,
    restarted: Callable[[UUID], None],
    *,
    skip_locked: bool = False,
) -> None:
    """Evaluate the gates of one running rollout and apply what they decide."""
    structlog.contextvars.unbind_contextvars("message_id", "correlation_id")

    async def work(tx: RolloutTx) -> list[RolloutEvent]:
        row = await tx.lock(rollout_id, skip_locked=skip_locked)
        if row is None:
            GATE_EVALUATIONS.labels("skipped_locked").inc()
            return []
        if row.status is not RolloutStatus.RUNNING or row.hold is not None:
            # Held: no gate moves it until a command lifts the hold.
            return []
        policy = await policy_of(tx, row, ctx)
        return await advance(tx, row.id, policy, ctx, restarted=restarted)

    # Bound for this evaluation only: the timer task goes on to other work (the
    # heartbeat queue probe, offline marking) that is no rollout's.
    with (
        structlog.contextvars.bound_contextvars(rollout_id=str(rollout_id)),
        GATE_DURATION.time(),
    ):
        await runner.run(work)
