"""Fan-out of rollout events to the SSE streams of this API process.

One private, auto-delete subscription per process (the bus's ``EventFanout``) is
bound to the events exchange with ``rollout.<tenant>.#`` for each tenant that has a
connected browser; every event is handed to the subscribers of its tenant and
rollout. Queues are bounded: a slow browser misses an event, which the stream's
periodic refresh makes up for (events are triggers, the database is the truth).
The hub starts lazily with the first subscriber and stops with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID

import structlog
from pydantic import ValidationError

from xdp47_common.bus import Delivery, EventFanout, EventSubscription
from xdp47_common.messages import RolloutEvent
from xdp47_common.topology import Topology

__all__ = ["RolloutEventHub", "Subscription"]

_log = structlog.get_logger(__name__)
QUEUE_BOUND = 16


@dataclass(eq=False)
class Subscription:
    tenant: str
    rollout_id: UUID
    queue: asyncio.Queue[RolloutEvent] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_BOUND)
    )


class RolloutEventHub:
    def __init__(self, bus: EventFanout, topology: Topology):
        self._bus = bus
        self._topology = topology
        self._lock = asyncio.Lock()
        self._queue: EventSubscription | None = None
        self._subs: dict[str, set[Subscription]] = {}
        self.closed = asyncio.Event()

    async def _start(self) -> EventSubscription:
        if self._queue is None:
            self._queue = await self._bus.subscribe(
                self._topology.events, self._deliver, max_length=10_000
            )
        return self._queue

    @contextlib.asynccontextmanager
    async def subscribe(
        self, tenant: str, rollout_id: UUID
    ) -> AsyncIterator[Subscription]:
        """Receive the events of one rollout of ``tenant`` while inside."""
        sub = Subscription(tenant, rollout_id)
        async with self._lock:
            queue = await self._start()
            if tenant not in self._subs:
                await queue.bind(Topology.rollout_event_key(tenant, "#"))
                self._subs[tenant] = set()
            self._subs[tenant].add(sub)
        try:
            yield sub
        finally:
            await self._unsubscribe(sub)

    async def _unsubscribe(self, sub: Subscription) -> None:
        async with self._lock:
            subs = self._subs.get(sub.tenant)
            if subs is None:
                return
            subs.discard(sub)
            if not subs and not self.closed.is_set():
                del self._subs[sub.tenant]
                if self._queue is not None:
                    with contextlib.suppress(Exception):  # the link may be gone
                        await self._queue.unbind(
                            Topology.rollout_event_key(sub.tenant, "#")
                        )

    async def _deliver(self, message: Delivery) -> None:
        try:
            event = RolloutEvent.model_validate_json(message.body)
        except ValidationError:
            _log.warning("ignoring a malformed rollout event", key=message.routing_key)
            return
        if not (message.routing_key or "").startswith(f"rollout.{event.tenant}."):
            return  # a body naming another tenant than its key: never fan it out
        for sub in tuple(self._subs.get(event.tenant, ())):
            if sub.rollout_id == event.rollout_id:
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(event)

    async def close(self) -> None:
        self.closed.set()
        if self._queue is not None:
            with contextlib.suppress(Exception):  # the link may be gone
                await self._queue.close()
