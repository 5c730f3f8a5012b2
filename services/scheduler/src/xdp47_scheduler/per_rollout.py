"""Background work of one kind, at most one task per rollout, coalesced.

The engine runs two kinds of work off the path that asks for it: the gates of a
rollout whose counters a heartbeat batch moved (so the heartbeat consumer never
waits on a rollout's transition: a completion releases every target of the
rollout in one statement) and the work a wave start leaves (``followup``).
Both are idempotent and read what to do from the store, so asking again while
one runs only needs it to run once more afterwards, never twice at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

__all__ = ["PerRollout"]

log = logging.getLogger(__name__)


class PerRollout:
    """Run ``work(rollout_id)`` in a task per rollout when asked (``request``).

    A request while that rollout's task runs makes it run once more after the
    current run (any number of requests: once); a failure is logged and ends
    that run only (the timer asks again on its next tick).

    Args:
        work: the idempotent work of one rollout.
        what: its name in task names and logs.
    """

    def __init__(self, work: Callable[[UUID], Awaitable[None]], what: str) -> None:
        self._work = work
        self._what = what
        self._due: set[UUID] = set()
        self._tasks: dict[UUID, asyncio.Task[None]] = {}

    def request(self, rollout_id: UUID) -> None:
        """Run the work for ``rollout_id`` now, or once more after its run."""
        self._due.add(rollout_id)
        if rollout_id not in self._tasks:
            self._tasks[rollout_id] = asyncio.create_task(
                self._loop(rollout_id), name=f"{self._what}-{rollout_id}"
            )

    def running(self, rollout_id: UUID) -> bool:
        """Whether a task of ``rollout_id`` runs (or is about to)."""
        return rollout_id in self._tasks

    @property
    def idle(self) -> bool:
        return not self._tasks

    async def _loop(self, rollout_id: UUID) -> None:
        try:
            while rollout_id in self._due:
                self._due.discard(rollout_id)
                try:
                    await self._work(rollout_id)
                except Exception:
                    log.exception("%s of rollout %s failed", self._what, rollout_id)
        finally:
            self._tasks.pop(rollout_id, None)

    async def drain(self) -> None:
        """Wait until no task runs (including ones requested meanwhile)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
