"""``rollout.start``: plan the waves, keep the effective policy, start wave 1."""

from __future__ import annotations

from xdp47_common.messages import StartRollout
from xdp47_common.rollout import start
from xdp47_scheduler.advance import Context, policy_of
from xdp47_scheduler.handlers.base import Step
from xdp47_scheduler.ports import RolloutRow, RolloutTx

__all__ = ["handle_start"]


async def handle_start(
    tx: RolloutTx, row: RolloutRow, command: StartRollout, ctx: Context
) -> Step | None:
    if not start(row.state()).changed:
        return None
    policy = await policy_of(tx, row, ctx)
    await tx.save_policy(row.id, policy)
    await tx.save_starter(row.id, command.requested_by)
    # A plan with no device ends the rollout in this step (zero eligible).
    decision = start(row.state(), await tx.write_plan(row), policy)
    return Step(decision, policy, decision.reason)
