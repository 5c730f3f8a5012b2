"""Run a unit of work in one store transaction, retried on races; then tell.

Every change of a rollout is one ``Work``: a function of a ``RolloutTx`` that
returns the events its decisions produced. ``Runner.run`` runs it (again, from the
start, when the store says the failure was a race or a brief outage), writes the
events to the outbox in that same transaction (``RolloutTx.enqueue_events``), and
once it committed tells the sink (the relay's nudge) and hands every started wave
to its follow-up (``wave_started``). A crash after the commit loses nothing: the
relay publishes the rows whenever a scheduler runs again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

from xdp47_common.messages import RolloutEvent
from xdp47_common.rollout import EventName
from xdp47_scheduler import faults, story
from xdp47_scheduler.events import EventSink
from xdp47_scheduler.ports import RolloutStore, RolloutTx

__all__ = ["Runner", "Work"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[RolloutTx], Awaitable[list[RolloutEvent]]]

_ATTEMPTS = 5


class Runner:
    """Transactions of one scheduler process on its store."""

    def __init__(
        self,
        store: RolloutStore,
        events: EventSink,
        wave_started: Callable[[UUID], None],
    ) -> None:
        self.store = store
        self._events = events
        self._wave_started = wave_started

    async def tx(self, work: Callable[[RolloutTx], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction, retried on races."""
        for attempt in range(_ATTEMPTS):
            try:
                # Its decisions are told once it commits (a retry tells them once).
                with story.after_commit():
                    async with self.store.transaction() as tx:
                        return await work(tx)
            except Exception as exc:
                if attempt == _ATTEMPTS - 1 or not self.store.is_retryable(exc):
                    raise
                log.info("retrying after %s", exc.__class__.__name__)
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    async def run(self, work: Work) -> None:
        """Run ``work`` (retried on races) with its events written to the outbox,
        then tell the sink and schedule the follow-up of every wave it started."""

        async def recorded(tx: RolloutTx) -> list[RolloutEvent]:
            events = await work(tx)
            if events:
                await tx.enqueue_events(events)
            return events

        events = await self.tx(recorded)
        if events:
            faults.crash_after_commit()
        for e in events:
            if e.event == EventName.WAVE_STARTED.value:
                self._wave_started(e.rollout_id)
        if events:
            await self._events.publish(events)
