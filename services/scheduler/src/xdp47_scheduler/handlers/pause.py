"""``rollout.pause`` and ``rollout.resume``: hold a running rollout and lift it.

While paused no gate judges the current wave and no wave starts; devices already
told keep updating (their desired state does not change). Resume shifts the
wave's clock by the time spent paused; ``dispatch`` then asks the gates again.
"""

from __future__ import annotations

from xdp47_common.messages import PauseRollout, ResumeRollout
from xdp47_common.rollout import pause, resume
from xdp47_scheduler.advance import Context, policy_of
from xdp47_scheduler.handlers.base import Step, actor
from xdp47_scheduler.ports import RolloutRow, RolloutTx

__all__ = ["handle_pause", "handle_resume"]


async def handle_pause(
    tx: RolloutTx, row: RolloutRow, command: PauseRollout, ctx: Context
) -> Step | None:
    decision = pause(row.state(), actor(command), ctx.clock())
    if not decision.changed:
        return None
    return Step(decision, await policy_of(tx, row, ctx), decision.reason)


async def handle_resume(
    tx: RolloutTx, row: RolloutRow, command: ResumeRollout, ctx: Context
) -> Step | None:
    decision = resume(row.state(), actor(command), ctx.clock())
    if not decision.changed:
        return None
    return Step(decision, await policy_of(tx, row, ctx), decision.reason)
