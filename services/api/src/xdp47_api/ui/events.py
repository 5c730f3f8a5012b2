"""Fan-out of rollout events to the SSE streams of this API process.

One private, auto-delete subscription per process (the bus's ``EventFanout``) is
bound to the events exchange with ``rollout.<tenant>.#`` for each tenant that has a
connected browser; every event is handed to the subscribers of its tenant and
rollout, once: events are published at least once (the scheduler's outbox relay
publishes again what it could not mark sent), and the hub drops an event whose
id (the envelope's ``message_id``) it handed out recently. Queues are bounded:
a slow browser misses an event, which the stream's periodic refresh makes up
for (events are triggers, the database is the truth).
The hub starts lazily with the first subscriber and stops with the app.

A stream ends by cancellation when its page goes away (anyio's, level-triggered:
every await of its clean-up is cancelled again). An unbind RPC cancelled half way
makes aiormq close the hub's channel, and every later stream then failed to
bind: no page of the process went live again until a restart. So the clean-up
runs as a task of its own (bounded), and a hub whose subscription fails starts
a new one and binds every tenant again; a stream that still cannot subscribe
lives on its periodic refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
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
# How many recent event ids the hub remembers to drop a repeated event.
SEEN_BOUND = 4096
# Most a stream's clean-up (an unbind RPC) may take once its page has gone.
CLEANUP_SECONDS = 5.0


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
        self._cleanups: set[asyncio.Future[None]] = set()
        self._seen: OrderedDict[UUID, None] = OrderedDict()
        self.closed = asyncio.Event()

    async def _start(self) -> EventSubscription:
        if self._queue is None:
            self._queue = await self._bus.subscribe(
                self._topology.events, self._deliver, max_length=10_000
            )
            # A new subscription (a new exclusive queue): bind every tenant
            # that still has streams.
            for tenant in self._subs:
                await self._queue.bind(Topology.rollout_event_key(tenant, "#"))
        return self._queue

    async def _reset(self) -> None:
        """Drop a broken subscription; the next ``_start`` makes a new one."""
        old, self._queue = self._queue, None
        if old is not None:
            with contextlib.suppress(Exception):  # the link may be gone
                await old.close()

    async def _join(self, sub: Subscription) -> None:
        async with self._lock:
            for attempt in (1, 2):
                try:
                    queue = await self._start()
                    if sub.tenant not in self._subs:
                        await queue.bind(Topology.rollout_event_key(sub.tenant, "#"))
                        self._subs[sub.tenant] = set()
                    break
                except Exception as exc:  # aio-pika raises many types here
                    _log.warning("event subscription failed", error=repr(exc))
                    await self._reset()
                    if attempt == 2:
                        return  # no events for this stream: it refreshes anyway
            self._subs[sub.tenant].add(sub)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, tenant: str, rollout_id: UUID
    ) -> AsyncIterator[Subscription]:
        """Receive the events of one rollout of ``tenant`` while inside.

        If the broker cannot be reached, the subscription receives nothing and
        the caller's periodic refresh carries on alone.
        """
        sub = Subscription(tenant, rollout_id)
        await self._join(sub)
        try:
            yield sub
        finally:
            # A task of its own, awaited shielded: a cancelled stream must not
            # cut the unbind RPC in half (see the module docstring).
            cleanup = asyncio.ensure_future(self._unsubscribe(sub))
            self._cleanups.add(cleanup)
            cleanup.add_done_callback(self._cleanups.discard)
            await asyncio.shield(cleanup)

    async def _unsubscribe(self, sub: Subscription) -> None:
        async with self._lock:
            subs = self._subs.get(sub.tenant)
            if subs is None or sub not in subs:
                return
            subs.discard(sub)
            if not subs and not self.closed.is_set():
                del self._subs[sub.tenant]
                if self._queue is not None:
                    try:
                        await asyncio.wait_for(
                            self._queue.unbind(
                                Topology.rollout_event_key(sub.tenant, "#")
                            ),
                            CLEANUP_SECONDS,
                        )
                    except Exception:  # the link may be gone: start anew next time
                        await self._reset()

    async def _deliver(self, message: Delivery) -> None:
        try:
            event = RolloutEvent.model_validate_json(message.body)
        except ValidationError:
            _log.warning("ignoring a malformed rollout event", key=message.routing_key)
            return
        if not (message.routing_key or "").startswith(f"rollout.{event.tenant}."):
            return  # a body naming another tenant than its key: never fan it out
        if event.message_id in self._seen:
            return  # published again by the relay: handed out before
        self._seen[event.message_id] = None
        if len(self._seen) > SEEN_BOUND:
            self._seen.popitem(last=False)
        for sub in tuple(self._subs.get(event.tenant, ())):
            if sub.rollout_id == event.rollout_id:
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(event)

    async def close(self) -> None:
        self.closed.set()
        if self._queue is not None:
            with contextlib.suppress(Exception):  # the link may be gone
                await self._queue.close()
