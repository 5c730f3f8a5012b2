"""``rollout.rollback``: abort the rollout if it runs, then create and start its
rollback (a rollout of kind rollback sending every device that applied the
artifact back to what it ran before)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from xdp47_common.messages import RollbackRollout, RolloutEvent
from xdp47_common.rollout import RollbackRefused, rollback
from xdp47_scheduler.advance import Context, policy_of, start_rollback
from xdp47_scheduler.handlers.base import Step, actor
from xdp47_scheduler.ports import RolloutRow, RolloutTx

__all__ = ["handle_rollback"]


async def handle_rollback(
    tx: RolloutTx, row: RolloutRow, command: RollbackRollout, ctx: Context
) -> Step | None:
    # Refuses a rollback (kind) or a status outside the core's table.
    decision = rollback(row.state(), row.kind, by=actor(command))
    if not await tx.rollbackable(row):
        raise RollbackRefused(
            row.status, "no device applied the rollout's artifact and still runs it"
        )

    async def then(
        tx: RolloutTx, restarted: Callable[[UUID], None]
    ) -> list[RolloutEvent]:
        # After the abort (if any) applied: the original's devices are let go.
        original = await tx.lock(row.id)
        assert original is not None  # locked by this transaction
        return await start_rollback(
            tx,
            original,
            command.rollback_id,
            command.policy_id,
            ctx,
            restarted=restarted,
        )

    return Step(decision, await policy_of(tx, row, ctx), decision.reason, then=then)
