"""The in-memory channel: delivery tags, prefetch and unacked deliveries per
consumer, like AMQP's. ``Channel`` is the ``ConsumerChannel`` a ``BatchConsumer``
of ``InMemoryBus`` consumes through; its deliveries are ``Incoming``.

Messages stay in their queue until acked: a requeue, or a channel that closes
with deliveries unacked, puts them back in publish order and counts a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from xdp47_common.adapters.deliveries import Deliver
from xdp47_common.adapters.memory_broker import Broker, Message, Queue

__all__ = ["Channel", "MemoryDelivery"]


class MemoryDelivery:
    """A delivered message (an ``Incoming``; event handlers get it too)."""

    def __init__(self, channel: Channel, queue: Queue, msg: Message, tag: int):
        self.channel = channel
        self.queue = queue
        self.message = msg
        self.delivery_tag = tag
        self.body = msg.body
        self.message_id = msg.message_id
        self.type = msg.type
        self.routing_key: str | None = msg.routing_key
        self.headers = msg.headers

    @property
    def live(self) -> bool:
        return not self.channel.is_closed

    @property
    def channel_key(self) -> Hashable:
        return id(self.channel)

    async def ack(self, *, multiple: bool = False) -> bool:
        self.channel.settle(self, multiple=multiple)
        return True

    async def requeue(self) -> bool:
        self.channel.settle(self)
        self.queue.give_back(self.message)
        return True

    async def dead_letter(self) -> bool:
        self.channel.settle(self)
        self.queue.dead(self.message)
        return True


Callback = Callable[[MemoryDelivery], Awaitable[Any]]


class _Consumption:
    """Pushes ready messages of one queue to one callback, within prefetch."""

    def __init__(
        self, channel: Channel, queue: Queue, callback: Callback, no_ack: bool
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.callback = callback
        self.no_ack = no_ack
        queue.consumers += 1
        self.task = asyncio.create_task(self._run(), name=f"memory:{queue.name}")

    def _can_take(self) -> bool:
        room = self.no_ack or len(self.channel.unacked) < self.channel.prefetch
        return bool(self.queue.ready) and room

    async def _run(self) -> None:
        while True:
            async with self.queue.changed:
                await self.queue.changed.wait_for(self._can_take)
                message = heapq.heappop(self.queue.ready)
            delivery = self.channel.deliver(self.queue, message, self.no_ack)
            await self.callback(delivery)

    async def cancel(self) -> None:
        self.queue.consumers -= 1
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class Channel:
    """One consumer's (or subscription's) channel on ``broker``."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.prefetch = 1 << 30
        self.unacked: dict[int, MemoryDelivery] = {}
        self.is_closed = False
        self._tags = itertools.count(1)
        self._consumptions: dict[str, _Consumption] = {}

    async def consume(self, queue_name: str, prefetch: int, deliver: Deliver) -> None:
        self.prefetch = prefetch
        self.subscribe(self.broker.queue(queue_name), deliver, no_ack=False)

    async def cancel(self) -> None:
        for tag in list(self._consumptions):
            consumption = self._consumptions.pop(tag, None)
            if consumption is not None:
                await consumption.cancel()

    def subscribe(self, queue: Queue, callback: Callback, *, no_ack: bool) -> None:
        tag = f"ctag-{next(self._tags)}"
        self._consumptions[tag] = _Consumption(self, queue, callback, no_ack)

    def deliver(self, queue: Queue, message: Message, no_ack: bool) -> MemoryDelivery:
        delivery = MemoryDelivery(self, queue, message, next(self._tags))
        if not no_ack:
            self.unacked[delivery.delivery_tag] = delivery
        return delivery

    def settle(self, delivery: MemoryDelivery, *, multiple: bool = False) -> None:
        tags = (
            [t for t in self.unacked if t <= delivery.delivery_tag]
            if multiple
            else [delivery.delivery_tag]
        )
        queues = set()
        for tag in tags:
            settled = self.unacked.pop(tag, None)
            if settled is not None:
                queues.add(settled.queue)
        for queue in queues:
            queue.wake()  # room under prefetch again

    async def close(self) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        await self.cancel()
        # Unacked deliveries go back to their queue, counted, in publish order.
        for delivery in sorted(self.unacked.values(), key=lambda d: d.message.seq):
            delivery.queue.give_back(delivery.message)
        self.unacked.clear()
