"""The wave-start follow-up: the work a wave start leaves, off the gates' path.

A wave start is a flip of ``current_wave``; afterwards, one background task per
rollout (also scheduled by the timer when it finds work left, e.g. after a crash)

1. moves the started wave's pending targets to ``assigned`` (or ``skipped``
   offline under skip_offline, from ``eligible`` to ``skipped``), ``CHUNK`` per
   transaction; devices among them that already run the artifact count as
   applied at once;
2. asks the gates again if anything moved (all skipped, all done);
3. writes the next wave's targets ahead (pending), so its start is again a flip.

Idempotent: each step does what is left; the tasks are ``PerRollout``'s.
``drain`` waits for the running ones (shutdown, tests, benchmarks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from xdp47_scheduler.per_rollout import PerRollout
from xdp47_scheduler.ports import RolloutTx
from xdp47_scheduler.runner import Runner

__all__ = ["CHUNK", "FollowUps"]

# Targets moved per follow-up transaction: short enough that a heartbeat batch
# touching one of them waits milliseconds, not the whole wave.
CHUNK = 5000


class FollowUps:
    """The follow-up tasks of one scheduler process, at most one per rollout."""

    def __init__(
        self, runner: Runner, evaluate: Callable[[UUID], Awaitable[None]]
    ) -> None:
        self._runner = runner
        self._evaluate = evaluate
        self._tasks = PerRollout(self.follow_up, "follow-up")

    async def follow_up(self, rollout_id: UUID) -> None:
        """The work a wave start leaves, after its commit; idempotent."""
        moved_any = False

        async def chunk(tx: RolloutTx) -> int:
            return await tx.assign_chunk(rollout_id, CHUNK)

        while await self._runner.tx(chunk):
            moved_any = True
        if moved_any:
            await self._evaluate(rollout_id)

        async def prewrite(tx: RolloutTx) -> int | None:
            return await tx.prewrite_next(rollout_id)

        await self._runner.tx(prewrite)

    def follow(self, rollout_id: UUID) -> None:
        """Schedule ``follow_up`` (one task per rollout; a request that arrives
        while it runs makes it run once more)."""
        self._tasks.request(rollout_id)

    async def follow_if_due(self, rollout_id: UUID) -> None:
        """Schedule the follow-up if the store has wave-start work left."""
        if self._tasks.running(rollout_id):
            return
        if await self._runner.store.follow_up_due(rollout_id):
            self.follow(rollout_id)

    async def drain(self) -> None:
        """Wait until no follow-up runs (including ones they schedule)."""
        await self._tasks.drain()

    @property
    def idle(self) -> bool:
        return self._tasks.idle
