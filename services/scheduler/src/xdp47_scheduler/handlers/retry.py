"""``rollout.retry``: a new attempt over the targets not applied."""

from __future__ import annotations

from xdp47_common.messages import RetryRollout
from xdp47_common.rollout import retry
from xdp47_scheduler.advance import Context, policy_of
from xdp47_scheduler.handlers.base import Step
from xdp47_scheduler.ports import RolloutRow, RolloutTx

__all__ = ["handle_retry"]


async def handle_retry(
    tx: RolloutTx, row: RolloutRow, command: RetryRollout, ctx: Context
) -> Step | None:
    decision = retry(row.state())
    if not decision.changed:
        return None
    policy = await policy_of(tx, row, ctx)
    _, left_out = await tx.reset_for_retry(row.id)
    # Who retried started this attempt: four-eyes holds against them.
    await tx.save_starter(row.id, command.requested_by)
    reason = decision.reason
    if left_out:
        reason = f"{reason}; {left_out} devices left out: in another rollout"
    return Step(decision, policy, reason)
