"""``rollout.abort``: end the rollout; devices not updated keep their version."""

from __future__ import annotations

from xdp47_common.messages import AbortRollout
from xdp47_common.rollout import abort
from xdp47_scheduler.advance import Context, policy_of
from xdp47_scheduler.handlers.base import Step
from xdp47_scheduler.ports import RolloutRow, RolloutTx

__all__ = ["handle_abort"]


async def handle_abort(
    tx: RolloutTx, row: RolloutRow, command: AbortRollout, ctx: Context
) -> Step | None:
    decision = abort(
        row.state(), by=command.requested_by or "operator", note=command.reason
    )
    if not decision.changed:
        return None
    return Step(decision, await policy_of(tx, row, ctx), decision.reason)
