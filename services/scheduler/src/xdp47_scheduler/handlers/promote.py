"""``rollout.promote``: judge the current wave now, without the rest of its grace.

The wave is marked promoted (``grace_skipped``); ``dispatch`` then asks the gates,
which pass or fail it at once when its devices are done, or as soon as the last
one reports.
"""

from __future__ import annotations

from xdp47_common.messages import PromoteRollout
from xdp47_common.rollout import promote
from xdp47_scheduler.advance import Context, policy_of
from xdp47_scheduler.handlers.base import Step, actor
from xdp47_scheduler.ports import RolloutRow, RolloutTx

__all__ = ["handle_promote"]


async def handle_promote(
    tx: RolloutTx, row: RolloutRow, command: PromoteRollout, ctx: Context
) -> Step | None:
    policy = await policy_of(tx, row, ctx)
    decision = promote(row.state(), actor(command), policy, ctx.clock())
    return Step(decision, policy, decision.reason)
