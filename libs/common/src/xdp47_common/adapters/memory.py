"""``InMemoryBus``: the bus port in one process, with RabbitMQ's semantics.

For the embedded demo (api, ingest and scheduler in one process share one
instance) and for tests that need no broker. It models what the services rely on
(``memory_broker``: exchanges, routing, delivery limits and dead queues;
``memory_channel``: prefetch, unacked deliveries, requeue on close):

- messages stay in their queue until acked: a nack with requeue, or a consumer
  that stops (its channel closes) with deliveries unacked, puts them back in
  publish order and counts a delivery; past ``DELIVERY_LIMIT`` the message goes
  to the queue's dead queue, like a quorum queue's ``x-delivery-limit``;
- a consumer holds at most ``prefetch`` unacked deliveries;
- event subscriptions are private queues with a length bound (oldest dropped),
  deleted when closed.

Batch consumption runs the very same ``BatchConsumer`` as the RabbitMQ adapter,
over the in-memory channel, so the decode / poison / ack-after-handle / requeue
rules cannot drift between the two. Nothing is durable across processes.
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

from xdp47_common.adapters.memory_broker import (
    Broker,
    Queue,
    new_message,
)
from xdp47_common.adapters.memory_channel import Channel
from xdp47_common.adapters.work_consumer import ChannelConsumer
from xdp47_common.bus import (
    ConsumerOptions,
    Decode,
    Handle,
    OnEvent,
    PublishFailed,
    QueueDepth,
)
from xdp47_common.messages.envelope import (
    Envelope,
    PreparedEnvelope,
    envelope_headers,
    envelope_json,
)
from xdp47_common.topology import Topology

__all__ = ["InMemoryBus"]

T = TypeVar("T")


class _MemorySubscription:
    def __init__(self, bus: InMemoryBus, exchange: str, queue: Queue) -> None:
        self._bus = bus
        self._exchange = bus.broker.exchange(exchange)
        self._queue = queue
        self.channel = Channel(bus.broker)

    async def bind(self, pattern: str) -> None:
        self._exchange.bindings.append((pattern, self._queue))

    async def unbind(self, pattern: str) -> None:
        with contextlib.suppress(ValueError):
            self._exchange.bindings.remove((pattern, self._queue))

    async def close(self) -> None:
        self._bus._subscriptions.discard(self)
        self._exchange.bindings = [
            b for b in self._exchange.bindings if b[1] is not self._queue
        ]
        await self.channel.close()
        self._bus.broker.queues.pop(self._queue.name, None)  # auto-delete


class InMemoryBus:
    """The bus in one process; share one instance between the services in it."""

    def __init__(self, topology: Topology | None = None) -> None:
        self._topology = topology or Topology()
        self.broker = Broker()
        self._consumers: set[ChannelConsumer[Any]] = set()
        self._subscriptions: set[_MemorySubscription] = set()
        self._started = False
        self._closed = False

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def is_ready(self) -> bool:
        return self._started and not self._closed

    async def start(self) -> None:
        """Declare the topology (idempotent, like the RabbitMQ declares)."""
        self.broker.declare(self._topology)
        self._started = True
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for consumer in tuple(self._consumers):
            await consumer.stop()
        for sub in tuple(self._subscriptions):
            await sub.close()
        self.broker.cancel_tasks()

    async def publish(
        self, exchange: str, routing_key: str, envelope: Envelope | PreparedEnvelope
    ) -> None:
        self.publish_raw(
            exchange,
            routing_key,
            envelope_json(envelope),
            message_id=str(envelope.message_id),
            type=envelope.type,
            headers=envelope_headers(envelope),
        )

    def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        type: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish bytes as they are (tests use it to send poison).

        Raises:
            PublishFailed: the bus is closed or the exchange is not declared.
        """
        if not self.is_ready:
            raise PublishFailed("the in-memory bus is not running")
        if exchange not in self.broker.exchanges:
            raise PublishFailed(f"exchange {exchange!r} is not declared")
        self.broker.route(
            exchange,
            routing_key,
            new_message(body, routing_key, message_id, type, headers or {}),
        )

    def batch_consumer(
        self,
        queue_name: str,
        decode: Decode[T],
        handle: Handle[T],
        options: ConsumerOptions = ConsumerOptions(),
    ) -> ChannelConsumer[T]:
        async def open_channel() -> Channel:
            self.broker.queue(queue_name)  # fail now on a missing queue
            return Channel(self.broker)

        return ChannelConsumer(
            open_channel, queue_name, decode, handle, options, self._consumers
        )

    async def subscribe(
        self, exchange: str, on_event: OnEvent, *, max_length: int = 10_000
    ) -> _MemorySubscription:
        queue = self.broker.private_queue(max_length)
        sub = _MemorySubscription(self, exchange, queue)
        sub.channel.subscribe(queue, on_event, no_ack=True)
        self._subscriptions.add(sub)
        return sub

    async def queue_depth(self, queue_name: str) -> QueueDepth:
        queue = self.broker.queue(queue_name)
        return QueueDepth(len(queue.ready), queue.consumers)
