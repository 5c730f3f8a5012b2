"""``rollout.approve``: start the wave that awaits approval.

The authority on four-eyes: under the tenant's ``four_eyes_approval`` an approve
from the token that started the attempt (``rollouts.started_by``) is refused
here, whatever the API checked before publishing it.
"""

from __future__ import annotations

from xdp47_common.messages import ApproveRollout
from xdp47_common.rollout import approve
from xdp47_scheduler.advance import Context, policy_of
from xdp47_scheduler.handlers.base import Step
from xdp47_scheduler.ports import RolloutRow, RolloutTx

__all__ = ["handle_approve"]


async def handle_approve(
    tx: RolloutTx, row: RolloutRow, command: ApproveRollout, ctx: Context
) -> Step | None:
    decision = approve(
        row.state(), command.requested_by, four_eyes=await tx.four_eyes(row.tenant)
    )
    return Step(decision, await policy_of(tx, row, ctx), decision.reason)
